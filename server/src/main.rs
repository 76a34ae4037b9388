//! `sse-server`: parses the command line and runs the server until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use sse_server::cli::Cli;
use sse_server::{Server, sys};

fn main() -> ExitCode {
    let config = match Cli::parse().into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sse-server: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = sys::install_signal_handlers() {
        eprintln!("sse-server: error: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("sse-server: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("{}", server.startup_line());
    for warning in server.warnings() {
        eprintln!("{warning}");
    }
    match server.run() {
        Ok(()) => {
            eprintln!("sse-server: shut down");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sse-server: error: {e}");
            ExitCode::FAILURE
        }
    }
}
