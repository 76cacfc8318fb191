//! A/B boards: `apply` stages and verifies the images, then hands them to the A/B strategy
//! ([`crate::ab::install`]), which writes the slot that is not running and arms the boot loader.
//! The slot layout comes from `/etc/liminix/ab.json` when the device has one, otherwise it is
//! derived from the board definition.

use liminix_boards::{Board, Bootloader, Place};

use super::error::ApplyError;
use super::targets::mtd_index;
use crate::ab::{self, FlowConfig, ImageRole, SlotLayout, SlotTargets, StagedImage, Target};
use crate::root::DeviceRoot;
use crate::staging::images::StagedFile;

/// Attempts U-Boot gives a new slot when the board definition does not say.
const UBOOT_ATTEMPTS: u8 = 3;

pub(super) fn role(name: &str) -> Result<ImageRole, ApplyError> {
    match name {
        "kernel" => Ok(ImageRole::Kernel),
        "rootfs" => Ok(ImageRole::Rootfs),
        other => Err(ApplyError::NotSlotImage(other.to_owned())),
    }
}

fn target(root: &DeviceRoot, place: &Place) -> Result<Target, ApplyError> {
    Ok(match place {
        Place::Raw { partition, .. } => {
            mtd_index(root, partition)?;
            Target::Mtd {
                name: partition.sysfs_name().to_owned(),
            }
        }
        // Only the partition must exist: the inactive slot's UBI is usually not attached
        // (the kernel attaches the booted slot's), so it is found or attached at install.
        Place::Ubi {
            partition, volume, ..
        } => {
            mtd_index(root, partition)?;
            Target::UbiPartition {
                partition: partition.sysfs_name().to_owned(),
                volume: volume.name.clone(),
                volume_type: volume.kind,
                size: volume.size,
            }
        }
    })
}

fn slot_layout(root: &DeviceRoot, b: &Board, slot: &str) -> Result<SlotTargets, ApplyError> {
    let kernel = b.resolve("kernel", Some(slot))?;
    let rootfs = match b.image("rootfs") {
        Some(_) => Some(b.resolve("rootfs", Some(slot))?),
        None => None,
    };
    Ok(SlotTargets {
        kernel: target(root, &kernel.place)?,
        kernel_max: kernel.max_size,
        rootfs: rootfs
            .as_ref()
            .map(|r| target(root, &r.place))
            .transpose()?,
        rootfs_max: rootfs.as_ref().map_or(0, |r| r.max_size),
    })
}

/// The A/B strategy's view of a board definition.
pub fn ab_board(root: &DeviceRoot, b: &Board) -> Result<SlotLayout, ApplyError> {
    let mut slots: Vec<_> = b.slots.iter().collect();
    slots.sort_by_key(|s| s.index);
    let flow = match &b.bootloader {
        Some(Bootloader::ZyxelBootconfig { partition }) => {
            let (_, p) = b.partition(partition).expect("validated");
            FlowConfig::Zyxel {
                device: format!("mtd:{}", p.sysfs_name()),
                offset: 0,
            }
        }
        Some(Bootloader::UbootEnv {
            fw_env_config,
            attempts,
        }) => FlowConfig::UbootEnv {
            config: fw_env_config.clone(),
            attempts: attempts.unwrap_or(UBOOT_ATTEMPTS),
        },
        None => unreachable!("validated: A/B boards have a bootloader"),
    };
    Ok(SlotLayout {
        board: b.name.clone(),
        slots: [
            slot_layout(root, b, &slots[0].name)?,
            slot_layout(root, b, &slots[1].name)?,
        ],
        flow,
        health: Default::default(),
    })
}

/// The slot layout of the device: its `ab.json` if it has one, else derived from `b`.
pub fn layout(root: &DeviceRoot, b: &Board) -> Result<SlotLayout, ApplyError> {
    match ab::load_slot_layout(root)? {
        Some(l) => Ok(l),
        None => ab_board(root, b),
    }
}

/// Installs the staged images into the other slot.
pub fn install(
    root: &DeviceRoot,
    b: &Board,
    staged: &[StagedFile],
    reboot: bool,
) -> Result<ab::InstallSummary, ApplyError> {
    let board = layout(root, b)?;
    let images = staged
        .iter()
        .map(|s| {
            Ok(StagedImage {
                role: role(&s.name)?,
                path: s.path.clone(),
                sha256: s.sha256,
            })
        })
        .collect::<Result<Vec<_>, ApplyError>>()?;
    let opts = ab::InstallOptions {
        bundle_board: b.name.clone(),
        reboot,
    };
    Ok(ab::install(root, &board, &images, &opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zyxel_board_file_becomes_the_ab_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(dir.path());
        let names = ["u-boot", "kernel", "ubi", "kernel_1", "ubi_1", "bootconfig"];
        // Only the booted slot's UBI is attached, as on the device.
        crate::testutil::fake_sysfs(&root, &names, &[(0, 2)]);
        let b = liminix_boards::builtin("zyxel-nwa50ax").unwrap();
        let ab = ab_board(&root, &b).unwrap();
        assert_eq!(ab.board, "zyxel-nwa50ax");
        assert_eq!(
            ab.flow,
            FlowConfig::Zyxel {
                device: "mtd:bootconfig".into(),
                offset: 0
            }
        );
        let [a, z] = &ab.slots;
        assert_eq!(
            a.kernel,
            Target::Mtd {
                name: "kernel".into()
            }
        );
        assert_eq!(
            z.kernel,
            Target::Mtd {
                name: "kernel_1".into()
            }
        );
        assert_eq!(a.kernel_max, 8 << 20);
        let vol = |p: &str| Target::UbiPartition {
            partition: p.into(),
            volume: "rootfs".into(),
            volume_type: liminix_boards::VolumeKind::Dynamic,
            size: None,
        };
        assert_eq!(
            (a.rootfs.clone(), z.rootfs.clone()),
            (Some(vol("ubi")), Some(vol("ubi_1")))
        );
        assert!(
            z.rootfs_max > 25 << 20 && z.rootfs_max < 32 << 20,
            "{}",
            z.rootfs_max
        );
    }

    #[test]
    fn missing_partitions_are_reported_unattached_ubi_is_not_needed() {
        let dir = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(dir.path());
        let b = liminix_boards::builtin("vm-ab-uboot").unwrap();
        let e = ab_board(&root, &b).unwrap_err();
        assert!(
            matches!(&e, ApplyError::Device { target, .. } if target == "mtd:kernel_a"),
            "{e}"
        );
        let names = [
            "NAND simulator partition 0",
            "NAND simulator partition 1",
            "NAND simulator partition 2",
            "NAND simulator partition 3",
        ];
        crate::testutil::fake_sysfs(&root, &names, &[(0, 2)]);
        let e = ab_board(&root, &b).unwrap_err();
        assert!(
            matches!(&e, ApplyError::Device { target, .. } if target == "mtd:ubi_b"),
            "{e}"
        );
        // Slot b's UBI partition exists but nothing is attached to it: the layout names
        // the partition, the device is found or attached when the slot is written.
        let names = [&names[..], &["NAND simulator partition 4"]].concat();
        crate::testutil::fake_sysfs(&root, &names, &[(0, 2)]);
        let ab = ab_board(&root, &b).unwrap();
        assert_eq!(
            ab.slots[1].kernel,
            Target::Mtd {
                name: "NAND simulator partition 3".into()
            }
        );
        assert!(matches!(
            &ab.slots[1].rootfs,
            Some(Target::UbiPartition { partition, .. }) if partition == "NAND simulator partition 4"
        ));
        assert!(
            matches!(ab.flow, FlowConfig::UbootEnv { ref config, attempts: 2 } if config == "/etc/fw_env.config"),
            "the board's attempts"
        );
        assert!(role("dtb").is_err());
    }
}
