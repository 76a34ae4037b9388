//! `sse-loadgen`: parses the command line and calls the library.

use std::process::ExitCode;

use clap::Parser;
use sse_loadgen::cli::{Cli, Exit, error_chain, run};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap's whole message: what is wrong, the allowed values or a near flag, and the
            // usage. Help and version go to stdout with status 0, usage errors to stderr with
            // clap's status 2, as sse-server's.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(Exit::Usage.code())
            } else {
                ExitCode::from(Exit::Success.code())
            };
        }
    };
    match run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("sse-loadgen: error: {}", error_chain(&e));
            ExitCode::from(Exit::Failure.code())
        }
    }
}
