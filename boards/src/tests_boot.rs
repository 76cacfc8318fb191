//! `[boot]`, `[[output]]` and `[install]`: the built-in values and the cross-field refusals.

use super::*;

/// A NOR board with everything an mtdimage needs; tests break one field at a time.
const NOR_BOOT: &str = r#"
name = "t"
strategy = "raw"
cpu = "mips"
[[flash]]
name = "nor"
type = "nor"
size = 0x100000
erase_size = 0x10000
  [[flash.partition]]
  name = "firmware"
  offset = 0
  size = 0x100000
[[image]]
name = "firmware"
target = "mtd:firmware"
[boot]
kernel_format = "uimage"
compression = "lzma"
load_address = 0x80060000
entry_point = 0x80060000
command_line = "console=ttyS0,115200"
root_device = "/dev/mtdblock5"
root_fs = "squashfs"
flash_address = 0x9f060000
tftp_load_address = 0xa00000
[[output]]
type = "mtdimage"
partition = "firmware"
[install]
output = "mtdimage"
path = "serial console"
"#;

fn err_of(text: &str) -> String {
    parse(text, "test").unwrap_err().to_string()
}

#[test]
fn eleven_devices_are_built_in_and_each_says_how_it_is_installed() {
    assert_eq!(EMBEDDED.len(), 11);
    for (name, _) in EMBEDDED {
        let b = builtin(name).unwrap();
        let boot = b
            .boot
            .as_ref()
            .unwrap_or_else(|| panic!("{name} has no [boot]"));
        assert!(!b.outputs.is_empty(), "{name}");
        let install = b.install.as_ref().unwrap();
        assert!(
            b.outputs.iter().any(|o| o.name() == install.output),
            "{name}"
        );
        assert!(boot.full_command_line().contains("root="), "{name}");
    }
}

#[test]
fn builtin_boot_values_are_liminix_s() {
    let ar750 = builtin("gl-ar750").unwrap();
    let boot = ar750.boot.unwrap();
    assert_eq!(boot.load_address, 0x8006_0000);
    assert_eq!(boot.flash_address, Some(0x9f06_0000));
    assert_eq!(boot.compression, KernelCompression::Lzma);
    let z = builtin("zyxel-nwa50ax").unwrap();
    let zb = z.boot.as_ref().unwrap();
    assert_eq!(zb.chosen_property, ChosenProperty::BootargsOverride);
    let omnia = builtin("turris-omnia").unwrap();
    assert!(omnia.images.is_empty());
    let ob = omnia.boot.as_ref().unwrap();
    assert_eq!(ob.root_fs, RootFs::Btrfs);
    assert!(ob.full_command_line().contains(" rootflags=subvol=@ "));
    assert!(matches!(
        omnia.bootloader,
        Some(Bootloader::UbootEnv { .. })
    ));
    let q = builtin("qemu-aarch64").unwrap();
    assert!(q.flash.is_empty());
    assert_eq!(q.boot.unwrap().kernel_format, KernelFormat::Image);
}

#[test]
fn the_full_command_line_is_liminix_s() {
    let b = parse(NOR_BOOT, "test").unwrap().boot.unwrap();
    assert_eq!(
        b.full_command_line(),
        "panic=10 oops=panic init=/bin/init loglevel=8 root=/dev/mtdblock5 rootfstype=squashfs fw_devlink=off console=ttyS0,115200"
    );
}

#[test]
fn outputs_need_the_boot_facts_and_parts_they_use() {
    let cases = [
        ("flash_address = 0x9f060000\n", "", "needs [boot] flash_address"),
        ("root_fs = \"squashfs\"", "root_fs = \"ubifs\"", "needs root_fs squashfs"),
        ("partition = \"firmware\"", "partition = \"nope\"", "is not on the board"),
        ("kernel_format = \"uimage\"", "kernel_format = \"image\"", "cannot boot on cpu mips"),
        ("output = \"mtdimage\"\npath", "output = \"kernel\"\npath", "is not one of the board's outputs"),
        ("[[output]]\ntype = \"mtdimage\"", "[[output]]\ntype = \"tftpboot\"\nerase_size = 65536\n[[output]]\ntype = \"tftpboot\"\nerase_size = 65536\n[[output]]\ntype = \"mtdimage\"", "declared twice"),
    ];
    for (from, to, msg) in cases {
        assert!(NOR_BOOT.contains(from), "{from}");
        let e = err_of(&NOR_BOOT.replacen(from, to, 1));
        assert!(e.contains(msg), "{from} -> {to}: {e}");
    }
}

#[test]
fn tftpboot_is_refused_for_a_ubifs_root() {
    let text =
        builtin_text("belkin-rt3200") + "\n[[output]]\ntype = \"tftpboot\"\nerase_size = 0x20000\n";
    let e = err_of(&text);
    assert!(e.contains("output tftpboot: a ubifs root needs UBI"), "{e}");
}

#[test]
fn a_board_without_images_is_raw_and_may_have_no_flash() {
    let q = builtin_text("qemu");
    parse(&q, "test").unwrap();
    let e = err_of(&q.replace("strategy = \"raw\"", "strategy = \"ubi\""));
    assert!(e.contains("no image is defined for strategy ubi"), "{e}");
    let with_image = q + "\n[[image]]\nname = \"x\"\ntarget = \"mtd:x\"\n";
    assert!(err_of(&with_image).contains("no flash chip"));
}

fn builtin_text(name: &str) -> String {
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
        .to_owned()
}
