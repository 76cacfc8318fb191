//! The router's flash: one virtio disk that `block2mtd` turns into an MTD device with 128 KiB
//! erase blocks, partitioned at boot into `firmware` and `persist`; and `firmware.bin`, the
//! image a NOR update writes to `firmware`: a uImage holding the kernel, then the squashfs
//! root, each padded with 0xff to whole erase blocks (Liminix's mtdimage layout).

use std::path::Path;
use std::process::Command;

use crate::kernel::Kernel;
use crate::VmError;

/// The erase block block2mtd is given, as on the NOR boards' 64–128 KiB sectors.
pub const ERASE: u64 = 128 * 1024;

/// uImage header length: where the kernel payload starts.
const UIMAGE_HEADER: u64 = 64;

/// Partition sizes; `firmware` starts at 0 and `persist` follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub firmware: u64,
    pub persist: u64,
}

impl Default for Layout {
    /// 24 MiB firmware (the guest kernel is ~8 MiB) and 1 MiB persist.
    fn default() -> Self {
        Layout {
            firmware: 24 << 20,
            persist: 1 << 20,
        }
    }
}

impl Layout {
    /// The whole flash: both partitions.
    pub fn flash_bytes(&self) -> u64 {
        self.firmware.saturating_add(self.persist)
    }
}

/// `data` followed by 0xff (erased flash) up to a whole number of erase blocks.
fn pad(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let len = out.len() as u64;
    out.resize((len.div_ceil(ERASE) * ERASE) as usize, 0xff);
    out
}

/// `kernel`'s image wrapped in an uncompressed uImage made by `mkimage` (our own uImage writer
/// has no x86 architecture code, and nothing boots this header: QEMU loads the kernel, the
/// preinit reads the header only to find where the root starts, as the kernel's uImage
/// splitter does on the boards).
pub fn kernel_uimage(kernel: &Kernel, name: &str) -> Result<Vec<u8>, VmError> {
    crate::require_program("mkimage", "u-boot-tools")?;
    let out = tempfile::NamedTempFile::new().map_err(VmError::io(Path::new("tempfile")))?;
    crate::run_command(
        Command::new("mkimage")
            .args(["-A", "x86", "-O", "linux", "-T", "kernel", "-C", "none"])
            .args(["-a", "0x100000", "-e", "0x100000", "-n", name, "-d"])
            .arg(&kernel.image)
            .arg(out.path()),
    )?;
    std::fs::read(out.path()).map_err(VmError::io(out.path()))
}

/// Where the root starts in a firmware image whose first erase blocks hold `uimage_len`
/// bytes of uImage.
pub fn rootfs_offset(uimage_len: u64) -> u64 {
    uimage_len.div_ceil(ERASE) * ERASE
}

/// `firmware.bin`: the uImage and the squashfs, each padded to whole erase blocks; refused
/// when it does not fit `layout`'s firmware partition.
pub fn firmware(uimage: &[u8], squashfs: &[u8], layout: &Layout) -> Result<Vec<u8>, VmError> {
    let mut out = pad(uimage);
    out.extend_from_slice(&pad(squashfs));
    if out.len() as u64 > layout.firmware {
        return Err(VmError::Unsupported(format!(
            "firmware.bin is {} bytes, the firmware partition {} bytes",
            out.len(),
            layout.firmware
        )));
    }
    Ok(out)
}

/// Writes a flash image to `path`: erased (0xff) throughout, `firmware` at offset 0.
pub fn write_disk(path: &Path, layout: &Layout, firmware: &[u8]) -> Result<(), VmError> {
    let total = usize::try_from(layout.flash_bytes())
        .map_err(|_| VmError::Unsupported(format!("flash of {} bytes", layout.flash_bytes())))?;
    if firmware.len() as u64 > layout.firmware {
        return Err(VmError::Unsupported(format!(
            "firmware of {} bytes in a partition of {}",
            firmware.len(),
            layout.firmware
        )));
    }
    let mut disk = vec![0xff; total];
    disk[..firmware.len()].copy_from_slice(firmware);
    std::fs::write(path, disk).map_err(VmError::io(path))
}

/// The uImage header's payload size at bytes 12..16, big-endian: what the preinit reads too.
pub fn uimage_len(firmware: &[u8]) -> Option<u64> {
    let size: [u8; 4] = firmware.get(12..16)?.try_into().ok()?;
    Some(UIMAGE_HEADER + u64::from(u32::from_be_bytes(size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_padded_to_erase_blocks() {
        let layout = Layout::default();
        let mut uimage = vec![0u8; 100];
        uimage[12..16].copy_from_slice(&36u32.to_be_bytes());
        let fw = firmware(&uimage, b"hsqs", &layout).unwrap();
        assert_eq!(fw.len() as u64, 2 * ERASE);
        assert_eq!(uimage_len(&fw), Some(100));
        assert_eq!(rootfs_offset(100), ERASE);
        assert_eq!(&fw[ERASE as usize..ERASE as usize + 4], b"hsqs");
        assert_eq!(fw[100], 0xff);
        let small = Layout {
            firmware: ERASE,
            persist: 0,
        };
        let e = firmware(&uimage, b"hsqs", &small).unwrap_err();
        assert!(e.to_string().contains("262144 bytes"), "{e}");
    }
}
