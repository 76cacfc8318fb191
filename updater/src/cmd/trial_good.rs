//! `mark-good` on a trial boot of a generation (`receive --try`): the health check the
//! options name (services, command; none given: none), then the generation becomes current.

use std::time::Duration;

use liminix_agent::ab::{health, HealthConfig};
use liminix_agent::error::Result;
use liminix_agent::root::DeviceRoot;
use liminix_agent::trial::generation as trial;

use crate::cli::Global;
use crate::cmd::mark_good::MarkGoodArgs;

pub fn run(g: &Global, root: &DeviceRoot, generation: u32, a: &MarkGoodArgs) -> Result<()> {
    let cfg = HealthConfig {
        services: a.services.clone(),
        command: a.check.clone(),
        deadline_secs: a.deadline,
    };
    if !a.no_check {
        let deadline = a
            .deadline
            .map_or(health::DEFAULT_DEADLINE, Duration::from_secs);
        health::wait_healthy(&cfg, deadline)?;
    }
    let c = trial::confirm(root, generation)?;
    if g.json {
        println!("{}", serde_json::to_string(&c).expect("report serialises"));
    } else if c.already_current {
        eprintln!("generation {generation} is already current");
    } else {
        let was = c.previous.map_or("none".to_owned(), |p| p.to_string());
        eprintln!(
            "generation {generation} passed its trial: it is current (was {was}) and boots from \
             now on"
        );
    }
    Ok(())
}
