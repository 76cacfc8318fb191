//! The properties the fuzz targets (`fuzz/`) check on arbitrary bytes, kept here so that
//! `cargo fuzz` and the fixed corpus in `tests/fuzz_corpus_smoke.rs` run the same checks.
//! Each panics when a property fails.

use crate::layout::{Endian, Layout};
use crate::zyxel::{vendor_boot_decision, vendor_boot_decision_block, Bootconfig};
use crate::{Env, EnvError};

/// Any bytes as a copy of either layout and byte order: inspecting and parsing must not
/// panic, and a parsed environment must re-encode and parse back to itself. Returns how
/// many of the four readings parsed with a good CRC.
pub fn env_roundtrip(data: &[u8]) -> usize {
    let mut parsed = 0;
    for redundant in [false, true] {
        for endian in [Endian::Little, Endian::Big] {
            let Ok(l) = Layout::new(data.len(), redundant, endian) else {
                continue;
            };
            let st = l.inspect(data);
            let Ok((env, _)) = l.parse(data) else {
                continue;
            };
            parsed += usize::from(st.crc_ok);
            // A full area without the final empty string parses (U-Boot imports it too)
            // but is re-encoded only with the terminator, so it may be one byte short.
            let img = match l.encode(&env, 1, 0) {
                Ok(img) => img,
                Err(EnvError::TooLarge { needed, available }) => {
                    assert_eq!(needed, available + 1);
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            assert!(l.inspect(&img).crc_ok);
            assert_eq!(l.parse(&img).unwrap().0, env);
        }
    }
    let _ = Env::from_text(data);
    parsed
}

/// Any bytes as a bootconfig block: decoding, the vendor decision and re-encoding must
/// not panic and must agree with each other.
pub fn bootconfig(data: &[u8]) {
    let Ok(bc) = Bootconfig::parse(data) else {
        return;
    };
    let (slot, next) = vendor_boot_decision(&bc);
    let (slot2, block) = vendor_boot_decision_block(data).unwrap();
    assert_eq!(slot, slot2);
    assert!(slot <= 1);
    assert_eq!(next.is_some(), block.is_some());
    if let (Some(n), Some(b)) = (next, block) {
        assert_eq!(Bootconfig::parse(&b).unwrap(), n);
        assert_eq!(b.len(), data.len());
    }
    assert_eq!(Bootconfig::parse(&bc.encode_vendor()).unwrap(), bc);
}

/// Any bytes as an fw_env.config, its copies opened on one simulated flash chip (NOR or NAND,
/// 1 MiB): parsing keeps every number within the config limits, and loading and saving the
/// environment refuses what does not fit the chip instead of panicking or allocating what a
/// line asks for. Then the Zyxel bootconfig at the first line's offset on the same chip.
/// Returns what the environment came to: parsed, loaded and saved, or why not.
#[cfg(feature = "fuzzing")]
pub fn fw_env_config(data: &[u8]) -> crate::Result<()> {
    use crate::config::{MAX_ENV_SIZE, MAX_SECTORS, MAX_SECTOR_SIZE};

    let text = String::from_utf8_lossy(data);
    let cfg = crate::FwEnvConfig::parse(&text, std::path::Path::new("fuzz.config"))?;
    for e in &cfg.entries {
        assert!(e.env_size <= MAX_ENV_SIZE && e.sector_size <= MAX_SECTOR_SIZE);
        assert!(e.sectors <= MAX_SECTORS);
    }
    let nand = data.first().is_some_and(|b| b & 1 == 1);
    let chip = if nand {
        liminix_flash::SimFlash::nand(64, 0x4000, 512)
    } else {
        liminix_flash::SimFlash::nor(64, 0x4000)
    };
    let chip = std::rc::Rc::new(std::cell::RefCell::new(chip));
    let result = env_on_chip(&cfg, &chip);
    if let Ok(offset) = u64::try_from(cfg.entries[0].offset) {
        let flash = Box::new(chip.clone());
        if let Ok(mut dev) = crate::zyxel::BootconfigDevice::on_flash(flash, "sim".into(), offset) {
            let _ = dev.read();
        }
    }
    result
}

#[cfg(feature = "fuzzing")]
fn env_on_chip(
    cfg: &crate::FwEnvConfig,
    chip: &std::rc::Rc<std::cell::RefCell<liminix_flash::SimFlash>>,
) -> crate::Result<()> {
    use crate::storage::{CopyDevice, MtdCopy};

    let size = usize::try_from(cfg.entries[0].env_size)
        .map_err(|_| EnvError::Geometry("env size too large".into()))?;
    let layout = Layout::new(size, cfg.redundant(), Endian::Little)?;
    let mut copies: Vec<Box<dyn CopyDevice>> = Vec::new();
    for e in &cfg.entries {
        let offset = u64::try_from(e.offset)
            .map_err(|_| EnvError::Geometry("negative offset on an MTD device".into()))?;
        let copy = MtdCopy::new(chip.clone(), "sim", offset, e.sector_size, e.sectors);
        copies.push(Box::new(copy));
    }
    let mut store = crate::EnvStore::new(layout, copies)?;
    let mut env = store.load().map(|l| l.env).unwrap_or_default();
    env.set(b"fuzz", b"1")?;
    store.save(&env)?;
    store.load().map(drop)
}
