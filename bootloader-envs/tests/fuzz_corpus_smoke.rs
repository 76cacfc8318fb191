//! Runs the fuzz targets' properties over a deterministic pseudo-random corpus so they
//! are exercised by `cargo test` too (the real fuzzers live in fuzz/, run with cargo fuzz).

use liminix_bootenv::zyxel::{vendor_boot_decision, vendor_boot_decision_block, Bootconfig};
use liminix_bootenv::{Endian, Env, Layout};

fn corpus() -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = b"ab=\0\0\xff x";
    (0..3000)
        .map(|i| {
            let len = 5 + (next() % 64) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| alphabet[(next() % 8) as usize]).collect();
            if i % 3 == 0 {
                // give some inputs a valid CRC so parsing is reached
                let crc = crc32fast::hash(&v[4..]);
                v[..4].copy_from_slice(&crc.to_le_bytes());
            }
            v
        })
        .collect()
}

#[test]
fn env_parse_properties() {
    let mut parsed = 0;
    for data in corpus() {
        for redundant in [false, true] {
            for endian in [Endian::Little, Endian::Big] {
                let Ok(l) = Layout::new(data.len(), redundant, endian) else {
                    continue;
                };
                let st = l.inspect(&data);
                if let Ok((env, _)) = l.parse(&data) {
                    parsed += usize::from(st.crc_ok);
                    // A full area without the final empty string parses (U-Boot imports it too)
                    // but is re-encoded only with the terminator, so it may be one byte short.
                    let img = match l.encode(&env, 1, 0) {
                        Ok(img) => img,
                        Err(liminix_bootenv::EnvError::TooLarge { needed, available }) => {
                            assert_eq!(needed, available + 1);
                            continue;
                        }
                        Err(e) => panic!("{e}"),
                    };
                    assert!(l.inspect(&img).crc_ok);
                    assert_eq!(l.parse(&img).unwrap().0, env);
                }
            }
        }
        let _ = Env::from_text(&data);
    }
    assert!(
        parsed > 100,
        "corpus must reach the parser with good CRCs ({parsed})"
    );
}

#[test]
fn bootconfig_properties() {
    for data in corpus() {
        let bc = Bootconfig::parse(&data).unwrap();
        let (slot, next) = vendor_boot_decision(&bc);
        let (slot2, block) = vendor_boot_decision_block(&data).unwrap();
        assert_eq!(slot, slot2);
        if let (Some(n), Some(b)) = (next, block) {
            assert_eq!(Bootconfig::parse(&b).unwrap(), n);
        }
        assert_eq!(Bootconfig::parse(&bc.encode_vendor()).unwrap(), bc);
    }
}
