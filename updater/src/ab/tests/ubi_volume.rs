//! The rootfs as a UBI volume of the inactive slot (`RootfsDev::Volume`): installed by
//! one volume update, read back, and cut after every operation (LEB writes, volume
//! removal and creation, kernel erases and programs, the bootconfig write) on one power
//! rail. The volume is taken as it is (an ab.json `ubi-volume` target) or made when it
//! is missing, too small or of the other type (a `ubi-partition` target).

use liminix_flash::ubi::Ubi;
use liminix_flash::ubi_update::read_named;
use liminix_flash::{flash::read_image, MemImage, SimUbi, VolKind};

use super::world::{Images, Kind, World};
use crate::ab::install::{install_slot, SlotDevs, SlotImages, Verified};
use crate::ab::{
    AbError, InstallReport, LayoutError, RootfsDev, Slot, SlotTargets, VolumeAction, VolumeSpec,
};

const LEB: u64 = 16 * 1024;
const LEBS: u64 = 64;
const NAMES: [&str; 2] = ["rootfs_a", "rootfs_b"];

/// All the space the device has, dynamic: what a board's `[[ubi.volume]]` without a
/// size asks for.
const ALL_SPACE: Option<VolumeSpec> = Some(VolumeSpec {
    kind: VolKind::Dynamic,
    bytes: None,
});

struct Dev {
    world: World,
    ubi: SimUbi,
    make: Option<VolumeSpec>,
}

/// Slot A committed with `a`; slot B's kernel holds `old_b`'s and its volume is what
/// `b_volume` makes (`None`: no volume).
fn dev(a: &Images, old_b: &Images, b_volume: Option<(u64, VolKind)>) -> Dev {
    let world = World::new(Kind::Zyxel, a, Some(old_b));
    world.factory_state([0x88, 0x00], "");
    let mut ubi = SimUbi::new(LEBS, LEB).with_rail(world.rail.clone());
    ubi.load_volume(NAMES[0], 8 * LEB, &a.rootfs);
    if let Some((bytes, kind)) = b_volume {
        let data = &old_b.rootfs[..old_b.rootfs.len().min(bytes as usize)];
        ubi.load_volume_kind(NAMES[1], bytes, kind, data);
    }
    Dev {
        world,
        ubi,
        make: None,
    }
}

impl Dev {
    fn install(&mut self, imgs: &Images) -> Result<InstallReport, AbError> {
        let (k, r) = (MemImage(imgs.kernel.clone()), MemImage(imgs.rootfs.clone()));
        let mut kdev = self.world.kernel[1].clone();
        let devs = SlotDevs {
            kernel: &mut kdev,
            rootfs: Some(RootfsDev::Volume {
                ubi: &mut self.ubi,
                name: NAMES[1].into(),
                make: self.make,
            }),
        };
        let imgs = SlotImages {
            kernel: Verified::of(&k),
            rootfs: Some(Verified::of(&r)),
        };
        // The board allows the whole device: what fits is the volume's (or the room's) call.
        let layout = SlotTargets {
            rootfs_max: LEBS * LEB,
            ..super::world::layout()
        };
        install_slot(self.world.flow().as_mut(), Slot::B, &layout, devs, &imgs)
    }

    fn holds(&mut self, slot: Slot, imgs: &Images) -> bool {
        let mut k = self.world.kernel[slot.index()].clone();
        let kernel_ok = read_image(&mut k, imgs.kernel.len() as u64)
            .unwrap()
            .is_some_and(|b| b == imgs.kernel);
        let name = NAMES[slot.index()];
        let vol = read_named(&mut self.ubi, name, imgs.rootfs.len() as u64).unwrap();
        kernel_ok && vol.is_some_and(|b| b == imgs.rootfs)
    }

    fn volume_b(&mut self) -> Option<(u64, VolKind)> {
        let v = self.ubi.volume_by_name(NAMES[1]).unwrap()?;
        Some((v.reserved_bytes, v.kind))
    }
}

/// Cuts the power after every operation of an install of `new_b` on fresh devices from
/// `mk`: each time the boot loader lands on a complete slot, and a retry from A
/// completes. Returns a fresh device.
fn cut_anywhere(mk: impl Fn() -> Dev, a: &Images, old_b: &Images, new_b: &Images) -> Dev {
    for k in 0.. {
        let mut d = mk();
        d.world.rail.cut_after(k);
        let done = d.install(new_b).is_ok();
        assert_eq!(done, !d.world.rail.is_dead(), "k={k}");
        d.world.rail.reboot();
        let slot = d.world.reset();
        let complete = match slot {
            Slot::A => d.holds(Slot::A, a),
            Slot::B => d.holds(Slot::B, new_b) || d.holds(Slot::B, old_b),
        };
        assert!(complete, "k={k}: booted slot {slot} is not complete");
        if done {
            assert_eq!(slot, Slot::B);
            assert!(d.holds(Slot::B, new_b));
            assert!(k > 10, "only {k} operations enumerated");
            return mk();
        }
        if slot == Slot::A {
            // The agent on A retries: it must complete and point at B.
            d.install(new_b)
                .unwrap_or_else(|e| panic!("k={k}: retry {e}"));
            assert_eq!(d.world.reset(), Slot::B, "k={k}");
            assert!(d.holds(Slot::B, new_b), "k={k}: retry");
        }
    }
    unreachable!()
}

#[test]
fn volume_install_cut_anywhere_boots_a_complete_slot() {
    let (a, old_b, new_b) = (Images::new(1), Images::new(2), Images::new(3));
    let mk = || dev(&a, &old_b, Some((8 * LEB, VolKind::Dynamic)));
    let mut d = cut_anywhere(mk, &a, &old_b, &new_b);
    let r = d.install(&new_b).unwrap();
    assert_eq!(r.rootfs_volume, Some(VolumeAction::Kept));
}

#[test]
fn missing_volume_is_made_with_all_the_space_once_the_slot_cannot_boot() {
    let (a, old_b, new_b) = (Images::new(1), Images::new(2), Images::new(3));
    let mk = || Dev {
        make: ALL_SPACE,
        ..dev(&a, &old_b, None)
    };
    let mut d = cut_anywhere(mk, &a, &old_b, &new_b);
    let room = (LEBS - 8) * LEB;
    let r = d.install(&new_b).unwrap();
    assert_eq!(r.rootfs_volume, Some(VolumeAction::Created { bytes: room }));
    assert_eq!(d.volume_b(), Some((room, VolKind::Dynamic)));
    assert!(d.holds(Slot::A, &a) && d.holds(Slot::B, &new_b));
    // The next install finds the volume and keeps it.
    let r = d.install(&Images::new(4)).unwrap();
    assert_eq!(r.rootfs_volume, Some(VolumeAction::Kept));
}

#[test]
fn too_small_or_static_volume_is_made_again() {
    let (a, old_b, new_b) = (Images::new(1), Images::new(2), Images::new(3));
    let small = || Dev {
        make: ALL_SPACE,
        ..dev(&a, &old_b, Some((2 * LEB, VolKind::Dynamic)))
    };
    let mut d = cut_anywhere(small, &a, &old_b, &new_b);
    let room = (LEBS - 8) * LEB;
    let r = d.install(&new_b).unwrap();
    assert_eq!(r.rootfs_volume, Some(VolumeAction::Remade { bytes: room }));
    assert_eq!(d.volume_b(), Some((room, VolKind::Dynamic)));

    let sized = Some(VolumeSpec {
        kind: VolKind::Dynamic,
        bytes: Some(12 * LEB),
    });
    let mut d = Dev {
        make: sized,
        ..dev(&a, &old_b, Some((10 * LEB, VolKind::Static)))
    };
    let r = d.install(&new_b).unwrap();
    let bytes = 12 * LEB;
    assert_eq!(r.rootfs_volume, Some(VolumeAction::Remade { bytes }));
    assert_eq!(d.volume_b(), Some((bytes, VolKind::Dynamic)));
    assert!(d.holds(Slot::B, &new_b));
}

#[test]
fn volume_too_small_is_refused_before_any_write() {
    let (a, old_b) = (Images::new(1), Images::new(2));
    let mut big = Images::new(3);
    big.rootfs = vec![7u8; (8 * LEB + 1) as usize];
    // Without `make` the volume must hold the image as it is.
    let mut d = dev(&a, &old_b, Some((8 * LEB, VolKind::Dynamic)));
    let before = d.world.ops();
    let e = d.install(&big).unwrap_err();
    assert!(
        matches!(
            e,
            AbError::Layout(LayoutError::VolumeTooLarge { slot: Slot::B, .. })
        ),
        "{e}"
    );
    assert_eq!(d.world.ops(), before);
    assert!(d.holds(Slot::B, &old_b));
    // With `make`, no larger than the device's room (or the layout's size).
    big.rootfs = vec![7u8; ((LEBS - 8) * LEB + 1) as usize];
    for (make, b_volume) in [
        (ALL_SPACE, None),
        (ALL_SPACE, Some((2 * LEB, VolKind::Dynamic))),
        (
            Some(VolumeSpec {
                kind: VolKind::Dynamic,
                bytes: Some(4 * LEB),
            }),
            None,
        ),
    ] {
        let mut d = Dev {
            make,
            ..dev(&a, &old_b, b_volume)
        };
        let mut fits = Images::new(3);
        fits.rootfs.truncate(5 * LEB as usize);
        let imgs = if make.unwrap().bytes.is_some() {
            &fits
        } else {
            &big
        };
        let before = (d.world.ops(), d.volume_b());
        let e = d.install(imgs).unwrap_err();
        // Other volumes taking the room are named, with what to do.
        assert!(
            matches!(
                &e,
                AbError::Layout(
                    LayoutError::VolumeTooLarge { others, .. } | LayoutError::NoRoom { others, .. }
                ) if others.iter().any(|o| o == "rootfs_a")
            ),
            "{e}"
        );
        assert!(e.to_string().contains("also holds rootfs_a"), "{e}");
        assert_eq!((d.world.ops(), d.volume_b()), before, "{e}");
    }
    // A layout size larger than the device's room is refused too.
    let mut d = Dev {
        make: Some(VolumeSpec {
            kind: VolKind::Dynamic,
            bytes: Some(LEBS * LEB),
        }),
        ..dev(&a, &old_b, None)
    };
    let e = d.install(&Images::new(3)).unwrap_err();
    assert!(
        matches!(
            e,
            AbError::Layout(LayoutError::NoRoom { slot: Slot::B, .. })
        ),
        "{e}"
    );
    assert_eq!(d.volume_b(), None);
}
