//! Runs the fuzz targets' properties over a deterministic pseudo-random corpus so they
//! are exercised by `cargo test` too (the real fuzzers live in fuzz/, run with cargo fuzz).

use liminix_bootenv::fuzzing;
use liminix_bootenv::zyxel::Bootconfig;

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
    let parsed: usize = corpus().iter().map(|d| fuzzing::env_roundtrip(d)).sum();
    assert!(
        parsed > 100,
        "corpus must reach the parser with good CRCs ({parsed})"
    );
}

#[test]
fn bootconfig_properties() {
    for data in corpus() {
        assert!(
            Bootconfig::parse(&data).is_ok(),
            "corpus inputs are long enough"
        );
        fuzzing::bootconfig(&data);
    }
}
