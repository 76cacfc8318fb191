//! The properties the fuzz targets (`fuzz/`) check on arbitrary bytes, kept here so that
//! `cargo fuzz` and the fixed corpus in `tests/fuzz_corpus_smoke.rs` run the same checks.
//! Each panics when a property fails.

use crate::layout::{Endian, Layout};
use crate::zyxel::{vendor_boot_decision, vendor_boot_decision_block, Bootconfig};
use crate::{Env, EnvError};

/// Any bytes as a copy of either layout and byte order: inspecting and parsing must not
/// panic, and a parsed environment must re-encode and parse back to itself. Returns how
/// many of the four readings parsed with a good CRC.
pub fn env_roundtrip(data: &[u8]) -> usize {
    let mut parsed = 0;
    for redundant in [false, true] {
        for endian in [Endian::Little, Endian::Big] {
            let Ok(l) = Layout::new(data.len(), redundant, endian) else {
                continue;
            };
            let st = l.inspect(data);
            let Ok((env, _)) = l.parse(data) else {
                continue;
            };
            parsed += usize::from(st.crc_ok);
            // A full area without the final empty string parses (U-Boot imports it too)
            // but is re-encoded only with the terminator, so it may be one byte short.
            let img = match l.encode(&env, 1, 0) {
                Ok(img) => img,
                Err(EnvError::TooLarge { needed, available }) => {
                    assert_eq!(needed, available + 1);
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            assert!(l.inspect(&img).crc_ok);
            assert_eq!(l.parse(&img).unwrap().0, env);
        }
    }
    let _ = Env::from_text(data);
    parsed
}

/// Any bytes as a bootconfig block: decoding, the vendor decision and re-encoding must
/// not panic and must agree with each other.
pub fn bootconfig(data: &[u8]) {
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
}
