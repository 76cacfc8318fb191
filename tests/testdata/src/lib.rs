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

/// `len` bytes shaped like compiled code, for delta and patch tests: three pseudo-random bytes in
/// every eight, the rest a slowly rising count, so that a compressor finds structure and a
/// rebuild ([`tenth_changed`]) leaves most of it in place.
pub fn code_like(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 8 < 3 {
                (x % 251) as u8
            } else {
                (i / 64) as u8
            }
        })
        .collect()
}

/// `base` with a tenth of it rewritten in 4 KiB pieces every 40 KiB, each from its own seed
/// (`seed` plus its offset): a new build of the same program.
pub fn tenth_changed(base: &[u8], seed: u64) -> Vec<u8> {
    let mut t = base.to_vec();
    for at in (0..t.len().saturating_sub(4096)).step_by(40960) {
        t[at..at + 4096].copy_from_slice(&code_like(seed + at as u64, 4096));
    }
    t
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
