//! A simulated A/B device: per slot a NAND kernel partition and a NAND UBI partition
//! (written raw), and the boot state on NAND too (a bootconfig block, or a redundant
//! U-Boot environment in two partitions), all on one power rail.

use std::cell::RefCell;
use std::rc::Rc;

use liminix_bootenv::storage::{CopyDevice, MtdCopy};
use liminix_bootenv::zyxel::BootconfigDevice;
use liminix_bootenv::{Endian, Env, EnvStore, Layout};
use liminix_flash::flash::read_image;
use liminix_flash::{Flash, MemImage, PowerRail, SimFlash};

use crate::ab::install::{install_slot, SlotDevs, SlotImages, Verified};
use crate::ab::uboot::{script_boot_decision, UBootEnvFlow};
use crate::ab::zyxel::ZyxelFlow;
use crate::ab::{AbError, BootFlow, InstallReport, RootfsDev, Slot, SlotTargets, Target};

pub const EB: u32 = 16 * 1024;
pub const PAGE: u32 = 2048;
pub const ENV_SIZE: usize = 0x2000;

/// A simulated partition several owners share (the flow owns the boot state, the test
/// inspects it).
pub type Shared = Rc<RefCell<SimFlash>>;

/// A NAND partition of `blocks` erase blocks on `rail`.
pub fn shared_nand(blocks: u64, rail: &PowerRail) -> Shared {
    Rc::new(RefCell::new(
        SimFlash::nand(blocks, EB, PAGE).with_rail(rail.clone()),
    ))
}

/// Deterministic test image with an all-0xFF stretch (skipped by the raw writer).
pub fn image(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    let mid = len / 2;
    out[mid..(mid + 5000).min(len)].fill(0xFF);
    out
}

/// The two images of one slot.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Images {
    pub kernel: Vec<u8>,
    pub rootfs: Vec<u8>,
}

impl Images {
    pub fn new(seed: u32) -> Self {
        Images {
            kernel: image(seed, 40_000 + seed as usize * 8),
            rootfs: image(seed + 100, 70_000 + seed as usize * 8),
        }
    }
}

/// Which boot loader the device has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Zyxel,
    UBoot { attempts: u8 },
}

pub struct World {
    pub rail: PowerRail,
    pub kind: Kind,
    pub kernel: [Shared; 2],
    pub rootfs: [Shared; 2],
    pub boot: Vec<Shared>,
    /// What each slot may completely hold (its old image, and the new one for B).
    pub complete: [Vec<Images>; 2],
}

pub fn layout() -> SlotTargets {
    SlotTargets {
        kernel: Target::Mtd {
            name: "kernel".into(),
        },
        kernel_max: 8 * u64::from(EB),
        rootfs: Some(Target::Mtd { name: "ubi".into() }),
        rootfs_max: 8 * u64::from(EB),
    }
}

impl World {
    /// Slot A holds `a` and is committed; slot B holds `b` (or is erased).
    pub fn new(kind: Kind, a: &Images, b: Option<&Images>) -> Self {
        let rail = PowerRail::new();
        let part = || shared_nand(8, &rail);
        let w = World {
            kind,
            kernel: [part(), part()],
            rootfs: [part(), part()],
            boot: match kind {
                Kind::Zyxel => vec![shared_nand(1, &rail)],
                Kind::UBoot { .. } => vec![shared_nand(1, &rail), shared_nand(1, &rail)],
            },
            complete: [vec![a.clone()], b.into_iter().cloned().collect()],
            rail,
        };
        w.load(Slot::A, a);
        if let Some(b) = b {
            w.load(Slot::B, b);
        }
        w
    }

    fn load(&self, slot: Slot, imgs: &Images) {
        let i = slot.index();
        self.kernel[i].borrow_mut().load(0, &imgs.kernel);
        self.rootfs[i].borrow_mut().load(0, &imgs.rootfs);
    }

    /// Sets the bootconfig bytes (Zyxel) or the environment text (U-Boot) at the factory.
    pub fn factory_state(&self, zyxel: [u8; 2], env_text: &str) {
        match self.kind {
            Kind::Zyxel => self.boot[0].borrow_mut().load(0, &zyxel),
            Kind::UBoot { .. } => {
                let env = Env::from_text(env_text.as_bytes()).unwrap();
                self.env_store().save(&env).unwrap();
            }
        }
    }

    pub fn env_store(&self) -> EnvStore {
        let layout = Layout::new(ENV_SIZE, true, Endian::Little).unwrap();
        let copies: Vec<Box<dyn CopyDevice>> = self
            .boot
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Box::new(MtdCopy::new(s.clone(), format!("env{i}"), 0, 0, 1)) as Box<dyn CopyDevice>
            })
            .collect();
        EnvStore::new(layout, copies).unwrap()
    }

    pub fn flow(&self) -> Box<dyn BootFlow> {
        match self.kind {
            Kind::Zyxel => Box::new(ZyxelFlow::new(
                BootconfigDevice::on_flash(Box::new(self.boot[0].clone()), "bootconfig".into(), 0)
                    .unwrap(),
            )),
            Kind::UBoot { attempts } => {
                Box::new(UBootEnvFlow::new(self.env_store(), attempts).unwrap())
            }
        }
    }

    /// Runs the strategy's install of `imgs` into `slot`.
    pub fn install(&mut self, slot: Slot, imgs: &Images) -> Result<InstallReport, AbError> {
        if !self.complete[slot.index()].contains(imgs) {
            self.complete[slot.index()].push(imgs.clone());
        }
        self.install_claiming(slot, imgs, None)
    }

    /// The install with the kernel claimed (verified earlier) to hash as `kernel_sha`
    /// instead of what it hashes to now: a staged file that changed after verification.
    pub fn install_claiming(
        &mut self,
        slot: Slot,
        imgs: &Images,
        kernel_sha: Option<[u8; 32]>,
    ) -> Result<InstallReport, AbError> {
        let (k, r) = (MemImage(imgs.kernel.clone()), MemImage(imgs.rootfs.clone()));
        let mut kdev = self.kernel[slot.index()].clone();
        let mut rdev = self.rootfs[slot.index()].clone();
        let devs = SlotDevs {
            kernel: &mut kdev,
            rootfs: Some(RootfsDev::Raw(&mut rdev)),
        };
        let mut kernel = Verified::of(&k);
        kernel.sha256 = kernel_sha.unwrap_or(kernel.sha256);
        let imgs = SlotImages {
            kernel,
            rootfs: Some(Verified::of(&r)),
        };
        install_slot(self.flow().as_mut(), slot, &layout(), devs, &imgs)
    }

    /// A reset during which the power fails again while the boot loader writes its own
    /// state: returns `Err` if the write was cut (the boot never happened).
    pub fn reset_may_cut(&self) -> Result<Slot, ()> {
        match self.kind {
            Kind::Zyxel => {
                let block = self.boot[0].borrow().contents().to_vec();
                let (slot, next) =
                    liminix_bootenv::zyxel::vendor_boot_decision_block(&block).unwrap();
                if let Some(next) = next {
                    let mut f = self.boot[0].clone();
                    f.erase_block(0).map_err(|_| ())?;
                    f.program(0, &next).map_err(|_| ())?;
                }
                Ok(Slot::from_index(slot as usize))
            }
            Kind::UBoot { .. } => {
                let mut store = self.env_store();
                let env = store.load().expect("environment loadable").env;
                let (slot, next) = script_boot_decision(&env);
                if let Some(next) = next {
                    store.save(&next).map_err(|_| ())?;
                }
                Ok(slot)
            }
        }
    }

    /// What the boot loader does at a reset: the slot it boots (after writing its own
    /// state change, as the vendor U-Boot or the boot script does). Panics if the U-Boot
    /// environment cannot be loaded.
    pub fn reset(&self) -> Slot {
        match self.kind {
            Kind::Zyxel => {
                let block = self.boot[0].borrow().contents().to_vec();
                let (slot, next) = liminix_bootenv::zyxel::vendor_boot_decision_block(&block)
                    .expect("bootconfig parses");
                if let Some(next) = next {
                    let mut f = self.boot[0].clone();
                    f.erase_block(0).unwrap();
                    f.program(0, &next).unwrap();
                }
                Slot::from_index(slot as usize)
            }
            Kind::UBoot { .. } => {
                let mut store = self.env_store();
                let env = store
                    .load()
                    .expect("environment loadable after any cut")
                    .env;
                let (slot, next) = script_boot_decision(&env);
                if let Some(next) = next {
                    store.save(&next).unwrap();
                }
                slot
            }
        }
    }

    /// Whether `slot` holds one of the images it may completely hold, as a boot
    /// loader reads it.
    pub fn slot_complete(&self, slot: Slot) -> bool {
        let i = slot.index();
        self.complete[i].iter().any(|imgs| self.holds(slot, imgs))
    }

    pub fn holds(&self, slot: Slot, imgs: &Images) -> bool {
        let i = slot.index();
        let mut k = self.kernel[i].clone();
        let mut r = self.rootfs[i].clone();
        read_image(&mut k, imgs.kernel.len() as u64)
            .unwrap()
            .as_ref()
            == Some(&imgs.kernel)
            && read_image(&mut r, imgs.rootfs.len() as u64)
                .unwrap()
                .as_ref()
                == Some(&imgs.rootfs)
    }

    /// Erase/program operations so far.
    pub fn ops(&self) -> u64 {
        self.rail.ops()
    }
}
