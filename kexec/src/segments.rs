//! Segments for `kexec_load`: what the kernel's checks demand of them (page-aligned start and
//! size, no overlaps, at most 16), checked here first so a refusal names the culprit.

use crate::iomem::{describe, Ram};
use crate::KexecError;

/// `KEXEC_SEGMENT_MAX`.
pub const MAX_SEGMENTS: usize = 16;

/// One piece of the new system: `data` copied to physical `address`, `size` bytes reserved
/// there (the rest zeroed by the kernel).
#[derive(Clone, PartialEq, Eq)]
pub struct Segment {
    pub what: String,
    pub data: Vec<u8>,
    pub address: u64,
    pub size: u64,
}

// Without the bytes: a failed assertion must not print megabytes.
impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:#x} bytes) at {:#x}..{:#x}",
            self.what,
            self.data.len(),
            self.address,
            self.address.saturating_add(self.size)
        )
    }
}

/// A kernel laid out for `kexec_load`: segments and the physical entry address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

pub fn align_up(v: u64, to: u64) -> Result<u64, KexecError> {
    v.checked_add(to - 1)
        .map(|x| x & !(to - 1))
        .ok_or(KexecError::AddressWidth(v))
}

impl Segment {
    /// A segment of `data` at `address` reserving at least `size` bytes, rounded to pages.
    pub fn new(
        what: &str,
        data: Vec<u8>,
        address: u64,
        size: u64,
        page: u64,
    ) -> Result<Segment, KexecError> {
        if !address.is_multiple_of(page) {
            return Err(KexecError::Malformed(format!(
                "{what} starts at {address:#x}, not on a {page:#x}-byte page"
            )));
        }
        let size = align_up(size.max(data.len() as u64), page)?;
        Ok(Segment {
            what: what.to_owned(),
            data,
            address,
            size,
        })
    }

    pub fn end(&self) -> Result<u64, KexecError> {
        self.address
            .checked_add(self.size)
            .ok_or(KexecError::AddressWidth(self.address))
    }
}

impl Layout {
    /// Refuses overlapping segments, segments outside RAM and too many segments.
    pub fn check(&self, ram: &[Ram]) -> Result<(), KexecError> {
        if self.segments.len() > MAX_SEGMENTS {
            return Err(KexecError::TooManySegments {
                count: self.segments.len(),
                max: MAX_SEGMENTS,
            });
        }
        for (i, s) in self.segments.iter().enumerate() {
            let end = s.end()?;
            if !ram.iter().any(|r| r.start <= s.address && end <= r.end) {
                return Err(KexecError::OutsideRam {
                    what: s.what.clone(),
                    start: s.address,
                    end,
                    ram: describe(ram),
                });
            }
            for t in &self.segments[..i] {
                if s.address < t.end()? && t.address < end {
                    return Err(KexecError::Overlap {
                        first: t.what.clone(),
                        second: s.what.clone(),
                        at: s.address.max(t.address),
                    });
                }
            }
        }
        Ok(())
    }
}
