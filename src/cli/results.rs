//! `burner report` (the HTML report of a run) and `burner compare` (two runs' headline
//! numbers side by side).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::results::{compare, report};

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The run directory (collected-metrics-<uuid> or init's --output-dir).
    pub dir: PathBuf,
    /// Where to write the report [default: DIR/report.html].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline run's directory (or its summary.json).
    pub baseline: PathBuf,
    /// The run to judge against it.
    pub candidate: PathBuf,
    /// A change for the worse beyond this is a regression (exit code 1).
    #[arg(long, default_value = "10%", value_parser = compare::parse_threshold)]
    pub threshold: f64,
}

pub fn report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let path = report::write_report(&args.dir, args.output.as_deref())?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn compare(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    let baseline = compare::load_summary(&args.baseline)?;
    let candidate = compare::load_summary(&args.candidate)?;
    let comparison = compare::compare(&baseline, &candidate, args.threshold);
    print!("{}", comparison.render());
    Ok(if comparison.regressions() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
