//! `liminix-agent`: thin entry point. Parses the command line, runs the library, prints the full
//! error chain and exits with the documented code (see `liminix_agent::error::exit`).

mod cli;
mod cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(sub) = args
        .first()
        .and_then(|a0| liminix_agent::multicall::subcommand_for(a0))
    {
        args.splice(0..1, ["liminix-agent".into(), sub.into()]);
    }
    let code = match args
        .first()
        .and_then(|a0| liminix_agent::multicall::tool_for(a0))
    {
        Some(tool) => liminix_agent::multicall::run(tool, &args[1..]),
        None => cli::main(args),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
