//! The `Flash` trait: the handful of MTD operations the write strategies use,
//! implemented by the simulator and by real `/dev/mtdN` devices.

use std::io;

/// Shape of a flash partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Partition size in bytes.
    pub size: u64,
    /// Erase block size in bytes.
    pub erase_size: u32,
    /// Smallest programmable unit (NAND page; 1 on NOR).
    pub write_size: u32,
    /// NAND semantics: bad blocks, pages programmable once per erase.
    pub is_nand: bool,
}

impl Geometry {
    /// Number of erase blocks in the partition.
    pub fn blocks(&self) -> u64 {
        self.size / u64::from(self.erase_size)
    }

    /// Offset of the erase block containing `off`.
    pub fn block_start(&self, off: u64) -> u64 {
        off - off % u64::from(self.erase_size)
    }
}

/// Failure of one flash operation.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    /// The (simulated) power failed during or before this operation.
    #[error("power cut during {op} at {off:#x}")]
    PowerCut { op: &'static str, off: u64 },
    /// Offset or length outside the partition or not aligned to the unit.
    #[error("{op} at {off:#x}+{len:#x}: out of range or misaligned")]
    Range {
        op: &'static str,
        off: u64,
        len: u64,
    },
    /// NAND page programmed twice without an erase in between.
    #[error("program at {off:#x}: page already programmed since last erase")]
    NotErased { off: u64 },
    /// The device reported an erase failure (block is wearing out).
    #[error("erase of block {off:#x} failed")]
    EraseFailed { off: u64 },
    /// The device reported a program failure.
    #[error("program at {off:#x} failed")]
    ProgramFailed { off: u64 },
    /// Uncorrectable ECC error while reading.
    #[error("uncorrectable ECC error reading {off:#x}")]
    Ecc { off: u64 },
    /// Operating-system error from a real device.
    #[error("{op} at {off:#x}: {source}")]
    Io {
        op: &'static str,
        off: u64,
        #[source]
        source: io::Error,
    },
}

impl FlashError {
    /// Whether this error means the power went away (simulation only).
    pub fn is_power_cut(&self) -> bool {
        matches!(self, FlashError::PowerCut { .. })
    }
}

/// Raw flash access as used by the strategies. Offsets are partition-relative.
pub trait Flash {
    /// Partition geometry.
    fn geometry(&self) -> Geometry;
    /// Read `buf.len()` bytes at `off` (ECC-corrected data).
    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FlashError>;
    /// Erase the block starting at `off` (block-aligned).
    fn erase_block(&mut self, off: u64) -> Result<(), FlashError>;
    /// Program `data` at `off`; offset and length are multiples of `write_size`.
    fn program(&mut self, off: u64, data: &[u8]) -> Result<(), FlashError>;
    /// Whether the block at `off` is marked bad (always false on NOR).
    fn is_bad(&mut self, off: u64) -> Result<bool, FlashError>;
    /// Mark the block at `off` bad.
    fn mark_bad(&mut self, off: u64) -> Result<(), FlashError>;
    /// Total bitflips corrected by ECC so far (monotonic counter).
    fn corrected_bitflips(&mut self) -> Result<u64, FlashError>;
    /// Make every completed erase and program durable. Raw NAND and NOR need
    /// nothing, but a driver that buffers (block2mtd keeps writes in the page
    /// cache of its block device) loses them in a power cut until this returns:
    /// a write is done, and may be reported or have its journal record cleared,
    /// only after it.
    fn sync(&mut self) -> Result<(), FlashError>;
}

/// Flash shared by several owners (two environment copies on one chip, a test that
/// inspects what the code under test writes); one borrow per operation.
impl<F: Flash + ?Sized> Flash for std::rc::Rc<std::cell::RefCell<F>> {
    fn geometry(&self) -> Geometry {
        self.borrow().geometry()
    }
    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.borrow_mut().read(off, buf)
    }
    fn erase_block(&mut self, off: u64) -> Result<(), FlashError> {
        self.borrow_mut().erase_block(off)
    }
    fn program(&mut self, off: u64, data: &[u8]) -> Result<(), FlashError> {
        self.borrow_mut().program(off, data)
    }
    fn is_bad(&mut self, off: u64) -> Result<bool, FlashError> {
        self.borrow_mut().is_bad(off)
    }
    fn mark_bad(&mut self, off: u64) -> Result<(), FlashError> {
        self.borrow_mut().mark_bad(off)
    }
    fn corrected_bitflips(&mut self) -> Result<u64, FlashError> {
        self.borrow_mut().corrected_bitflips()
    }
    fn sync(&mut self) -> Result<(), FlashError> {
        self.borrow_mut().sync()
    }
}

/// A box or a `&mut` borrow of a flash is a flash: every method goes to the flash it points at.
macro_rules! forward_flash {
    ($pointer:ty) => {
        impl<F: Flash + ?Sized> Flash for $pointer {
            fn geometry(&self) -> Geometry {
                (**self).geometry()
            }
            fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FlashError> {
                (**self).read(off, buf)
            }
            fn erase_block(&mut self, off: u64) -> Result<(), FlashError> {
                (**self).erase_block(off)
            }
            fn program(&mut self, off: u64, data: &[u8]) -> Result<(), FlashError> {
                (**self).program(off, data)
            }
            fn is_bad(&mut self, off: u64) -> Result<bool, FlashError> {
                (**self).is_bad(off)
            }
            fn mark_bad(&mut self, off: u64) -> Result<(), FlashError> {
                (**self).mark_bad(off)
            }
            fn corrected_bitflips(&mut self) -> Result<u64, FlashError> {
                (**self).corrected_bitflips()
            }
            fn sync(&mut self) -> Result<(), FlashError> {
                (**self).sync()
            }
        }
    };
}

forward_flash!(Box<F>);
forward_flash!(&mut F);

/// Erase `len` bytes at `off`, one erase block after the other (an environment
/// sector may span several blocks). Both must be block-aligned.
pub fn erase_range(flash: &mut dyn Flash, off: u64, len: u64) -> Result<(), FlashError> {
    let eb = u64::from(flash.geometry().erase_size);
    if off % eb != 0 || len % eb != 0 {
        return Err(FlashError::Range {
            op: "erase",
            off,
            len,
        });
    }
    (0..len / eb).try_for_each(|i| flash.erase_block(off + i * eb))
}

/// Physical offsets of the good blocks, in order, as a bootloader that skips
/// bad blocks (U-Boot `nand read`) would visit them.
pub fn good_blocks(flash: &mut dyn Flash) -> Result<Vec<u64>, FlashError> {
    let g = flash.geometry();
    let mut out = Vec::new();
    for b in 0..g.blocks() {
        let off = b * u64::from(g.erase_size);
        if !(g.is_nand && flash.is_bad(off)?) {
            out.push(off);
        }
    }
    Ok(out)
}

/// Read `len` bytes of a raw image the way the bootloader sees it: linearly on
/// NOR, skipping bad blocks on NAND. Returns `None` if the good blocks cannot
/// hold `len` bytes.
pub fn read_image(flash: &mut dyn Flash, len: u64) -> Result<Option<Vec<u8>>, FlashError> {
    let eb = u64::from(flash.geometry().erase_size);
    let blocks = good_blocks(flash)?;
    if (blocks.len() as u64) * eb < len {
        return Ok(None);
    }
    let mut out = vec![0u8; len as usize];
    for (chunk, off) in out.chunks_mut(eb as usize).zip(blocks) {
        flash.read(off, chunk)?;
    }
    Ok(Some(out))
}

/// SHA-256 of the first `len` bytes of a raw image read like [`read_image`],
/// one erase block at a time so memory stays flat however large the image.
/// Returns `None` if the good blocks cannot hold `len` bytes.
pub fn hash_image(flash: &mut dyn Flash, len: u64) -> Result<Option<[u8; 32]>, FlashError> {
    use sha2::{Digest, Sha256};
    let eb = u64::from(flash.geometry().erase_size);
    let blocks = good_blocks(flash)?;
    if (blocks.len() as u64) * eb < len {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; eb as usize];
    let mut left = len;
    for off in blocks {
        if left == 0 {
            break;
        }
        let n = left.min(eb) as usize;
        flash.read(off, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(Some(hasher.finalize().into()))
}
