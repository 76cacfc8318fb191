//! The rootfs as a UBI volume of the inactive slot (`Target::UbiVolume`): installed by
//! one volume update, read back, and cut after every operation (LEB writes, kernel
//! erases and programs, the bootconfig write) on one power rail.

use liminix_flash::flash::read_image;
use liminix_flash::ubi::read_volume;
use liminix_flash::{MemImage, SimUbi};

use super::world::{Images, Kind, World};
use crate::ab::install::{install_slot, SlotDevs, SlotImages};
use crate::ab::{AbError, RootfsDev, Slot};

const LEB: u64 = 16 * 1024;

struct Dev {
    world: World,
    ubi: SimUbi,
    vols: [u32; 2],
}

fn dev(a: &Images, old_b: &Images) -> Dev {
    let world = World::new(Kind::Zyxel, a, Some(old_b));
    world.factory_state([0x88, 0x00], "");
    let mut ubi = SimUbi::new(64, LEB).with_rail(world.rail.clone());
    let vols = [
        ubi.load_volume("rootfs_a", 8 * LEB, &a.rootfs),
        ubi.load_volume("rootfs_b", 8 * LEB, &old_b.rootfs),
    ];
    Dev { world, ubi, vols }
}

impl Dev {
    fn install(&mut self, imgs: &Images) -> Result<(), AbError> {
        let (k, r) = (MemImage(imgs.kernel.clone()), MemImage(imgs.rootfs.clone()));
        let mut kdev = self.world.kernel[1].clone();
        let devs = SlotDevs {
            kernel: &mut kdev,
            rootfs: Some(RootfsDev::Volume {
                ubi: &mut self.ubi,
                name: "rootfs_b".into(),
            }),
            durable: Vec::new(),
        };
        let imgs = SlotImages {
            kernel: &k,
            rootfs: Some(&r),
        };
        install_slot(
            self.world.flow().as_mut(),
            Slot::B,
            &super::world::layout(),
            devs,
            &imgs,
        )
        .map(|_| ())
    }

    fn holds(&mut self, slot: Slot, imgs: &Images) -> bool {
        let mut k = self.world.kernel[slot.index()].clone();
        let kernel_ok = read_image(&mut k, imgs.kernel.len() as u64)
            .unwrap()
            .is_some_and(|b| b == imgs.kernel);
        let vol = read_volume(
            &mut self.ubi,
            self.vols[slot.index()],
            imgs.rootfs.len() as u64,
        )
        .unwrap();
        kernel_ok && vol.is_some_and(|b| b == imgs.rootfs)
    }
}

#[test]
fn volume_install_cut_anywhere_boots_a_complete_slot() {
    let (a, old_b, new_b) = (Images::new(1), Images::new(2), Images::new(3));
    let mut cuts = 0;
    for k in 0.. {
        let mut d = dev(&a, &old_b);
        d.world.rail.cut_after(k);
        let done = d.install(&new_b).is_ok();
        assert_eq!(done, !d.world.rail.is_dead(), "k={k}");
        d.world.rail.reboot();
        let slot = d.world.reset();
        let complete = match slot {
            Slot::A => d.holds(Slot::A, &a),
            Slot::B => d.holds(Slot::B, &new_b) || d.holds(Slot::B, &old_b),
        };
        assert!(complete, "k={k}: booted slot {slot} is not complete");
        if done {
            assert_eq!(slot, Slot::B);
            assert!(d.holds(Slot::B, &new_b));
            break;
        }
        cuts += 1;
    }
    assert!(cuts > 10, "only {cuts} operations enumerated");
}

#[test]
fn volume_too_small_is_refused_before_any_write() {
    let (a, old_b) = (Images::new(1), Images::new(2));
    let mut d = dev(&a, &old_b);
    let before = d.world.ops();
    let mut big = Images::new(3);
    big.rootfs = vec![7u8; (8 * LEB + 1) as usize];
    let e = d.install(&big).unwrap_err();
    assert!(matches!(e, AbError::Layout(_)), "{e}");
    assert_eq!(d.world.ops(), before);
    assert!(d.holds(Slot::B, &old_b));
}
