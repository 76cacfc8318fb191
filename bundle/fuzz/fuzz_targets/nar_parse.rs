//! The NAR parser on untrusted bytes (the agent runs it on every payload entry).
#![no_main]

use libfuzzer_sys::fuzz_target;
use liminix_bundle::nar::{verify_stream, RestoreOptions};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    let _ = verify_stream(&mut r, &RestoreOptions { max_size: Some(1 << 20) });
});
