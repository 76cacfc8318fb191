//! The tftpboot output: kernel, root filesystem and DTB fetched over TFTP into RAM by
//! `boot.scr` and booted there, with the root filesystem in a phram MTD device the DTB
//! reserves (`/reserved-memory/phram-rootfs@ADDR`) and names on the command line
//! (`/chosen`). No flash is written: it is for bringing up and trying a build.

use std::path::Path;

use super::commands::Tftp;
use super::Arch;

/// How U-Boot starts the kernel file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootCommand {
    /// A legacy uImage or a FIT.
    Bootm,
    /// An ARM zImage.
    Bootz,
    /// An arm64 Image.
    Booti,
}

#[derive(Clone, Debug)]
pub struct TftpbootSpec<'a> {
    /// The kernel file as U-Boot boots it (see `boot`).
    pub kernel: &'a [u8],
    pub boot: BootCommand,
    /// The board's device tree; the output's DTB is this plus the phram node and `/chosen`.
    pub dtb: &'a [u8],
    /// The root filesystem image (squashfs or jffs2: UBIFS needs UBI, which phram is not).
    pub rootfs: &'a [u8],
    /// Where the root filesystem is loaded; the DTB and kernel follow it.
    pub load_address: u64,
    /// Room left after the root filesystem inside the phram device.
    pub free_space: u64,
    /// The phram device's erase size.
    pub erase_size: u64,
    /// The board's command line; the output adds the phram, mtdparts and root arguments.
    pub command_line: &'a str,
    /// `bootargs`, or `bootargs-override` on boards whose vendor U-Boot rewrites `bootargs`.
    pub chosen_property: &'a str,
    pub tftp: Tftp,
    pub arch: Arch,
    /// Header timestamp of `boot.scr.uimg` (`image::timestamp`).
    pub time: u32,
}

/// Where each file of the output sits in RAM once `boot.scr` has run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TftpbootLayout {
    pub rootfs_address: u64,
    /// The phram device's size: the root filesystem rounded up to the erase size, plus the free space.
    pub phram_size: u64,
    pub dtb_address: u64,
    pub kernel_address: u64,
    /// The full command line written into `/chosen`.
    pub command_line: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TftpbootError {
    #[error("tftpboot output: {0}")]
    Skeleton(String),
}

/// Writes `rootfs`, `dtb`, the kernel file, `boot.scr` (text) and `boot.scr.uimg` (the same
/// as a U-Boot script image) into `dir`.
pub fn write(spec: &TftpbootSpec, dir: &Path) -> Result<TftpbootLayout, TftpbootError> {
    todo!("issue 12 skeleton: {spec:?} {dir:?}")
}
