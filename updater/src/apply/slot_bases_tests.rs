//! The running slot's images as patch bases, on liminix-flash's simulators: NAND kernel
//! partitions (one with a bad block, written by the raw writer as the install writes it) and
//! UBI root filesystem volumes.

use std::collections::BTreeMap;
use std::io::Read;

use liminix_bundle::manifest::ImageBase;
use liminix_bundle::ImageEntry;
use liminix_flash::{write_raw, MemImage, NoProgress, RawOptions, SimFlash, SimUbi};
use sha2::{Digest, Sha256};

use super::*;
use crate::ab::{FlowConfig, HealthConfig, SlotTargets};
use crate::apply::patch::check_manifest_base;
use crate::error::AgentError;

const EB: u32 = 16 * 1024;

#[derive(Default)]
struct Sims {
    flash: BTreeMap<String, SimFlash>,
    ubi: BTreeMap<String, SimUbi>,
}

impl SlotDevices for &mut Sims {
    fn open(&mut self, target: &Target) -> Result<Option<BaseDev<'_>>> {
        let gone = || ApplyError::Device {
            target: format!("{target:?}"),
            source: "not simulated".into(),
        };
        Ok(Some(match target {
            Target::Mtd { name } => BaseDev::Flash(self.flash.get_mut(name).ok_or_else(gone)?),
            Target::UbiPartition {
                partition, volume, ..
            } => match self.ubi.get_mut(partition) {
                // As on the device: a partition nobody attached has no volumes to read.
                None => return Ok(None),
                Some(ubi) => BaseDev::Volume {
                    ubi,
                    name: volume.clone(),
                },
            },
            _ => return Err(gone().into()),
        }))
    }
}

fn layout() -> SlotLayout {
    let slot = |k: &str, u: &str| SlotTargets {
        kernel: Target::Mtd { name: k.into() },
        kernel_max: 8 * u64::from(EB),
        rootfs: Some(Target::UbiPartition {
            partition: u.into(),
            volume: "rootfs".into(),
            volume_type: liminix_boards::VolumeKind::Dynamic,
            size: None,
        }),
        rootfs_max: 1 << 20,
    };
    SlotLayout {
        board: "vm-ab-uboot".into(),
        slots: [slot("kernel_a", "ubi_a"), slot("kernel_b", "ubi_b")],
        flow: FlowConfig::UbootEnv {
            config: "/etc/fw_env.config".into(),
            attempts: 2,
        },
        health: HealthConfig::default(),
    }
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(u32::from(seed)) as u8
        })
        .collect()
}

/// Both slots' kernels written by the raw writer (block 1 of slot b's partition is bad) and
/// both root filesystems in UBI volumes.
fn sims(kernels: [&[u8]; 2], rootfs: [&[u8]; 2]) -> Sims {
    let mut s = Sims::default();
    for (i, (k, r)) in kernels.iter().zip(rootfs).enumerate() {
        let mut f = SimFlash::nand(8, EB, 2048);
        if i == 1 {
            f.set_bad(1);
        }
        let opts = RawOptions::default();
        write_raw(&mut f, &MemImage(k.to_vec()), &opts, &mut NoProgress).unwrap();
        let mut u = SimUbi::new(32, 16 * 1024);
        u.load_volume("rootfs", 256 * 1024, r);
        let slot = ["a", "b"][i];
        s.flash.insert(format!("kernel_{slot}"), f);
        s.ubi.insert(format!("ubi_{slot}"), u);
    }
    s
}

fn entry(name: &str, base: &[u8]) -> ImageEntry {
    ImageEntry {
        name: name.into(),
        target: format!("slot:{name}"),
        sha256: "00".repeat(32),
        size: 1,
        base: Some(ImageBase {
            sha256: hex::encode(Sha256::digest(base)),
            size: base.len() as u64,
        }),
    }
}

fn is_mismatch(r: Result<()>) -> bool {
    matches!(r, Err(AgentError::Apply(ApplyError::BaseMismatch { .. })))
}

#[test]
fn the_booted_slots_images_are_the_bases() {
    let (ka, kb) = (bytes(1, 40_000), bytes(2, 50_000));
    let (ra, rb) = (bytes(3, 70_000), bytes(4, 90_000));
    for booted in Slot::ALL {
        let mut s = sims([&ka, &kb], [&ra, &rb]);
        let mut bases = SlotBases::new(layout(), booted, &mut s);
        let (k, r, other_k, other_r) = match booted {
            Slot::A => (&ka, &ra, &kb, &rb),
            Slot::B => (&kb, &rb, &ka, &ra),
        };
        check_manifest_base(&entry("kernel", k), &mut bases).unwrap();
        check_manifest_base(&entry("rootfs", r), &mut bases).unwrap();
        // The slot being written is never the base.
        assert!(is_mismatch(check_manifest_base(
            &entry("kernel", other_k),
            &mut bases
        )));
        assert!(is_mismatch(check_manifest_base(
            &entry("rootfs", other_r),
            &mut bases
        )));
    }
}

#[test]
fn a_nand_kernel_is_read_past_its_bad_blocks() {
    let kernel = bytes(7, 50_000);
    let mut s = sims([&bytes(1, 100), &kernel], [&[1], &[2]]);
    // The partition read straight through is not the image: block 1 is bad and the writer
    // put the image's second block in block 2.
    let straight = &s.flash["kernel_b"].contents()[..kernel.len()];
    assert_ne!(straight, &kernel[..]);
    let mut bases = SlotBases::new(layout(), Slot::B, &mut s);
    let mut read = Vec::new();
    bases
        .open(&entry("kernel", &kernel))
        .unwrap()
        .take(kernel.len() as u64)
        .read_to_end(&mut read)
        .unwrap();
    assert!(read == kernel, "the image as written");
    check_manifest_base(&entry("kernel", &kernel), &mut bases).unwrap();
}

#[test]
fn a_changed_running_slot_or_missing_volume_refuses_the_patch() {
    let (k, r) = (bytes(1, 40_000), bytes(3, 70_000));
    let mut s = sims([&k, &bytes(2, 10)], [&r, &[0]]);
    // What the patch was made against, then the running slot changed under it.
    let mut changed = r.clone();
    changed[69_999] ^= 1;
    let mut bases = SlotBases::new(layout(), Slot::A, &mut s);
    let e = check_manifest_base(&entry("rootfs", &changed), &mut bases);
    assert!(is_mismatch(e));
    let e = check_manifest_base(&entry("rootfs", &changed), &mut bases).unwrap_err();
    assert_eq!(e.exit_code(), 10, "{e}");
    // A base longer than the slot holds: mismatch, not a read past the end.
    let long = [k.clone(), vec![0xFF; 8 * EB as usize]].concat();
    assert!(is_mismatch(check_manifest_base(
        &entry("kernel", &long),
        &mut bases
    )));
    let mut s = sims([&k, &k], [&r, &r]);
    s.ubi.insert("ubi_a".into(), SimUbi::new(32, 16 * 1024));
    let mut bases = SlotBases::new(layout(), Slot::A, &mut s);
    let e = check_manifest_base(&entry("rootfs", &r), &mut bases).unwrap_err();
    assert!(
        matches!(&e, AgentError::Apply(ApplyError::NoBase { target, .. }) if target.contains("slot a")),
        "{e}"
    );
    assert_eq!(e.exit_code(), 10);
    let e = check_manifest_base(&entry("dtb", &r), &mut bases).unwrap_err();
    assert!(
        matches!(e, AgentError::Apply(ApplyError::NotSlotImage(_))),
        "{e}"
    );
    s.ubi.remove("ubi_a");
    let mut bases = SlotBases::new(layout(), Slot::A, &mut s);
    let e = check_manifest_base(&entry("rootfs", &r), &mut bases).unwrap_err();
    assert_eq!(e.exit_code(), 10, "unattached: no base, {e}");
}
