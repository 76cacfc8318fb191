//! Host-side pieces of the ARM guests: FAT images, U-Boot's two pflash banks, the boot
//! script image. Each names the Debian package of the tool it runs when that is missing.

use std::path::Path;
use std::process::Command;

use crate::{require, require_program, run_command, VmError};

/// The qemu_arm U-Boot of Debian's u-boot-qemu (2023.01, single-copy environment).
pub const UBOOT_QEMU_ARM: &str = "/usr/lib/u-boot/qemu_arm/u-boot.bin";

/// Size of each pflash bank of the virt machine.
pub const BANK: u64 = 64 << 20;

/// A FAT filesystem image of `kib` KiB holding `files` (name, host path).
pub fn fat_image(out: &Path, kib: u64, files: &[(&str, &Path)]) -> Result<(), VmError> {
    require_program("mkfs.vfat", "dosfstools")?;
    require_program("mcopy", "mtools")?;
    let _ = std::fs::remove_file(out);
    run_command(
        Command::new("mkfs.vfat")
            .args(["-C", "-n", "LIMINIX"])
            .arg(out)
            .arg(kib.to_string()),
    )?;
    for (name, src) in files {
        run_command(
            Command::new("mcopy")
                .arg("-i")
                .arg(out)
                .arg(src)
                .arg(format!("::{name}")),
        )?;
    }
    Ok(())
}

/// A U-Boot binary padded to a pflash bank.
pub fn uboot_bank(uboot: &Path, out: &Path) -> Result<(), VmError> {
    require(&uboot.to_string_lossy(), "u-boot-qemu")?;
    let mut b = std::fs::read(uboot).map_err(VmError::io(uboot))?;
    b.resize(BANK as usize, 0);
    std::fs::write(out, b).map_err(VmError::io(out))
}

/// An environment image of `size` bytes from `name=value` lines (`mkenvimage -s SIZE`).
pub fn env_image(text: &str, size: usize, out: &Path) -> Result<(), VmError> {
    require_program("mkenvimage", "u-boot-tools")?;
    let txt = out.with_extension("txt");
    std::fs::write(&txt, text).map_err(VmError::io(&txt))?;
    run_command(
        Command::new("mkenvimage")
            .args(["-s", &format!("{size:#x}"), "-o"])
            .arg(out)
            .arg(&txt),
    )
    .map(drop)
}

/// The second pflash bank: an environment (0x40000 bytes at offset 0), then erased flash.
pub fn env_bank(out: &Path, text: &str) -> Result<(), VmError> {
    let img = out.with_extension("env");
    env_image(text, 0x40000, &img)?;
    let mut b = std::fs::read(&img).map_err(VmError::io(&img))?;
    b.resize(BANK as usize, 0xFF);
    std::fs::write(out, b).map_err(VmError::io(out))
}

/// `mkimage -T script`: the boot script as U-Boot sources it.
pub fn script_image(src: &Path, out: &Path) -> Result<(), VmError> {
    require_program("mkimage", "u-boot-tools")?;
    run_command(
        Command::new("mkimage")
            .args(["-A", "arm", "-T", "script", "-C", "none"])
            .args(["-n", "liminix-ab", "-d"])
            .arg(src)
            .arg(out),
    )
    .map(drop)
}
