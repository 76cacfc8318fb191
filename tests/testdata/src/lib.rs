//! Deterministic test data. The host writes images with [`pattern`] and the static
//! probe programs inside VM guests re-create or check the same bytes, so both sides
//! must use this one generator. No dependencies: it builds for every guest target.

/// `len` pseudo-random bytes from `seed` (xorshift64); different seeds give blocks that
/// differ, so "changed blocks" are known exactly.
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
