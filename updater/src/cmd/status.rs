use liminix_agent::error::Result;
use liminix_agent::status;

use crate::cli::Global;

pub fn run(g: &Global) -> Result<()> {
    let s = status::status(&g.device()?)?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).expect("status serialises")
        );
    } else {
        print!("{}", status::render(&s));
    }
    Ok(())
}
