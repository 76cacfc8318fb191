use super::*;

#[test]
fn decode_golden_bytes() {
    // docs/formats/zyxel-bootconfig.md example: image0 valid, image1 invalid, active 0 → C8 00
    let bc = Bootconfig::parse(&[0xC8, 0x00]).unwrap();
    assert_eq!(bc.status, [ImageStatus::Valid, ImageStatus::Invalid]);
    assert_eq!(bc.active, 0);
    assert_eq!(bc.encode_tool(), [0xC8, 0x00]);
    // erased block: both invalid, active 1, log bits set
    let bc = Bootconfig::parse(&[0xFF, 0xFF]).unwrap();
    assert_eq!(bc.status, [ImageStatus::Invalid, ImageStatus::Invalid]);
    assert_eq!(bc.log, [true, true]);
    assert_eq!(bc.active, 1);
    assert_eq!(bc.encode_tool(), [0xCC, 0x01]);
    assert_eq!(bc.encode_vendor(), [0xEE, 0x01]);
    assert!(Bootconfig::parse(&[1]).is_err());
}

#[test]
fn vendor_tries_first_new_image_once() {
    // image0 valid, image1 new, active 0 → boots 1 and writes it as invalid
    let block: Vec<u8> = [0x48, 0x00].into_iter().chain(1..=62u8).collect();
    let (slot, new) = vendor_boot_decision_block(&block).unwrap();
    assert_eq!(slot, 1);
    let new = new.unwrap();
    assert_eq!(&new[..2], &[0xC8, 0x00]);
    assert!(new[2..32].iter().all(|&b| b == 0));
    assert_eq!(&new[32..], &block[32..]);
    // both new: image 0 first
    let (slot, new) = vendor_boot_decision_block(&[0x44, 0x01]).unwrap();
    assert_eq!((slot, new.unwrap()), (0, vec![0x4C, 0x01]));
    // log bit of the tried image is preserved by the vendor
    let (_, new) = vendor_boot_decision_block(&[0x06, 0x00]).unwrap();
    assert_eq!(new.unwrap(), vec![0x0E, 0x00]);
}

#[test]
fn vendor_boots_active_when_nothing_new() {
    for (bytes, slot) in [
        ([0xC8u8, 0x00u8], 0u8),
        ([0xC8, 0x01], 1),
        ([0xFF, 0xFF], 1),
        ([0, 0], 0),
    ] {
        assert_eq!(vendor_boot_decision_block(&bytes).unwrap(), (slot, None));
    }
}

#[test]
fn try_once_protocol_round_trip() {
    // updater: slot 1 written, marked new, active stays 0
    let mut bc = Bootconfig::parse(&[0x08, 0x00]).unwrap();
    bc.status[1] = ImageStatus::New;
    let (slot, after) = vendor_boot_decision(&bc);
    assert_eq!(slot, 1);
    let after = after.unwrap();
    // the new OS never confirms: next boot goes back to slot 0
    assert_eq!(vendor_boot_decision(&after), (0, None));
    // the new OS confirms: valid + active 1
    let mut ok = after;
    ok.status[1] = ImageStatus::Valid;
    ok.active = 1;
    assert_eq!(vendor_boot_decision(&ok), (1, None));
}

#[test]
fn boot_image_from_cmdline_takes_the_last() {
    assert_eq!(
        boot_image_from_cmdline("console=ttyS0 bootImage=0 bootVer=V1.05"),
        Some(0)
    );
    assert_eq!(
        boot_image_from_cmdline("bootImage=0 x bootImage=1\n"),
        Some(1)
    );
    assert_eq!(boot_image_from_cmdline("bootImage=7 quiet"), None);
    assert_eq!(boot_image_from_cmdline("xbootImage=1"), None);
}

#[test]
fn running_slot_prefers_device_tree() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(running_slot(d.path()).unwrap(), None);
    std::fs::create_dir_all(d.path().join("proc/device-tree/chosen")).unwrap();
    std::fs::write(d.path().join("proc/cmdline"), "console=ttyS0 bootImage=0\n").unwrap();
    assert_eq!(running_slot(d.path()).unwrap(), Some(0));
    std::fs::write(
        d.path().join("proc/device-tree/chosen/bootargs"),
        b"console=ttyS0 bootImage=1 bootVer=V1.05\0",
    )
    .unwrap();
    assert_eq!(running_slot(d.path()).unwrap(), Some(1));
}
