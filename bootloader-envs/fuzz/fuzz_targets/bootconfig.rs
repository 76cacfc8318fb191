//! Any bytes as a bootconfig block: decoding, the vendor decision and re-encoding must
//! not panic and must agree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liminix_bootenv::zyxel::{vendor_boot_decision, vendor_boot_decision_block, Bootconfig};

fuzz_target!(|data: &[u8]| {
    let Ok(bc) = Bootconfig::parse(data) else {
        return;
    };
    let (slot, next) = vendor_boot_decision(&bc);
    let (slot2, block) = vendor_boot_decision_block(data).unwrap();
    assert_eq!(slot, slot2);
    assert!(slot <= 1);
    assert_eq!(next.is_some(), block.is_some());
    if let (Some(n), Some(b)) = (next, block) {
        assert_eq!(Bootconfig::parse(&b).unwrap(), n);
        assert_eq!(b.len(), data.len());
    }
    assert_eq!(Bootconfig::parse(&bc.encode_vendor()).unwrap(), bc);
});
