//! `liminix-agent version`: the version handshake `update.sh` reads before it decides whether
//! the device's agent will do or it sends its own (docs/agents.md).

use liminix_agent::error::Result;
use liminix_bundle::wire::PROTOCOL;

use crate::cli::Global;

pub fn run(g: &Global) -> Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    if g.json {
        // The same keys as the wire protocol's `hello`, on one line.
        println!(
            "{}",
            serde_json::json!({"agent_version": version, "protocol": PROTOCOL})
        );
    } else {
        println!("liminix-agent {version} (wire protocol {PROTOCOL})");
    }
    Ok(())
}
