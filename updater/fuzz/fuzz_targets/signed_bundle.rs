//! Arbitrary manifests and payloads, signed with the test key, through `verify`, `receive` and
//! `apply` on fresh temporary roots (`liminix_agent::fuzzing::signed_bundle`). Seed it with the
//! corpus the tests run, and hold every input to a small heap (the readers must never allocate
//! what a manifest announces):
//! `cargo fuzz run signed_bundle ../tests/fuzz-corpus/signed_bundle -- -malloc_limit_mb=64`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    liminix_agent::fuzzing::signed_bundle(data);
});
