//! The tftpboot output: kernel, root filesystem and DTB fetched over TFTP into RAM by
//! `boot.scr` and booted there, with the root filesystem in a phram MTD device the DTB
//! reserves (`/reserved-memory/phram-rootfs@ADDR`) and names on the command line
//! (`/chosen`). No flash is written: it is for bringing up and trying a build.
//!
//! RAM from the load address up: the root filesystem (the phram device, erase-size rounded,
//! plus free space), the DTB, then the kernel file last. Last, because a zImage's decompressor
//! and an arm64 Image's BSS use the memory after the file as free. Where the kernel itself runs
//! (a uImage's load address, a zImage's decompressed image) is checked against the files too;
//! docs/formats/tftpboot.md has the details.

use std::io::Write;
use std::path::Path;

use super::commands::{quote, Tftp};
use super::dtb::{self, DtbError};
use super::{script, Arch, ImageError};
use crate::pack::PackError;

mod footprint;

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

impl BootCommand {
    fn name(self) -> &'static str {
        match self {
            BootCommand::Bootm => "bootm",
            BootCommand::Bootz => "bootz",
            BootCommand::Booti => "booti",
        }
    }

    /// Where the kernel file starts: U-Boot moves an arm64 Image that is not on a 2 MiB
    /// boundary up to the next one, so it is put on one.
    fn alignment(self) -> u64 {
        match self {
            BootCommand::Booti => 2 << 20,
            BootCommand::Bootm | BootCommand::Bootz => PAGE,
        }
    }
}

const PAGE: u64 = 0x1000;

/// The file names in the output directory, which are also the names `boot.scr` fetches.
pub const ROOTFS_FILE: &str = "rootfs";
pub const DTB_FILE: &str = "dtb";
pub const KERNEL_FILE: &str = "image";
pub const INITRAMFS_FILE: &str = "initramfs";
pub const SCRIPT_FILE: &str = "boot.scr";
pub const SCRIPT_IMAGE_FILE: &str = "boot.scr.uimg";

#[derive(Clone, Debug)]
pub struct TftpbootSpec<'a> {
    /// The kernel file as U-Boot boots it (see `boot`).
    pub kernel: &'a [u8],
    pub boot: BootCommand,
    /// The board's device tree; the output's DTB is this plus the phram node and `/chosen`.
    pub dtb: &'a [u8],
    /// The root filesystem image (squashfs or jffs2: UBIFS needs UBI, which phram is not).
    pub rootfs: &'a [u8],
    /// An initramfs booted with the kernel (e.g. one that loads a modular phram driver before
    /// mounting the root); `None` boots without one.
    pub initramfs: Option<&'a [u8]>,
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
    /// Where the initramfs is, when there is one: after the DTB.
    pub initramfs: Option<(u64, u64)>,
    pub kernel_address: u64,
    /// The full command line written into `/chosen`.
    pub command_line: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TftpbootError {
    #[error("tftpboot output: the root filesystem image is empty")]
    EmptyRootfs,
    #[error("tftpboot output: erase size is 0")]
    ZeroEraseSize,
    #[error("tftpboot output: free space {free:#x} is not a multiple of the erase size {erase:#x} (phram needs its size to be)")]
    FreeSpaceUnaligned { free: u64, erase: u64 },
    #[error("tftpboot output: {what} from {start:#x} with {len:#x} bytes runs past the end of the address space")]
    Overflow {
        what: &'static str,
        start: u64,
        len: u64,
    },
    #[error("tftpboot output: {what} ends at {end:#x}, past the 32-bit address space of {arch:?}")]
    Beyond32 {
        what: &'static str,
        end: u64,
        arch: Arch,
    },
    #[error("tftpboot output: {what} at {start:#x}..{end:#x} overlaps {other} at {other_start:#x}..{other_end:#x}")]
    Overlap {
        what: &'static str,
        start: u64,
        end: u64,
        other: &'static str,
        other_start: u64,
        other_end: u64,
    },
    #[error("tftpboot output: the kernel file is not what {boot:?} boots: {why}")]
    Kernel { boot: BootCommand, why: String },
    #[error("tftpboot output: editing the DTB: {0}")]
    Dtb(#[from] DtbError),
    #[error("tftpboot output: boot.scr image: {0}")]
    Script(#[from] ImageError),
    #[error("tftpboot output: {0}")]
    Output(#[from] PackError),
}

/// A range of RAM one file of the output takes.
#[derive(Clone, Copy, Debug)]
struct Span {
    what: &'static str,
    start: u64,
    end: u64,
}

impl Span {
    fn new(what: &'static str, start: u64, len: u64) -> Result<Span, TftpbootError> {
        let end = start
            .checked_add(len)
            .ok_or(TftpbootError::Overflow { what, start, len })?;
        Ok(Span { what, start, end })
    }

    fn overlaps(&self, o: &Span) -> bool {
        self.start < o.end && o.start < self.end
    }
}

fn align_up(what: &'static str, v: u64, to: u64) -> Result<u64, TftpbootError> {
    let over = TftpbootError::Overflow {
        what,
        start: v,
        len: to,
    };
    v.checked_next_multiple_of(to).ok_or(over)
}

/// The phram device's size (see [`TftpbootLayout::phram_size`]).
fn phram_size(spec: &TftpbootSpec) -> Result<u64, TftpbootError> {
    if spec.rootfs.is_empty() {
        return Err(TftpbootError::EmptyRootfs);
    }
    if spec.erase_size == 0 {
        return Err(TftpbootError::ZeroEraseSize);
    }
    if !spec.free_space.is_multiple_of(spec.erase_size) {
        return Err(TftpbootError::FreeSpaceUnaligned {
            free: spec.free_space,
            erase: spec.erase_size,
        });
    }
    let len = spec.rootfs.len() as u64;
    let rounded = align_up("root filesystem", len, spec.erase_size)?;
    rounded
        .checked_add(spec.free_space)
        .ok_or(TftpbootError::Overflow {
            what: "phram device",
            start: rounded,
            len: spec.free_space,
        })
}

/// The command line in `/chosen`: the board's, then the phram device and the root on it.
pub fn command_line(board: &str, address: u64, size: u64, erase: u64) -> String {
    let phram = format!(
        "mtdparts=phram0:{size:#x}(rootfs) phram.phram=phram0,{address:#x},{size:#x},{erase:#x} root=/dev/mtdblock0"
    );
    match board.trim() {
        "" => phram,
        b => format!("{b} {phram}"),
    }
}

/// The output's DTB: the board's with the phram reservation and the command line.
fn edit_dtb(
    spec: &TftpbootSpec,
    address: u64,
    size: u64,
    cmdline: &str,
) -> Result<Vec<u8>, TftpbootError> {
    let mut tree = dtb::read(spec.dtb)?;
    dtb::reserve_phram(&mut tree, address, size)?;
    dtb::set_chosen(&mut tree, spec.chosen_property, cmdline)?;
    Ok(dtb::write(&tree)?)
}

/// The addresses, the edited DTB, and the spans of RAM the boot uses.
fn plan(spec: &TftpbootSpec) -> Result<(TftpbootLayout, Vec<u8>), TftpbootError> {
    let size = phram_size(spec)?;
    let rootfs = Span::new("root filesystem", spec.load_address, size)?;
    let cmdline = command_line(spec.command_line, rootfs.start, size, spec.erase_size);
    let dtb = edit_dtb(spec, rootfs.start, size, &cmdline)?;
    let dtb_span = Span::new("DTB", align_up("DTB", rootfs.end, PAGE)?, dtb.len() as u64)?;
    let initramfs = match spec.initramfs {
        Some(data) => {
            let at = align_up("initramfs", dtb_span.end, PAGE)?;
            Some(Span::new("initramfs", at, data.len() as u64)?)
        }
        None => None,
    };
    let after = initramfs.map_or(dtb_span.end, |s| s.end);
    let kernel_at = align_up("kernel", after, spec.boot.alignment())?;
    let kernel = Span::new("kernel file", kernel_at, spec.kernel.len() as u64)?;
    check_32bit(spec.arch, &kernel)?;
    let placed: Vec<Span> = [Some(rootfs), Some(dtb_span), initramfs]
        .into_iter()
        .flatten()
        .collect();
    check_running(spec, kernel.start, &placed)?;
    let layout = TftpbootLayout {
        rootfs_address: rootfs.start,
        phram_size: size,
        dtb_address: dtb_span.start,
        initramfs: initramfs.map(|s| (s.start, s.end - s.start)),
        kernel_address: kernel.start,
        command_line: cmdline,
    };
    Ok((layout, dtb))
}

/// Refuses a kernel that runs (see `footprint`) over one of the files placed before it.
fn check_running(
    spec: &TftpbootSpec,
    kernel_at: u64,
    placed: &[Span],
) -> Result<(), TftpbootError> {
    for (what, start, end) in footprint::running_kernel(spec.boot, spec.kernel, kernel_at)? {
        let run = Span { what, start, end };
        check_32bit(spec.arch, &run)?;
        if let Some(other) = placed.iter().find(|o| run.overlaps(o)) {
            return Err(TftpbootError::Overlap {
                what,
                start,
                end,
                other: other.what,
                other_start: other.start,
                other_end: other.end,
            });
        }
    }
    Ok(())
}

fn check_32bit(arch: Arch, span: &Span) -> Result<(), TftpbootError> {
    if arch != Arch::Arm64 && span.end > 1 << 32 {
        return Err(TftpbootError::Beyond32 {
            what: span.what,
            end: span.end,
            arch,
        });
    }
    Ok(())
}

/// The text of `boot.scr`: fetch the files to their addresses, then boot.
pub fn boot_scr(tftp: &Tftp, boot: BootCommand, l: &TftpbootLayout) -> String {
    let (fetch_initramfs, initrd) = match l.initramfs {
        Some((at, len)) => (
            format!("tftpboot {at:#x} {}\n", quote(INITRAMFS_FILE)),
            format!("{at:#x}:{len:#x}"),
        ),
        None => (String::new(), "-".to_owned()),
    };
    format!(
        "{setenv}tftpboot {r:#x} {rf}\ntftpboot {d:#x} {df}\n{fetch_initramfs}tftpboot {k:#x} {kf}\n{cmd} {k:#x} {initrd} {d:#x}\n",
        setenv = tftp.setenv_lines(),
        r = l.rootfs_address,
        rf = quote(ROOTFS_FILE),
        d = l.dtb_address,
        df = quote(DTB_FILE),
        k = l.kernel_address,
        kf = quote(KERNEL_FILE),
        cmd = boot.name(),
    )
}

/// Writes `rootfs`, `dtb`, `initramfs` (when given), the kernel file `image`, `boot.scr` (text)
/// and `boot.scr.uimg` (the same as a U-Boot script image) into `dir`.
pub fn write(spec: &TftpbootSpec, dir: &Path) -> Result<TftpbootLayout, TftpbootError> {
    let (layout, dtb) = plan(spec)?;
    let text = boot_scr(&spec.tftp, spec.boot, &layout);
    let image = script::write("tftpboot", spec.arch, spec.time, &text)?;
    let files: [(&str, Option<&[u8]>); 6] = [
        (ROOTFS_FILE, Some(spec.rootfs)),
        (DTB_FILE, Some(&dtb)),
        (INITRAMFS_FILE, spec.initramfs),
        (KERNEL_FILE, Some(spec.kernel)),
        (SCRIPT_FILE, Some(text.as_bytes())),
        (SCRIPT_IMAGE_FILE, Some(&image)),
    ];
    for (name, data) in files {
        let Some(data) = data else { continue };
        let out = dir.join(name);
        crate::output::write_file(&out, 0o644, |f, tmp| {
            f.write_all(data).map_err(|source| PackError::Io {
                what: "writing",
                path: tmp.to_owned(),
                source,
            })
        })?;
    }
    Ok(layout)
}
