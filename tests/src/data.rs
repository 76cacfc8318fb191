//! Deterministic test data shared by the VM tests (images whose blocks differ from one seed to
//! the next, so "changed blocks" are known exactly).

/// `len` pseudo-random bytes from `seed` (xorshift64).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
