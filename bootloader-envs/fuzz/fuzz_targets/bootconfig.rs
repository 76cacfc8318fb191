//! Any bytes as a bootconfig block: decoding, the vendor decision and re-encoding must
//! not panic and must agree with each other (`liminix_bootenv::fuzzing::bootconfig`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    liminix_bootenv::fuzzing::bootconfig(data);
});
