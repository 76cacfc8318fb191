//! `status`: generations, which one is current, previous and booted, and store usage.

use serde::Serialize;

use crate::closure::gc::{booted_generations, disk_usage};
use crate::closure::generations::{DamagedGeneration, GenerationInfo, Generations};
use crate::error::Result;
use crate::root::DeviceRoot;
use crate::staging::free_space;

#[derive(Debug, Serialize)]
pub struct Status {
    pub board: Option<String>,
    pub current: Option<u32>,
    pub previous: Option<u32>,
    pub booted: Vec<u32>,
    pub highest_epoch: u64,
    pub generations: Vec<GenerationInfo>,
    /// Generations whose record cannot be used: rollback skips them, gc may collect them.
    pub damaged: Vec<DamagedGeneration>,
    pub store: StoreUsage,
    /// How the previous boot ended, from pstore (absent when nothing tells).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_boot: Option<crate::pstore::PreviousBoot>,
    /// A/B boards: slots, trial and last rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ab: Option<crate::ab::AbSection>,
    /// Writable-root boards: a generation running on trial, or one whose trial failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial: Option<crate::trial::generation::TrialState>,
}

#[derive(Debug, Serialize)]
pub struct StoreUsage {
    pub paths: usize,
    pub bytes: u64,
    pub free_bytes: u64,
}

pub fn status(root: &DeviceRoot) -> Result<Status> {
    let gens = Generations::new(root);
    let scan = gens.scan()?;
    let store_dir = root.store();
    let paths: Vec<_> = std::fs::read_dir(&store_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    liminix_bundle::storepath::StorePath::from_base_name(
                        &e.file_name().to_string_lossy(),
                    )
                    .is_ok()
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    let free_bytes = free_space(&store_dir).map(|(b, _, _)| b).unwrap_or(0);
    // Before the A/B section, which moves the records of a failed trial out of pstore.
    let previous_boot = crate::pstore::previous_boot(root);
    Ok(Status {
        board: std::fs::read_to_string(root.board_name())
            .ok()
            .map(|s| s.trim().to_owned()),
        current: gens.current(),
        previous: gens.previous(),
        booted: booted_generations(root, &gens)?,
        highest_epoch: gens.highest_epoch()?,
        generations: scan.good,
        damaged: scan.damaged,
        store: StoreUsage {
            paths: paths.len(),
            bytes: paths.iter().map(|p| disk_usage(p)).sum(),
            free_bytes,
        },
        previous_boot,
        ab: crate::ab::AbSection::read(root),
        trial: crate::trial::generation::state(root),
    })
}

/// `  [current, previous, booted]`, those that apply to generation `n`, or nothing.
fn marks(s: &Status, n: u32) -> String {
    let marks: Vec<&str> = [
        (s.current == Some(n), "current"),
        (s.previous == Some(n), "previous"),
        (s.booted.contains(&n), "booted"),
    ]
    .into_iter()
    .filter_map(|(on, word)| on.then_some(word))
    .collect();
    if marks.is_empty() {
        String::new()
    } else {
        format!("  [{}]", marks.join(", "))
    }
}

/// The human form of `status`.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "board: {}\n",
        s.board.as_deref().unwrap_or("(unknown)")
    ));
    out.push_str("generations:\n");
    for g in &s.generations {
        out.push_str(&format!(
            "  {:>3}  {}  epoch {}  {}{}\n",
            g.number,
            crate::closure::generations::timestamp(g.installed_at),
            g.epoch,
            g.toplevel.as_deref().unwrap_or("(adopted factory system)"),
            marks(s, g.number)
        ));
    }
    for d in &s.damaged {
        out.push_str(&format!(
            "  {:>3}  DAMAGED: {}{}\n",
            d.number,
            d.problem,
            marks(s, d.number)
        ));
    }
    if s.generations.is_empty() && s.damaged.is_empty() {
        out.push_str("  (none recorded)\n");
    }
    out.push_str(&format!(
        "store: {} paths, {} bytes used, {} bytes free; highest security epoch {}\n",
        s.store.paths, s.store.bytes, s.store.free_bytes, s.highest_epoch
    ));
    if let Some(b) = &s.previous_boot {
        out.push_str(&crate::pstore::render(b));
    }
    if let Some(ab) = &s.ab {
        out.push_str(&ab.render());
    }
    if let Some(t) = &s.trial {
        out.push_str(&crate::trial::generation::render(t));
    }
    out
}
