//! `liminix-agent boot-log`: run once early at boot, it keeps the previous boot's pstore
//! records in /run/log/previous-boot and frees pstore for the next crash (docs/logs.md).

use liminix_agent::error::Result;
use liminix_agent::pstore;

use crate::cli::Global;

pub fn run(g: &Global) -> Result<()> {
    let root = g.device()?;
    let collected = pstore::collect(&root)?;
    let previous = pstore::previous_boot(&root);
    if g.json {
        let doc = serde_json::json!({"collected": collected, "previous_boot": previous});
        println!("{doc}");
        return Ok(());
    }
    println!(
        "moved {} pstore record(s) to {}{}",
        collected.moved.len(),
        collected.dir,
        if collected.mounted {
            " (pstore mounted)"
        } else {
            ""
        }
    );
    if let Some(b) = &previous {
        print!("{}", pstore::render(b));
    }
    Ok(())
}
