//! The `burner` binary: parse the command line and hand it to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = burner::cli::Cli::parse();
    burner::cli::run(cli)
}
