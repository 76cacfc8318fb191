//! The Zyxel NWA50AX `firmware` FIT the vendor web UI and OpenWrt's sysupgrade accept: one
//! image node of type `firmware` whose data is the FIT kernel padded to the kernel half of a
//! slot (8 MiB) followed by the ubinized root volume, with a sha1 hash and the
//! `compat-models` bytes the vendor firmware checks. Also the two raw slot images the A/B
//! `apply` writes (`kernel` for `mtd:kernel[_1]`, `rootfs` for `ubi:rootfs`).

/// The compat-models bytes of the NWA50AX (and NWA55AXE) vendor images.
pub const NWA50AX_COMPAT_MODELS: [u8; 10] =
    [0x6b, 0xe1, 0x6f, 0xe1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

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
    #[error("zyxel-nwa-fit output: {0}")]
    Skeleton(String),
}

/// The `firmware` FIT blob.
pub fn firmware_fit(spec: &ZyxelFitSpec) -> Result<Vec<u8>, ZyxelError> {
    todo!("issue 12 skeleton: {spec:?}")
}
