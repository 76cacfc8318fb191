//! The ARMv7 zImage layout from a root directory holding iomem, the device tree (made by dtc)
//! and a zImage header; fdtget reads back what the next kernel will find in /chosen.

mod common;

use std::path::Path;

use common::{dtc, fdtget};
use liminix_kexec::{plan, BootSpec, KernelFormat, KexecError};

const DTS: &str = r#"/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    compatible = "linux,dummy-virt";
    memory@40000000 { device_type = "memory"; reg = <0x0 0x40000000 0x0 0x20000000>; };
    chosen { bootargs = "console=ttyAMA0 old"; linux,initrd-start = <0x48000000>; linux,initrd-end = <0x48100000>; };
};
"#;

/// A zImage of `len` bytes: its magic, start 0 and end `len` in the header.
fn zimage(len: u32) -> Vec<u8> {
    let mut k = common::payload(len as usize);
    k[0x24..0x28].copy_from_slice(&0x016f_2818u32.to_le_bytes());
    k[0x28..0x2c].copy_from_slice(&0u32.to_le_bytes());
    k[0x2c..0x30].copy_from_slice(&len.to_le_bytes());
    k
}

fn root(dir: &Path, ram_mib: u64) {
    let last = 0x4000_0000 + (ram_mib << 20) - 1;
    std::fs::create_dir_all(dir.join("proc")).unwrap();
    std::fs::create_dir_all(dir.join("sys/firmware")).unwrap();
    std::fs::write(
        dir.join("proc/iomem"),
        format!("09000000-09000fff : pl011@9000000\n40000000-{last:08x} : System RAM\n  40008000-40cfffff : Kernel code\n"),
    )
    .unwrap();
    let blob = dtc(dir, DTS);
    std::fs::write(dir.join("sys/firmware/fdt"), blob).unwrap();
}

#[test]
fn zimage_initramfs_and_tree_sit_where_the_arm_kernel_looks() {
    let dir = tempfile::tempdir().unwrap();
    root(dir.path(), 512);
    let spec = BootSpec {
        kernel: zimage(5 << 20),
        initramfs: Some(common::payload(3 << 20)),
        command_line: "console=ttyAMA0 marker=7".into(),
    };
    let layout = plan(dir.path(), &spec, KernelFormat::ArmZImage).unwrap();
    let s = &layout.segments;
    assert_eq!(s.len(), 3);
    assert_eq!((layout.entry, s[0].address), (0x4000_8000, 0x4000_8000));
    assert_eq!(s[0].data, spec.kernel);
    // Five zImage sizes of decompression room above the zImage.
    assert_eq!(s[1].address, 0x4000_8000 + 25 * (1 << 20));
    assert_eq!(Some(&s[1].data), spec.initramfs.as_ref());
    assert_eq!(s[2].address, s[1].address + (3 << 20));
    let d = dir.path();
    assert_eq!(
        fdtget(d, &s[2].data, &["/chosen", "bootargs"]),
        "console=ttyAMA0 marker=7"
    );
    let start = fdtget(d, &s[2].data, &["-tx", "/chosen", "linux,initrd-start"]);
    let end = fdtget(d, &s[2].data, &["-tx", "/chosen", "linux,initrd-end"]);
    assert_eq!(start, "0 41908000");
    assert_eq!(end, "0 41c08000");
    assert_eq!(
        fdtget(d, &s[2].data, &["/", "compatible"]),
        "linux,dummy-virt"
    );
}

#[test]
fn without_an_initramfs_the_old_one_is_not_named() {
    let dir = tempfile::tempdir().unwrap();
    root(dir.path(), 512);
    let spec = BootSpec {
        kernel: zimage(1 << 20),
        initramfs: None,
        command_line: "x".into(),
    };
    let layout = plan(dir.path(), &spec, KernelFormat::ArmZImage).unwrap();
    let tree = &layout.segments[1].data;
    let props = fdtget(dir.path(), tree, &["-p", "/chosen"]);
    assert_eq!(props.lines().collect::<Vec<_>>(), ["bootargs"]);
}

#[test]
fn too_little_ram_is_refused_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    root(dir.path(), 16);
    let spec = BootSpec {
        kernel: zimage(5 << 20),
        initramfs: Some(common::payload(3 << 20)),
        command_line: String::new(),
    };
    let e = plan(dir.path(), &spec, KernelFormat::ArmZImage).unwrap_err();
    assert!(matches!(e, KexecError::OutsideRam { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("initramfs at 0x41908000..0x41c08000")
            && msg.contains("0x40000000..0x41000000"),
        "{msg}"
    );
}

#[test]
fn a_zimage_header_longer_than_its_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    root(dir.path(), 512);
    let mut kernel = zimage(4096);
    kernel.truncate(2048);
    let spec = BootSpec {
        kernel,
        ..BootSpec::default()
    };
    let e = plan(dir.path(), &spec, KernelFormat::ArmZImage).unwrap_err();
    assert!(e.to_string().contains("0x0..0x1000"), "{e}");
}
