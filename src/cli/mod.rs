//! The command line: clap definitions, and the mapping from commands to library calls.
//!
//! This is the only module that prints for people. Exit codes follow kube-burner's:
//! 0 ok, 1 error, 2 timeout, 3 alert of severity error, 4 measurement threshold exceeded.

mod check;
mod hollow;
mod init;
mod local;
mod metrics;
mod progress;
mod results;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Kubernetes control-plane load generator and measurement tool.
#[derive(Debug, Parser)]
#[command(name = "burner", version, about, long_about = None)]
pub struct Cli {
    /// Log level for burner's own logs on stderr; RUST_LOG, when set, takes precedence.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the jobs of a config file against the cluster under test.
    Init(Box<init::InitArgs>),
    /// Remove what a run created.
    Destroy(init::DestroyArgs),
    /// Parse, validate and render a config file without a cluster.
    Check(check::CheckArgs),
    /// Simulate kubelets: register hollow nodes and drive their pods' lifecycles.
    Hollow(Box<hollow::HollowArgs>),
    /// Write the HTML report of a run's results.
    Report(results::ReportArgs),
    /// Compare two runs' headline numbers; exit code 1 on a regression.
    Compare(results::CompareArgs),
    /// Query metric profiles from Prometheus over a time range into a folder, without
    /// running jobs.
    Index(Box<metrics::IndexArgs>),
    /// Evaluate alert profiles on Prometheus over a time range; exit code 1 when an alert
    /// of severity error fires, 3 for critical.
    CheckAlerts(Box<metrics::CheckAlertsArgs>),
    /// Run a real local control plane on 127.0.0.1 as the cluster under test.
    #[command(subcommand)]
    Local(local::LocalCommand),
    /// Print burner's version and the control-plane versions it runs.
    Version,
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    init_logging(cli.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Local(command) => local::run(command).await,
        Command::Hollow(args) => hollow::run(*args).await,
        Command::Check(args) => check::run(&args),
        Command::Version => {
            let versions = crate::local::ControlPlaneVersions::pinned();
            println!("burner {}", env!("CARGO_PKG_VERSION"));
            println!(
                "local control plane: kubernetes {}, etcd {}",
                versions.kubernetes, versions.etcd
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "burner", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Init(args) => init::init(&args).await,
        Command::Destroy(args) => init::destroy(&args).await,
        Command::Report(args) => results::report(&args),
        Command::Compare(args) => results::compare(&args),
        Command::Index(args) => metrics::index(&args).await,
        Command::CheckAlerts(args) => metrics::check_alerts(&args).await,
    }
}

fn init_logging(level: LogLevel) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // kube's client logs every failed request as an error of its own; burner reports
        // failures itself (and expects some, such as probes of a server still starting).
        EnvFilter::new(format!(
            "{},kube_client=off,hyper=warn,rustls=warn",
            level.directive()
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| progress::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
