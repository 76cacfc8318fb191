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

/// A 512 KiB Zyxel NWA50AX bootconfig partition as the vendor leaves it: `C8 00` (image 0 VALID,
/// image 1 NEW, active 0), zeros to byte 32, vendor data to the end of the first 128 KiB erase
/// block, the rest erased. The bootconfig tools must keep every byte but the first two.
pub fn zyxel_bootconfig_partition() -> Vec<u8> {
    let mut img = vec![0xFFu8; 0x80000];
    img[0] = 0xC8;
    img[1] = 0x00;
    img[2..32].fill(0);
    for (i, b) in img[32..0x20000].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    img
}
