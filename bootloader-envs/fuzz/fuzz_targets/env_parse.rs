//! Any bytes as a copy of either layout and byte order: inspecting and parsing must not
//! panic, and a parsed environment must re-encode and parse back to itself
//! (`liminix_bootenv::fuzzing::env_roundtrip`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    liminix_bootenv::fuzzing::env_roundtrip(data);
});
