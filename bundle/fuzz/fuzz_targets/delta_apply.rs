//! Delta decoding against a base: untrusted ops must never read outside the base or panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let split = usize::from(data[0]) * (data.len() - 2) / 256;
    let target_len = u64::from(data[1]) * 64;
    let (base, ops) = data[2..].split_at(split);
    // A header that matches the base, so the fuzzer exercises the ops decoder itself.
    let mut delta = b"LXD1".to_vec();
    delta.extend_from_slice(&(base.len() as u64).to_le_bytes());
    delta.extend_from_slice(&Sha256::digest(base));
    delta.extend_from_slice(&target_len.to_le_bytes());
    delta.extend_from_slice(ops);
    if let Ok(out) = liminix_bundle::delta::apply(base, &delta) {
        assert_eq!(out.len() as u64, target_len);
    }
});
