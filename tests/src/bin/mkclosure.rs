//! `mkclosure`: generate synthetic Liminix closures for demos and benchmarks.
//!
//! `mkclosure gen --store-root DIR --seed N --packages N --bytes N [--json]`
//! `mkclosure derive --store-root DIR --from TOPLEVEL --changed-fraction F
//!     [--change-service NAME…]… --seed N [--json]`
//! Prints the toplevel store path, or with `--json` the whole closure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use liminix_tests::closure::{self, Change, Closure, ClosureSpec};

#[derive(Parser)]
#[command(about = "Generate synthetic Liminix system closures")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a closure from a seed.
    Gen {
        #[arg(long)]
        store_root: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 12)]
        packages: usize,
        #[arg(long, default_value_t = 1_500_000)]
        bytes: u64,
        /// Services as NAME or NAME:force (repeatable); default: a small router's set.
        #[arg(long = "service")]
        services: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Derive a new generation from a generated toplevel.
    Derive {
        #[arg(long)]
        store_root: PathBuf,
        #[arg(long)]
        from: String,
        #[arg(long, default_value_t = 0.05)]
        changed_fraction: f64,
        /// Services whose store path changes (repeat the flag or list several).
        #[arg(long = "change-service", num_args = 1..)]
        change_service: Vec<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

fn parse_service(s: &str) -> (String, bool) {
    match s.strip_suffix(":force") {
        Some(name) => (name.to_string(), true),
        None => (s.to_string(), false),
    }
}

fn to_json(c: &Closure) -> serde_json::Value {
    serde_json::json!({
        "toplevel": c.toplevel,
        "db": c.db,
        "bytes": c.bytes,
        "paths": c.paths,
        "services": c.services,
        "force_restart": c.force_restart,
    })
}

fn run(cli: Cli) -> Result<(), closure::ClosureError> {
    let (closure, json) = match cli.cmd {
        Cmd::Gen {
            store_root,
            seed,
            packages,
            bytes,
            services,
            json,
        } => {
            let services = if services.is_empty() {
                closure::default_services()
            } else {
                services.iter().map(|s| parse_service(s)).collect()
            };
            let spec = ClosureSpec {
                seed,
                packages,
                total_bytes: bytes,
                services,
            };
            (closure::generate(&store_root, &spec)?, json)
        }
        Cmd::Derive {
            store_root,
            from,
            changed_fraction,
            change_service,
            seed,
            json,
        } => {
            let base = Closure::load(&store_root, &from)?;
            let change = Change {
                changed_fraction,
                changed_services: change_service,
                seed,
            };
            (closure::derive(&store_root, &base, &change)?, json)
        }
    };
    if json {
        println!("{}", to_json(&closure));
    } else {
        println!("{}", closure.toplevel);
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkclosure: {e}");
            ExitCode::FAILURE
        }
    }
}
