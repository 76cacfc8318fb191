//! Zyxel NWA50AX / NWA55AXE dual-image "bootconfig".
//!
//! The first two bytes of the `bootconfig` partition's first erase block hold, per image,
//! a 2-bit status (none/new/valid/invalid) and a vendor "log" bit, plus the active image
//! in bit 0 of byte 1. There is no magic and no checksum. The vendor U-Boot boots the
//! first image marked NEW after marking it INVALID ("try once"), else the active image,
//! and appends `bootImage=<slot>` to the kernel command line.

mod device;
mod tool;

use std::path::Path;

use crate::error::{EnvError, Result};

pub use device::{BootconfigDevice, FILE_BLOCK};
pub use tool::zyxel_bootconfig_main;

/// Status of one image slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    /// 0: nothing known.
    None = 0,
    /// 1: freshly written, to be tried once.
    New = 1,
    /// 2: booted successfully ("success" in the vendor code).
    Valid = 2,
    /// 3: failed, or tried and not confirmed ("fail").
    Invalid = 3,
}

impl ImageStatus {
    /// From the 2-bit field.
    pub fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => ImageStatus::None,
            1 => ImageStatus::New,
            2 => ImageStatus::Valid,
            _ => ImageStatus::Invalid,
        }
    }

    /// The word zyxel-bootconfig uses.
    pub fn name(self) -> &'static str {
        match self {
            ImageStatus::None => "none",
            ImageStatus::New => "new",
            ImageStatus::Valid => "valid",
            ImageStatus::Invalid => "invalid",
        }
    }

    /// Parses `none|new|valid|invalid`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::None, Self::New, Self::Valid, Self::Invalid]
            .into_iter()
            .find(|v| v.name() == s)
    }
}

/// The decoded bootconfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bootconfig {
    /// Status of image 0 (`firmware`) and image 1 (`firmware_1`).
    pub status: [ImageStatus; 2],
    /// The vendor's per-image "log" bits (byte 0 bits 1 and 5).
    pub log: [bool; 2],
    /// The image booted when none is NEW: 0 or 1.
    pub active: u8,
}

impl Bootconfig {
    /// Decodes the first two bytes of the block.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let [b0, b1, ..] = *bytes else {
            return Err(EnvError::Geometry(
                "bootconfig needs at least 2 bytes".into(),
            ));
        };
        Ok(Bootconfig {
            status: [
                ImageStatus::from_bits(b0 >> 2),
                ImageStatus::from_bits(b0 >> 6),
            ],
            log: [b0 & 0x02 != 0, b0 & 0x20 != 0],
            active: b1 & 1,
        })
    }

    /// The two bytes as OpenWrt's zyxel-bootconfig writes them (log bits cleared).
    pub fn encode_tool(&self) -> [u8; 2] {
        [
            (self.status[0] as u8) << 2 | (self.status[1] as u8) << 6,
            self.active & 1,
        ]
    }

    /// The two bytes as the vendor U-Boot writes them (log bits kept).
    pub fn encode_vendor(&self) -> [u8; 2] {
        let nibble = |i: usize| (self.status[i] as u8) << 2 | u8::from(self.log[i]) << 1;
        [nibble(0) | nibble(1) << 4, self.active & 1]
    }
}

/// Models the vendor U-Boot's `atgo` (no argument) on the bootconfig it read.
///
/// Rule by rule (zyxel-uboot `board/ralink/common/zyxel_util.c` `checkHaveNewImage`,
/// `cmd_at.c` `do_atgo`; summarised in docs/formats/zyxel-bootconfig.md):
/// 1. Images are scanned in order 0, 1; the first with status NEW is picked.
/// 2. Before booting it, its status becomes INVALID ("FAIL") and the bootconfig is
///    written back: the image is tried exactly once unless the OS marks it VALID.
/// 3. If no image is NEW, the active image (byte 1 bit 0) is booted; nothing is written.
/// 4. Statuses VALID/INVALID/NONE are never looked at otherwise: U-Boot does not refuse to
///    boot an INVALID active image and has no boot counter.
///
/// Returns the slot and, when U-Boot would rewrite it, the new bootconfig.
pub fn vendor_boot_decision(bc: &Bootconfig) -> (u8, Option<Bootconfig>) {
    match bc.status.iter().position(|s| *s == ImageStatus::New) {
        Some(slot) => {
            let mut next = *bc;
            next.status[slot] = ImageStatus::Invalid;
            (slot as u8, Some(next))
        }
        None => (bc.active, None),
    }
}

/// [`vendor_boot_decision`] on the raw erase block: the vendor code serialises its
/// 32-byte in-memory struct (status/log nibbles, boot image, then zeros) over the start
/// of the block it read and writes the whole block back, so bytes 2..32 become 0 and
/// bytes from 32 on are kept.
pub fn vendor_boot_decision_block(block: &[u8]) -> Result<(u8, Option<Vec<u8>>)> {
    let bc = Bootconfig::parse(block)?;
    let (slot, next) = vendor_boot_decision(&bc);
    Ok((
        slot,
        next.map(|n| {
            let mut out = block.to_vec();
            let head = out.len().min(32);
            out[..head].fill(0);
            out[..2].copy_from_slice(&n.encode_vendor());
            out
        }),
    ))
}

/// The last `bootImage=N` (N = 0 or 1) in a kernel command line; U-Boot appends it, so
/// a later occurrence overrides one baked into the default bootargs.
pub fn boot_image_from_cmdline(cmdline: &str) -> Option<u8> {
    cmdline
        .split(|c: char| c.is_whitespace() || c == '\0')
        .filter_map(|t| t.strip_prefix("bootImage="))
        .filter_map(|v| match v {
            "0" => Some(0),
            "1" => Some(1),
            _ => None,
        })
        .next_back()
}

/// The slot the vendor U-Boot booted, from `ROOT/proc/device-tree/chosen/bootargs`
/// (what U-Boot passed, even when the kernel overrides its command line) or else
/// `ROOT/proc/cmdline`. `Ok(None)` when neither mentions `bootImage=`.
pub fn running_slot(root: &Path) -> Result<Option<u8>> {
    for rel in ["proc/device-tree/chosen/bootargs", "proc/cmdline"] {
        let p = root.join(rel);
        match std::fs::read(&p) {
            Ok(b) => {
                if let Some(s) = boot_image_from_cmdline(&String::from_utf8_lossy(&b)) {
                    return Ok(Some(s));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EnvError::io(format!("read {}", p.display()), e)),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
