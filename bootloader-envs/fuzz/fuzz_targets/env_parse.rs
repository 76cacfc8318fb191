//! Any bytes as a copy of either layout and byte order: inspecting and parsing must not
//! panic, and a parsed environment must re-encode and parse back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liminix_bootenv::{Endian, Env, Layout};

fuzz_target!(|data: &[u8]| {
    for redundant in [false, true] {
        for endian in [Endian::Little, Endian::Big] {
            let Ok(l) = Layout::new(data.len(), redundant, endian) else {
                continue;
            };
            let _ = l.inspect(data);
            if let Ok((env, _)) = l.parse(data) {
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
    let _ = Env::from_text(data);
});
