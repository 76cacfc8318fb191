//! The Zyxel NWA50AX `firmware` FIT the vendor web UI and OpenWrt's sysupgrade accept: one
//! image node of type `firmware` whose data is the FIT kernel padded to the kernel half of a
//! slot (8 MiB) followed by the ubinized root volume, with a sha1 hash and the
//! `compat-models` bytes the vendor firmware checks. Also the two raw slot images the A/B
//! `apply` writes (`kernel` for `mtd:kernel[_1]`, `rootfs` for `ubi:rootfs`).
//!
//! The tree has the nodes and property order `mkimage -f` gives OpenWrt's `.its` for this
//! device (no configurations: the vendor updater reads the one image node, it boots nothing),
//! so that a decompiled blob reads the same as mkimage's. docs/formats/zyxel-fit.md.

use sha1::{Digest, Sha1};
use vm_fdt::FdtWriter;

/// The compat-models bytes of the NWA50AX (and NWA55AXE) vendor images.
pub const NWA50AX_COMPAT_MODELS: [u8; 10] =
    [0x6b, 0xe1, 0x6f, 0xe1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

/// The one image node's name, as OpenWrt and Liminix write it.
pub const FIRMWARE_NODE: &str = "firmware";

/// The description OpenWrt and Liminix give the blob.
pub const DESCRIPTION: &str = "Zyxel FIT (Flattened Image Tree)";

/// The byte the kernel is padded with up to the kernel half, as Liminix pads it (`dd` from
/// `/dev/zero`).
pub const KERNEL_PAD: u8 = 0;

#[derive(Clone, Debug)]
pub struct ZyxelFitSpec<'a> {
    /// The bootable kernel FIT (kernel + DTB) for the slot's kernel half.
    pub kernel: &'a [u8],
    /// The kernel half's size; a kernel that does not fit is refused.
    pub kernel_half: u64,
    /// The UBI image holding the root volume (`liminix_ubi::image`).
    pub ubi: &'a [u8],
    /// The UBI half's size; a UBI image that does not fit is refused.
    pub ubi_half: u64,
    pub compat_models: &'a [u8],
    pub description: &'a str,
    pub time: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ZyxelError {
    #[error(
        "zyxel-nwa-fit: the kernel is {len} bytes, {over} more than the {half}-byte kernel half \
         of a slot; it would overwrite the start of the root volume"
    )]
    KernelTooBig { len: u64, half: u64, over: u64 },
    #[error(
        "zyxel-nwa-fit: the UBI image is {len} bytes, {over} more than the {half}-byte UBI half \
         of a slot"
    )]
    UbiTooBig { len: u64, half: u64, over: u64 },
    #[error("zyxel-nwa-fit: the {half}-byte kernel half does not fit in memory on this host")]
    HalfTooLarge { half: u64 },
    #[error("zyxel-nwa-fit: the compat-models value is empty; the vendor updater refuses it")]
    NoCompatModels,
    #[error("zyxel-nwa-fit: writing the device tree: {0}")]
    Fdt(#[from] vm_fdt::Error),
}

/// The `firmware` FIT blob.
pub fn firmware_fit(spec: &ZyxelFitSpec) -> Result<Vec<u8>, ZyxelError> {
    if spec.compat_models.is_empty() {
        return Err(ZyxelError::NoCompatModels);
    }
    fits(spec.ubi, spec.ubi_half, |len, half, over| {
        ZyxelError::UbiTooBig { len, half, over }
    })?;
    let mut data = padded_kernel(spec.kernel, spec.kernel_half)?;
    data.extend_from_slice(spec.ubi);
    tree(spec, &data)
}

/// The kernel as the first half of the firmware data: padded with [`KERNEL_PAD`] to
/// `kernel_half` bytes, or refused when longer (Liminix's `dd seek=` silently cut it).
pub fn padded_kernel(kernel: &[u8], kernel_half: u64) -> Result<Vec<u8>, ZyxelError> {
    fits(kernel, kernel_half, |len, half, over| {
        ZyxelError::KernelTooBig { len, half, over }
    })?;
    let half =
        usize::try_from(kernel_half).map_err(|_| ZyxelError::HalfTooLarge { half: kernel_half })?;
    let mut out = Vec::new();
    out.try_reserve_exact(half)
        .map_err(|_| ZyxelError::HalfTooLarge { half: kernel_half })?;
    out.extend_from_slice(kernel);
    out.resize(half, KERNEL_PAD);
    Ok(out)
}

/// Refuses `bytes` longer than `half`, with both numbers and the excess.
fn fits(
    bytes: &[u8],
    half: u64,
    err: impl FnOnce(u64, u64, u64) -> ZyxelError,
) -> Result<(), ZyxelError> {
    // usize is at most 64 bits on every host Rust supports.
    let len = bytes.len() as u64;
    match len.checked_sub(half) {
        Some(over) if over > 0 => Err(err(len, half, over)),
        _ => Ok(()),
    }
}

fn tree(spec: &ZyxelFitSpec, data: &[u8]) -> Result<Vec<u8>, ZyxelError> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    // mkimage puts the timestamp it adds before the .its's own root properties.
    w.property_u32("timestamp", spec.time)?;
    w.property_string("description", spec.description)?;
    w.property("compat-models", spec.compat_models)?;
    w.property_u32("#address-cells", 1)?;
    let images = w.begin_node("images")?;
    let image = w.begin_node(FIRMWARE_NODE)?;
    w.property("data", data)?;
    w.property_string("type", "firmware")?;
    w.property_string("compression", "none")?;
    let hash = w.begin_node("hash@1")?;
    w.property("value", &Sha1::digest(data))?;
    w.property_string("algo", "sha1")?;
    w.end_node(hash)?;
    w.end_node(image)?;
    w.end_node(images)?;
    w.end_node(root)?;
    Ok(w.finish()?)
}
