//! The recovery stick: a USB disk U-Boot's distro boot finds and boots into a maintenance root
//! in RAM. One MBR partition (bootable, ext4) holds `/boot/extlinux/extlinux.conf`, the kernel,
//! the DTB and the maintenance root as the initramfs; once the kernel has unpacked it, nothing
//! reads the stick again, so it can be pulled out.

use std::fs;
use std::path::Path;

use super::bootfiles::{CONF_PATH, DTB_PATH, KERNEL_PATH};
use super::build::{ext4, BuildError};
use super::mbr::{self, MbrLayout, MbrSpec};

/// Where the initramfs lies on the stick.
pub const INITRD_PATH: &str = "boot/initramfs";

/// What goes on the stick.
pub struct Stick<'a> {
    /// The kernel as `sysboot` loads it (zImage on the Omnia).
    pub kernel: &'a [u8],
    pub dtb: Option<&'a [u8]>,
    /// The maintenance root, a gzip newc cpio (and any archives appended to it).
    pub initramfs: &'a [u8],
    /// The kernel command line.
    pub append: &'a str,
    /// Size of the disk image; the partition takes what the files need plus 1 MiB.
    pub disk_size: u64,
}

/// `extlinux.conf` for the stick: the kernel, DTB and initramfs beside it.
pub fn extlinux_conf(append: &str, with_dtb: bool) -> String {
    let fdt = match with_dtb {
        true => format!("  fdt /{DTB_PATH}\n"),
        false => String::new(),
    };
    format!(
        "menu title Liminix recovery\ntimeout 1\ndefault recovery\n\nlabel recovery\n  kernel /{KERNEL_PATH}\n{fdt}  initrd /{INITRD_PATH}\n  append {append}\n"
    )
}

/// Writes the stick's disk image to `out`, staging its files in `work` (an empty directory).
pub fn write(s: &Stick, epoch: u64, work: &Path, out: &Path) -> Result<MbrLayout, BuildError> {
    if s.append.contains(['\n', '\r']) {
        return Err(BuildError::Input(format!(
            "the command line {:?} holds a line break, which would end its extlinux.conf line",
            s.append
        )));
    }
    let tree = work.join("tree");
    let put = |rel: &str, data: &[u8]| -> Result<(), BuildError> {
        let p = tree.join(rel);
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).map_err(super::build::io_err("creating", dir))?;
        }
        fs::write(&p, data).map_err(super::build::io_err("writing", &p))
    };
    put(
        CONF_PATH,
        extlinux_conf(s.append, s.dtb.is_some()).as_bytes(),
    )?;
    put(KERNEL_PATH, s.kernel)?;
    if let Some(dtb) = s.dtb {
        put(DTB_PATH, dtb)?;
    }
    put(INITRD_PATH, s.initramfs)?;
    let fs_image = work.join("stick.ext4");
    ext4::write(&tree, epoch, &fs_image)?;
    let spec = MbrSpec {
        disk_size: s.disk_size,
        root_free: 1 << 20,
        second: None,
        epoch: Some(epoch),
    };
    Ok(mbr::write(&fs_image, &spec, out)?)
}
