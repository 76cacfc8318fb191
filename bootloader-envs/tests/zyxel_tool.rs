//! zyxel-bootconfig on a partition image in a regular file: OpenWrt's output strings,
//! write only on change, every other byte of the block kept.

use std::ffi::OsString;

use liminix_bootenv::zyxel_bootconfig_main;

fn run(args: &[&str]) -> (String, String, i32) {
    let a: Vec<OsString> = args.iter().map(OsString::from).collect();
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let code = zyxel_bootconfig_main(&a, &mut o, &mut e);
    (
        String::from_utf8(o).unwrap(),
        String::from_utf8(e).unwrap(),
        code,
    )
}

#[test]
fn get_set_and_keep_other_bytes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bootconfig.bin");
    let img = liminix_testdata::zyxel_bootconfig_partition();
    std::fs::write(&p, &img).unwrap();
    let dev = p.to_str().unwrap();

    assert_eq!(
        run(&[dev, "get-status"]),
        (
            "Active Image: 0\nImage 0 Status: valid\nImage 1 Status: invalid\n".into(),
            String::new(),
            0
        )
    );
    let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
    assert_eq!(run(&[dev, "set-image-status", "0", "valid"]).2, 0);
    assert_eq!(
        std::fs::metadata(&p).unwrap().modified().unwrap(),
        mtime,
        "no write without change"
    );

    assert_eq!(run(&[dev, "set-image-status", "1", "new"]).2, 0);
    assert_eq!(run(&[dev, "set-active-image", "1"]).2, 0);
    let after = std::fs::read(&p).unwrap();
    assert_eq!(&after[..2], &[0x48, 0x01]);
    assert!(after[2..] == img[2..], "only the two bytes may change");
    assert_eq!(
        run(&[dev, "get-status"]).0,
        "Active Image: 1\nImage 0 Status: valid\nImage 1 Status: new\n"
    );
}

#[test]
fn errors_and_usage() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bc.bin");
    std::fs::write(&p, [0xFFu8; 4096]).unwrap();
    let dev = p.to_str().unwrap();
    let (o, _, c) = run(&[dev]);
    assert_eq!(c, 1);
    assert!(o.starts_with("Usage: zyxel-bootconfig <mtd-device>[:<offset>] <command> [args]\n"));
    assert_eq!(
        run(&[dev, "set-image-status", "2", "new"]),
        (String::new(), "Invalid image-slot set!\n".into(), 1)
    );
    assert_eq!(
        run(&[dev, "set-image-status", "0", "bogus"]),
        (String::new(), "Invalid image-status!\n".into(), 1)
    );
    assert_eq!(run(&[dev, "set-active-image"]).2, 1);
    let missing = d.path().join("nope");
    let m = missing.to_str().unwrap();
    let (_, e, c) = run(&[m, "get-status"]);
    assert_eq!(c, 1);
    assert_eq!(
        e,
        format!("Could not open mtd device: {m}\nError opening {m}!\n")
    );
    // erased block decodes as both invalid, active 1
    assert_eq!(
        run(&[dev, "get-status"]).0,
        "Active Image: 1\nImage 0 Status: invalid\nImage 1 Status: invalid\n"
    );
    // an offset inside the block moves the two bytes
    assert_eq!(
        run(&[&format!("{dev}:0x100"), "set-active-image", "0"]).2,
        0
    );
    let b = std::fs::read(&p).unwrap();
    assert_eq!(&b[0x100..0x102], &[0xCC, 0x00]);
    assert_eq!(&b[..2], &[0xFF, 0xFF]);
    let (_, e, c) = run(&[&format!("{dev}:5000"), "get-status"]);
    assert_eq!(
        (c, e.lines().next().unwrap().to_string()),
        (1, format!("Offset 5000 beyond size of MTD device {dev}"))
    );
    // unknown command: silently nothing, like the C tool
    assert_eq!(run(&[dev, "frobnicate"]), (String::new(), String::new(), 0));
}

/// The A/B flow of docs/formats/zyxel-bootconfig.md on a partition file, the vendor U-Boot modelled
/// between boots.
#[test]
fn agent_try_once_flow_through_the_device_api() {
    use liminix_bootenv::zyxel::{vendor_boot_decision_block, BootconfigDevice, ImageStatus};
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bootconfig.bin");
    let mut img = vec![0u8; 0x40000];
    img[0] = 0x08; // image 0 valid, image 1 none, active 0
    img[0x100..0x200].fill(0x5A);
    std::fs::write(&p, &img).unwrap();

    // updater wrote slot 1: mark it new, leave active alone
    let mut dev = BootconfigDevice::open(&p, 0).unwrap();
    let mut bc = dev.read().unwrap();
    bc.status[1] = ImageStatus::New;
    assert!(dev.write(&bc).unwrap());
    assert!(!dev.write(&bc).unwrap(), "unchanged: no second write");

    // reboot: vendor U-Boot tries slot 1 once and records it as invalid
    let block = dev.read_block().unwrap();
    let (slot, new_block) = vendor_boot_decision_block(&block).unwrap();
    assert_eq!(slot, 1);
    std::fs::write(&p, [new_block.unwrap(), img[0x20000..].to_vec()].concat()).unwrap();

    // the new system is healthy: valid + active
    let mut dev = BootconfigDevice::open(&p, 0).unwrap();
    let mut bc = dev.read().unwrap();
    assert_eq!(bc.status[1], ImageStatus::Invalid);
    bc.status[1] = ImageStatus::Valid;
    bc.active = 1;
    assert!(dev.write(&bc).unwrap());
    let block = dev.read_block().unwrap();
    assert_eq!(vendor_boot_decision_block(&block).unwrap(), (1, None));
    assert!(block[0x100..0x200].iter().all(|&b| b == 0x5A));
}
