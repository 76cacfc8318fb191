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

/// The cases of `tests/fuzz-corpus/fw_env_config.txt`, separated by blank lines; each starts
/// with a `# valid:` or `# hostile:` comment (which the parser skips, as any `#` line).
fn config_cases() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz-corpus/fw_env_config.txt"
    );
    std::fs::read_to_string(path)
        .unwrap()
        .split("\n\n")
        .map(str::to_owned)
        .collect()
}

#[test]
fn fw_env_config_hostile_values_are_refused() {
    let cases = config_cases();
    let hostile = cases.iter().filter(|c| c.starts_with("# hostile")).count();
    assert!(hostile >= 10, "{hostile}");
    for case in &cases {
        let result = fuzzing::fw_env_config(case.as_bytes());
        println!("{case}\n  -> {result:?}\n");
        if case.starts_with("# hostile") {
            assert!(result.is_err(), "{case}");
        } else {
            assert!(case.starts_with("# valid"), "{case}");
            result.unwrap();
        }
    }
}

#[test]
fn fw_env_config_arbitrary_numbers_never_panic() {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let numbers = |v: u64| match v % 6 {
        0 => format!("{:x}", v >> (v % 64)),
        1 => "7fffffffffffffff".to_owned(),
        2 => format!("{:x}", 1u64 << (v % 24)),
        3 => format!("0x{:x}", (v % 64) << 14),
        4 => format!("-0x{:x}", v % 0x100000),
        _ => "0".to_owned(),
    };
    for _ in 0..500 {
        let lines = 1 + next() % 2;
        let text: String = (0..lines)
            .map(|_| {
                let fields: Vec<String> = (0..4).map(|_| numbers(next())).collect();
                format!("/dev/mtd1 {}\n", fields.join(" "))
            })
            .collect();
        let _ = fuzzing::fw_env_config(text.as_bytes());
    }
}
