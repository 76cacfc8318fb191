//! The phram half of the tftpboot output, which Debian's ARM kernels cannot run (they have no
//! phram driver; tests/tests/uboot_boots.rs boots the rest with real U-Boot): the x86_64 guest
//! kernel's phram module, loaded with no parameters, takes the `phram.phram=` argument
//! tftpboot writes from the kernel command line, and its /dev/mtdblock0 mounts the squashfs
//! root placed in that RAM.
//!
//! On x86 there is no DTB, so `memmap=SIZE$START` keeps the range from the kernel instead of
//! the `/reserved-memory` node, and the guest writes the image into it through /dev/mem (what
//! U-Boot's `tftpboot` does on a board).

use liminix_build_tools::image::squashfs::{self, SquashfsSpec};
use liminix_build_tools::image::tftpboot;
use liminix_vm::VmBuilder;

const START: u64 = 0x1000_0000;
const ERASE: u64 = 0x1_0000;
const FREE: u64 = 0x2_0000;
const TEXT: &str = "mounted from phram";

const SCRIPT: &str = r#"
p=$(cat /proc/cmdline); p=${p##*phram.phram=}; p=${p%% *}
set -- $(echo "$p" | tr , ' ')
dd if=/rootfs of=/dev/mem bs=4096 seek=$(($2 / 4096)) conv=notrunc 2>&1
modprobe phram
modprobe mtdblock
modprobe squashfs
grep phram /proc/mtd
mkdir -p /mnt
mount -t squashfs -o ro /dev/mtdblock0 /mnt
echo "ROOT-FILE $(cat /mnt/etc/liminix-tftpboot)"
"#;

#[test]
fn phram_takes_the_tftpboot_command_line_and_mounts_the_root() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/liminix-tftpboot"), TEXT).unwrap();
    let img = t.path().join("rootfs");
    let spec = SquashfsSpec {
        compression: squashfs::Compression::Gzip,
        epoch: 0,
        block_size: None,
    };
    squashfs::write(&tree, &spec, &img).unwrap();
    let len = std::fs::metadata(&img).unwrap().len();
    let size = len.next_multiple_of(ERASE) + FREE;
    let cmdline = tftpboot::command_line("console=ttyS0", START, size, ERASE);
    let out = VmBuilder::new()
        .module("phram")
        .module("mtdblock")
        .module("squashfs")
        .file(&img, "/rootfs")
        .append(&format!("memmap={size:#x}${START:#x} {cmdline}"))
        .script(SCRIPT)
        .timeout(300)
        .run()
        .unwrap();
    eprintln!("phram guest: {:.1} s", out.elapsed.as_secs_f64());
    assert!(
        out.serial.contains(&format!("ROOT-FILE {TEXT}")),
        "{}",
        out.serial
    );
    let mtd = format!("mtd0: {size:08x} {ERASE:08x} \"phram0\"");
    let lines = out.lines_starting("mtd");
    assert_eq!(lines, [mtd.as_str()], "{}", out.serial);
}
