//! Shared helpers for the integration tests: deterministic images, factory
//! loading around bad blocks, and a recovery environment over simulators.
#![allow(dead_code)]

use liminix_flash::flash::good_blocks;
use liminix_flash::image::sha256;
use liminix_flash::txn::{Outcome, Recovered, RecoveryEnv, TxError};
use liminix_flash::{Flash, ImageSource, MemImage, SimFlash, SimUbi, TxRecord, Ubi};

pub use liminix_testdata::pattern;

/// `base` with one byte changed in each of the erase blocks listed.
pub fn change_blocks(base: &[u8], erase: usize, blocks: &[usize]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &b in blocks {
        v[b * erase + 7] ^= 0x5A;
    }
    v
}

/// Put `data` on the good blocks of `flash` like a factory programmer that
/// skips bad blocks (no operations counted).
pub fn factory_load(flash: &mut SimFlash, data: &[u8]) {
    let eb = flash.geometry().erase_size as usize;
    let blocks = good_blocks(flash).unwrap();
    for (chunk, off) in data.chunks(eb).zip(blocks) {
        flash.load(off, chunk);
    }
}

/// What the bootloader would load from a raw partition: `Some("old")`,
/// `Some("new")` or `None` (neither, verified by SHA-256).
pub fn raw_boots(flash: &mut dyn Flash, old: &[u8], new: &[u8]) -> Option<&'static str> {
    let is = |flash: &mut dyn Flash, img: &[u8]| {
        liminix_flash::flash::read_image(flash, img.len() as u64)
            .unwrap()
            .is_some_and(|d| sha256(&d) == sha256(img))
    };
    if is(flash, new) {
        Some("new")
    } else if is(flash, old) {
        Some("old")
    } else {
        None
    }
}

/// The same for UBI volume `name`.
pub fn ubi_boots(ubi: &mut dyn Ubi, name: &str, old: &[u8], new: &[u8]) -> Option<&'static str> {
    let is = |ubi: &mut dyn Ubi, img: &[u8]| {
        liminix_flash::ubi_update::read_named(ubi, name, img.len() as u64)
            .unwrap()
            .is_some_and(|d| sha256(&d) == sha256(img))
    };
    if is(ubi, new) {
        Some("new")
    } else if is(ubi, old) {
        Some("old")
    } else {
        None
    }
}

/// Recovery environment over simulators; `image` is the staged image, if kept.
pub struct SimEnv<'a> {
    pub flash: Option<&'a mut SimFlash>,
    pub ubi: Option<&'a mut SimUbi>,
    pub image: Option<Vec<u8>>,
}

impl RecoveryEnv for SimEnv<'_> {
    fn source(&mut self, _rec: &TxRecord) -> Option<Box<dyn ImageSource>> {
        self.image
            .clone()
            .map(|v| Box::new(MemImage(v)) as Box<dyn ImageSource>)
    }

    fn flash(&mut self, rec: &TxRecord) -> Result<&mut dyn Flash, TxError> {
        match self.flash.as_deref_mut() {
            Some(f) => Ok(f),
            None => Err(TxError::Target {
                target: rec.target.clone(),
                reason: "no flash in this test".into(),
            }),
        }
    }

    fn ubi(&mut self, rec: &TxRecord) -> Result<&mut dyn Ubi, TxError> {
        match self.ubi.as_deref_mut() {
            Some(u) => Ok(u),
            None => Err(TxError::Target {
                target: rec.target.clone(),
                reason: "no UBI in this test".into(),
            }),
        }
    }
}

/// The outcomes of a recovery run, or the first per-record error.
pub fn outcomes(done: Vec<Recovered>) -> Result<Vec<Outcome>, TxError> {
    done.into_iter().map(|(_, r)| r).collect()
}

/// An image source that counts how often it is opened (each open is one pass
/// over the image) and can hand out different bytes from the `swap_at`-th open
/// on, like a file rewritten while the agent works on it.
pub struct Passes {
    pub data: Vec<u8>,
    pub changed: Vec<u8>,
    pub swap_at: usize,
    pub opens: std::cell::Cell<usize>,
}

impl Passes {
    pub fn new(data: Vec<u8>) -> Self {
        Passes {
            changed: data.clone(),
            data,
            swap_at: usize::MAX,
            opens: Default::default(),
        }
    }
}

impl ImageSource for Passes {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn open(&self) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        let n = self.opens.get() + 1;
        self.opens.set(n);
        let bytes = if n >= self.swap_at {
            &self.changed
        } else {
            &self.data
        };
        Ok(Box::new(&bytes[..]))
    }
    fn describe(&self) -> String {
        "counting test image".into()
    }
}
