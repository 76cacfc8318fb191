//! The router's preinit: a small initramfs that turns the flash disk into MTD partitions,
//! splits `rootfs` out of `firmware` after the uImage (as the boards' kernels do), mounts that
//! squashfs read-only through mtdblock and `switch_root`s into its /init.
//!
//! Debian's kernel has no `mtdparts=` parser (CONFIG_MTD_CMDLINE_PARTS is off), so the
//! partitions are added at run time with mtd-utils' `mtdpart` (the BLKPG ioctl on the whole
//! flash). That ioctl only adds partitions of the whole device, so `rootfs` is a sibling of
//! `firmware` covering its tail, rather than a child of it as on the boards.

use super::flash::{Layout, ERASE};
use super::PREINIT_FAILED;
use crate::initramfs::Initramfs;
use crate::kernel::Kernel;
use crate::VmError;

/// Modules the preinit loads, in order.
pub const MODULES: [&str; 7] = [
    "virtio_pci",
    // Seeds the kernel's random pool at once: dropbear waits for it before answering.
    "virtio_rng",
    "virtio_blk",
    "virtio_net",
    "mtdblock",
    "squashfs",
    "block2mtd",
];

const SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "@FAILED@ $*"; poweroff -f; }
for m in @MODULES@; do modprobe "$m" || fail "modprobe $m"; done
for i in $(seq 100); do [ -e /dev/vda ] && break; sleep 0.1; done
[ -e /dev/vda ] || fail "no /dev/vda"
echo /dev/vda,@ERASE@,flash > /sys/module/block2mtd/parameters/block2mtd || fail block2mtd
mtd() { sed -n "s/^\(mtd[0-9]*\):.*\"$1\"\$/\1/p" /proc/mtd; }
[ "$(mtd flash)" = mtd0 ] || fail "no flash in /proc/mtd"
mtdpart add /dev/mtd0 firmware 0 @FIRMWARE@ || fail "mtdpart firmware"
mtdpart add /dev/mtd0 persist @FIRMWARE@ @PERSIST@ || fail "mtdpart persist"
fw=/dev/$(mtd firmware)
magic=$(hexdump -n 4 -e '4/1 "%02x"' $fw)
[ "$magic" = 27051956 ] || fail "firmware does not start with a uImage (magic $magic)"
size=$(hexdump -s 12 -n 4 -e '4/1 "%02x"' $fw)
offset=$(( (64 + 0x$size + @ERASE@ - 1) / @ERASE@ * @ERASE@ ))
[ $offset -lt @FIRMWARE@ ] || fail "uImage of $((0x$size)) bytes fills the firmware partition"
mtdpart add /dev/mtd0 rootfs $offset $((@FIRMWARE@ - offset)) || fail "mtdpart rootfs"
root=/dev/$(mtd rootfs | sed s/mtd/mtdblock/)
for i in $(seq 50); do [ -e $root ] && break; sleep 0.1; done
mount -t squashfs -o ro $root /newroot || fail "mount $root"
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /init
"#;

/// The preinit initramfs for `layout` on `kernel`.
pub fn initramfs(kernel: &Kernel, layout: &Layout) -> Result<Vec<u8>, VmError> {
    initramfs_with(kernel, layout, &[])
}

/// [`initramfs`] that also loads `extra` modules (after the others).
pub fn initramfs_with(
    kernel: &Kernel,
    layout: &Layout,
    extra: &[&str],
) -> Result<Vec<u8>, VmError> {
    crate::require("/bin/busybox", "busybox-static")?;
    let mut fs = Initramfs::new();
    fs.copy(std::path::Path::new("/bin/busybox"), "/bin/busybox")?;
    fs.symlink("/bin/sh", "busybox");
    let modules: Vec<String> = MODULES.iter().chain(extra).map(|m| m.to_string()).collect();
    fs.bytes("/init", script_with(layout, &modules).as_bytes(), 0o755);
    fs.modules(kernel, &modules)?;
    fs.host_tool("mtdpart")?;
    Ok(fs.finish())
}

#[cfg(test)]
fn script(layout: &Layout) -> String {
    let modules: Vec<String> = MODULES.iter().map(|m| m.to_string()).collect();
    script_with(layout, &modules)
}

fn script_with(layout: &Layout, modules: &[String]) -> String {
    SCRIPT
        .replace("@FAILED@", PREINIT_FAILED)
        .replace("@MODULES@", &modules.join(" "))
        .replace("@ERASE@", &ERASE.to_string())
        .replace("@FIRMWARE@", &layout.firmware.to_string())
        .replace("@PERSIST@", &layout.persist.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_carries_the_layout() {
        let s = script(&Layout::default());
        assert!(!s.contains('@'), "{s}");
        assert!(
            s.contains("mtdpart add /dev/mtd0 firmware 0 25165824"),
            "{s}"
        );
    }
}
