//! `sse-loadgen`: parses the command line and calls the library.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use sse_loadgen::cli::{Cli, error_chain, run};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line, as for every other error: clap's first line without its "error: ".
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            eprintln!(
                "sse-loadgen: error: {}",
                first.trim_start_matches("error: ").trim()
            );
            return ExitCode::from(1);
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("sse-loadgen: error: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}
