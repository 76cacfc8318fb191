//! `liminix-agent`: thin entry point. Parses the command line, runs the library, prints the full
//! error chain and exits with the documented code (see `liminix_agent::error::exit`).

mod cli;
mod cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = cli::main(std::env::args_os().collect());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
