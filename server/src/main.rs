//! `sse-server`: parses the command line and runs the server until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use sse_server::cli::Cli;
use sse_server::{Server, sys};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A host name given to --listen: the start-up line says what it resolved to.
    let resolution = cli.listen.resolution_note();
    let config = match cli.into_config() {
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
    eprintln!("{}{resolution}", server.startup_line());
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
