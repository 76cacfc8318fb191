//! The flash.scr texts, line by line as U-Boot runs them, and their script images as mkimage
//! lists them. (Real U-Boot runs a flash.scr in tests/tests/uboot_boots.rs.)

use std::process::Command;

use liminix_build_tools::image::commands::{self, MtdFlash, Tftp, UbiFlash};
use liminix_build_tools::image::{script, Arch};

fn tftp() -> Tftp {
    Tftp {
        serverip: Some("10.0.0.1".into()),
        ipaddr: Some("10.0.0.8".into()),
    }
}

#[test]
fn mtd_flash_fetches_erases_the_whole_partition_and_copies() {
    let text = commands::flash_scr_mtd(&MtdFlash {
        tftp: tftp(),
        file: "result/firmware.bin".into(),
        load_address: 0x8006_0000,
        flash_address: 0x9f05_0000,
        partition_size: 0xfb_0000,
        command_line: "console=ttyS0,115200 panic=10".into(),
    });
    assert_eq!(
        text,
        "setenv serverip 10.0.0.1\nsetenv ipaddr 10.0.0.8\ntftp 0x80060000 result/firmware.bin\n\
         erase 0x9f050000 +0xfb0000\ncp.b 0x80060000 0x9f050000 ${filesize}\n\
         echo command line was 'console=ttyS0,115200 panic=10'\n"
    );
}

#[test]
fn without_addresses_the_environment_keeps_its_own() {
    let text = commands::flash_scr_ubi(&UbiFlash {
        tftp: Tftp::default(),
        file: "rootfs".into(),
        load_address: 0x4007_ff28,
        volume: "liminix".into(),
    });
    assert_eq!(
        text,
        "tftpboot 0x4007ff28 rootfs\nubi write 0x4007ff28 liminix ${filesize}\n"
    );
}

#[test]
fn shell_characters_in_names_are_quoted() {
    let text = commands::flash_scr_ubi(&UbiFlash {
        tftp: tftp(),
        file: "my file;reset".into(),
        load_address: 0x4000_0000,
        volume: "it's".into(),
    });
    assert!(
        text.contains("tftpboot 0x40000000 'my file;reset'\n"),
        "{text}"
    );
    assert!(
        text.contains(r"ubi write 0x40000000 'it'\''s' ${filesize}"),
        "{text}"
    );
}

#[test]
fn the_script_image_lists_as_a_script() {
    let t = tempfile::tempdir().unwrap();
    let text = commands::flash_scr_ubi(&UbiFlash {
        tftp: tftp(),
        file: "rootfs".into(),
        load_address: 0x4007_ff28,
        volume: "liminix".into(),
    });
    let img = t.path().join("flash.scr.uimg");
    std::fs::write(&img, script::write("flash", Arch::Arm, 0, &text).unwrap()).unwrap();
    let out = Command::new("mkimage")
        .arg("-l")
        .arg(&img)
        .output()
        .expect("mkimage");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("ARM Linux Script (uncompressed)"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Image 0: {} Bytes", text.len())),
        "{listing}"
    );
}
