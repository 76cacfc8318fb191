//! Rules across fields that serde cannot check: alignment to erase blocks, partitions inside their
//! chip and not overlapping, targets that exist and are writable, and a strategy that fits the
//! targets. A board that loads has passed all of them.

use std::collections::{BTreeMap, BTreeSet};

use crate::schema::{Board, Bootloader, Chip, ChipKind, Strategy};
use crate::target::TargetRef;
use crate::BoardError;

pub(crate) fn invalid(board: &Board, msg: String) -> BoardError {
    BoardError::Invalid {
        board: board.name.clone(),
        msg,
    }
}

/// Letters, digits, `-`, `_`, `.`; not starting with `.`; at most 64 bytes.
pub fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

pub fn validate(b: &Board) -> Result<(), BoardError> {
    if !plain_name(&b.name) {
        return Err(invalid(
            b,
            format!("board name {:?} is not a plain name", b.name),
        ));
    }
    if b.flash.is_empty() && !b.images.is_empty() {
        return Err(invalid(
            b,
            "no flash chip, but images to write: a board with images needs its flash".into(),
        ));
    }
    let mut names = BTreeSet::new();
    for chip in &b.flash {
        check_chip(b, chip)?;
        for p in &chip.partitions {
            if !names.insert(p.name.as_str()) {
                return Err(invalid(
                    b,
                    format!("partition {:?} is defined twice", p.name),
                ));
            }
        }
    }
    check_ubi(b)?;
    check_images(b)?;
    if b.strategy.is_ab() {
        check_slots(b)?;
    } else {
        check_single(b)?;
    }
    check_bootloader(b)?;
    crate::validate_boot::check(b)
}

fn check_chip(b: &Board, c: &Chip) -> Result<(), BoardError> {
    let erase = c.erase_size;
    if erase == 0 || !erase.is_power_of_two() {
        return Err(invalid(
            b,
            format!(
                "chip {}: erase size {erase:#x} is not a power of two",
                c.name
            ),
        ));
    }
    if c.size == 0 || !c.size.is_multiple_of(erase) {
        return Err(invalid(
            b,
            format!(
                "chip {}: size {:#x} is not a whole number of {erase:#x} erase blocks",
                c.name, c.size
            ),
        ));
    }
    match (c.kind, c.write_size) {
        (ChipKind::Nand, None) => {
            return Err(invalid(
                b,
                format!("chip {}: NAND needs write_size (the page size)", c.name),
            ))
        }
        (_, Some(w)) if w == 0 || !w.is_power_of_two() || !erase.is_multiple_of(w) => {
            return Err(invalid(
                b,
                format!(
                    "chip {}: write size {w:#x} does not divide the erase block",
                    c.name
                ),
            ))
        }
        _ => {}
    }
    let mut parts: Vec<_> = c.partitions.iter().collect();
    parts.sort_by_key(|p| p.offset);
    for p in &parts {
        if !plain_name(&p.name) {
            return Err(invalid(
                b,
                format!("partition name {:?} is not a plain name", p.name),
            ));
        }
        if p.size == 0 || p.offset % erase != 0 || p.size % erase != 0 {
            return Err(invalid(b, format!("partition {} ({:#x} + {:#x}) is not aligned to the {erase:#x} erase block of chip {}", p.name, p.offset, p.size, c.name)));
        }
        if p.end() > c.size {
            return Err(invalid(
                b,
                format!(
                    "partition {} ends at {:#x}, past the end of chip {} ({:#x})",
                    p.name,
                    p.end(),
                    c.name,
                    c.size
                ),
            ));
        }
    }
    for w in parts.windows(2) {
        if w[0].end() > w[1].offset {
            return Err(invalid(
                b,
                format!("partitions {} and {} overlap", w[0].name, w[1].name),
            ));
        }
    }
    Ok(())
}

fn check_ubi(b: &Board) -> Result<(), BoardError> {
    let Some(u) = &b.ubi else { return Ok(()) };
    if u.min_io == 0 || u.leb_size == 0 || u.leb_size >= u.peb_size || u.leb_size % u.min_io != 0 {
        return Err(invalid(b, format!("UBI geometry min_io {} / LEB {} / PEB {} is inconsistent (LEB must be a multiple of min_io and smaller than the PEB)", u.min_io, u.leb_size, u.peb_size)));
    }
    let mut parts: Vec<&str> = b.slots.iter().filter_map(|s| s.ubi.as_deref()).collect();
    parts.extend(u.partition.as_deref());
    for name in parts {
        let Some((chip, _)) = b.partition(name) else {
            return Err(invalid(
                b,
                format!("UBI partition {name:?} is not a partition of the board"),
            ));
        };
        if chip.erase_size != u.peb_size {
            return Err(invalid(
                b,
                format!(
                    "UBI PEB size {} differs from the erase block {} of chip {}",
                    u.peb_size, chip.erase_size, chip.name
                ),
            ));
        }
        if chip.kind == ChipKind::Nand && Some(u.min_io) != chip.write_size {
            return Err(invalid(
                b,
                format!(
                    "UBI min_io {} differs from the NAND page size of chip {}",
                    u.min_io, chip.name
                ),
            ));
        }
        let capacity = b.ubi_capacity(name).unwrap_or(0);
        let declared: u64 = u.volumes.iter().filter_map(|v| v.size).sum();
        if declared > capacity {
            return Err(invalid(b, format!("UBI volumes declare {declared} bytes but partition {name} holds about {capacity}")));
        }
    }
    let mut seen = BTreeSet::new();
    for v in &u.volumes {
        if !plain_name(&v.name) || !seen.insert(v.name.as_str()) {
            return Err(invalid(
                b,
                format!(
                    "UBI volume name {:?} is not plain or is defined twice",
                    v.name
                ),
            ));
        }
    }
    Ok(())
}

fn check_images(b: &Board) -> Result<(), BoardError> {
    // A board without images takes closure updates only; A/B and UBI strategies exist to
    // write images, so they need some.
    if b.images.is_empty() && b.strategy != Strategy::Raw {
        return Err(invalid(
            b,
            format!(
                "no image is defined for strategy {}: only a board updated by closure alone has none (and names strategy raw)",
                b.strategy
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for i in &b.images {
        if !plain_name(&i.name) || !seen.insert(i.name.as_str()) {
            return Err(invalid(
                b,
                format!("image name {:?} is not plain or is defined twice", i.name),
            ));
        }
    }
    Ok(())
}

/// Checks one target; returns the MTD partition it writes (for the raw partition or UBI device).
fn check_target<'a>(
    b: &'a Board,
    image: &str,
    target: &'a str,
    ubi_partition: Option<&'a str>,
) -> Result<&'a str, BoardError> {
    let bad = |why: String| invalid(b, format!("image {image}: target {target:?} {why}"));
    match TargetRef::parse(target).map_err(|e| bad(e.to_string()))? {
        TargetRef::Raw(part) => {
            let (_, p) = b
                .partition(part)
                .ok_or_else(|| bad("names no partition of the board".into()))?;
            if p.read_only {
                return Err(bad("is read-only".into()));
            }
            Ok(&p.name)
        }
        TargetRef::Ubi(vol) => {
            let u = b
                .ubi
                .as_ref()
                .ok_or_else(|| bad("is UBI but the board has no [ubi] section".into()))?;
            if !u.volumes.iter().any(|v| v.name == vol) {
                return Err(bad("names a UBI volume the board does not declare".into()));
            }
            ubi_partition.ok_or_else(|| bad("is UBI but no UBI partition is set for it".into()))
        }
    }
}

fn check_single(b: &Board) -> Result<(), BoardError> {
    if !b.slots.is_empty() {
        return Err(invalid(
            b,
            format!(
                "strategy {} has no slots; slots need ab-zyxel or ab-uboot",
                b.strategy
            ),
        ));
    }
    let ubi_part = b.ubi.as_ref().and_then(|u| u.partition.as_deref());
    let mut written = BTreeSet::new();
    for i in &b.images {
        let target = i
            .target
            .as_deref()
            .ok_or_else(|| invalid(b, format!("image {} has no target", i.name)))?;
        let kind = TargetRef::parse(target).map_err(|e| invalid(b, e.to_string()))?;
        let fits = match b.strategy {
            Strategy::Raw => matches!(kind, TargetRef::Raw(_)),
            _ => matches!(kind, TargetRef::Ubi(_)),
        };
        if !fits {
            return Err(invalid(
                b,
                format!(
                    "strategy {} cannot write image {} to {target}",
                    b.strategy, i.name
                ),
            ));
        }
        let part = check_target(b, &i.name, target, ubi_part)?;
        if matches!(kind, TargetRef::Raw(_)) && (Some(part) == ubi_part || !written.insert(target))
        {
            return Err(invalid(
                b,
                format!("image {} would overwrite another target ({target})", i.name),
            ));
        }
    }
    Ok(())
}

fn check_slots(b: &Board) -> Result<(), BoardError> {
    if b.slots.len() != 2 {
        return Err(invalid(
            b,
            format!(
                "strategy {} needs exactly two slots, found {}",
                b.strategy,
                b.slots.len()
            ),
        ));
    }
    let images: BTreeSet<&str> = b.images.iter().map(|i| i.name.as_str()).collect();
    if let Some(i) = b.images.iter().find(|i| i.target.is_some()) {
        return Err(invalid(
            b,
            format!(
                "image {} of an A/B board takes its targets from the slots, not `target`",
                i.name
            ),
        ));
    }
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &b.slots {
        let keys: BTreeSet<&str> = s.targets.keys().map(String::as_str).collect();
        if keys != images {
            return Err(invalid(
                b,
                format!(
                    "slot {} must give a target for each image exactly ({:?}), it gives {:?}",
                    s.name, images, keys
                ),
            ));
        }
        for (image, target) in &s.targets {
            let part = check_target(b, image, target, s.ubi.as_deref())?;
            if owner.get(part).is_some_and(|o| *o != s.name) {
                return Err(invalid(
                    b,
                    format!(
                        "slots share partition {part}: an update of one slot would write the other"
                    ),
                ));
            }
            owner.insert(part, &s.name);
        }
        if let Some(ubi) = s.ubi.as_deref() {
            if owner.insert(ubi, &s.name).is_some_and(|o| o != s.name) {
                return Err(invalid(b, format!("slots share UBI partition {ubi}")));
            }
        }
    }
    let (a, z) = (&b.slots[0], &b.slots[1]);
    if a.name == z.name || a.index == z.index {
        return Err(invalid(
            b,
            "the two slots need distinct names and indexes".into(),
        ));
    }
    Ok(())
}

fn check_bootloader(b: &Board) -> Result<(), BoardError> {
    match (b.strategy, &b.bootloader) {
        (Strategy::AbZyxel, Some(Bootloader::ZyxelBootconfig { partition })) => {
            if b.partition(partition).is_none() {
                return Err(invalid(
                    b,
                    format!("bootconfig partition {partition:?} is not a partition of the board"),
                ));
            }
            let indexes: BTreeSet<u32> = b.slots.iter().map(|s| s.index).collect();
            if indexes != BTreeSet::from([0, 1]) {
                return Err(invalid(
                    b,
                    "Zyxel bootconfig slots are images 0 and 1".into(),
                ));
            }
            let writes_it =
                b.slots.iter().flat_map(|s| s.targets.values()).any(
                    |t| matches!(TargetRef::parse(t), Ok(TargetRef::Raw(p)) if p == partition),
                );
            if writes_it {
                return Err(invalid(
                    b,
                    "a slot target is the bootconfig partition".into(),
                ));
            }
            Ok(())
        }
        (
            Strategy::AbUboot,
            Some(Bootloader::UbootEnv {
                fw_env_config,
                attempts,
            }),
        ) => {
            if !fw_env_config.starts_with('/') {
                return Err(invalid(
                    b,
                    format!("fw_env_config {fw_env_config:?} must be an absolute device path"),
                ));
            }
            match attempts {
                Some(n) if !(1..=9).contains(n) => Err(invalid(
                    b,
                    format!("attempts = {n}: the boot script counts 1 to 9 boots"),
                )),
                _ => Ok(()),
            }
        }
        (Strategy::AbZyxel | Strategy::AbUboot, other) => Err(invalid(
            b,
            format!(
                "strategy {} needs a [bootloader] of type {}, found {}",
                b.strategy,
                if b.strategy == Strategy::AbZyxel {
                    "zyxel-bootconfig"
                } else {
                    "uboot-env"
                },
                match other {
                    None => "none",
                    Some(Bootloader::ZyxelBootconfig { .. }) => "zyxel-bootconfig",
                    Some(Bootloader::UbootEnv { .. }) => "uboot-env",
                }
            ),
        )),
        (_, Some(Bootloader::ZyxelBootconfig { .. })) => Err(invalid(
            b,
            format!(
                "a zyxel-bootconfig bootloader needs strategy ab-zyxel, not {}",
                b.strategy
            ),
        )),
        _ => Ok(()),
    }
}
