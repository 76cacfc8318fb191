//! Binary deltas between two NARs, for rebuilt store paths.
//!
//! A rebuilt Nix package differs from its previous build mostly by the store-path hashes embedded in
//! it: short, scattered edits in otherwise equal bytes. The sender knows (from the agent's `want`
//! reply) which older build of the same package the device has; it encodes the new NAR as copies
//! from that base NAR plus literal bytes, and zstd-compresses the result. Decoding is pure Rust and
//! needs the base NAR in memory (the agent only offers bases below its memory limit) while the new
//! NAR streams out.
//!
//! ```text
//! "LXD1"  u64le base_len  [32] base sha256  u64le target_len
//! ops:    0 ADD  varint len, bytes
//!         1 COPY varint zigzag(offset - previous copy end), varint len
//!         2 END
//! ```

use std::collections::HashMap;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 4] = b"LXD1";
/// Granularity of the base index; matches shorter than this are sent as literals.
const BLOCK: usize = 16;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn block_key(b: &[u8]) -> u64 {
    let lo = u64::from_le_bytes(b[..8].try_into().expect("16-byte block"));
    let hi = u64::from_le_bytes(b[8..16].try_into().expect("16-byte block"));
    (lo ^ hi.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Encodes `target` against `base`.
pub fn encode(base: &[u8], target: &[u8]) -> Vec<u8> {
    let mut index: HashMap<u64, u32> = HashMap::with_capacity(base.len() / BLOCK + 1);
    for p in (0..base.len().saturating_sub(BLOCK - 1)).step_by(BLOCK) {
        index
            .entry(block_key(&base[p..p + BLOCK]))
            .or_insert(p as u32);
    }
    let mut out = Vec::with_capacity(target.len() / 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(base.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(base));
    out.extend_from_slice(&(target.len() as u64).to_le_bytes());
    let mut enc = Encoder {
        out,
        literal_start: 0,
        prev_end: 0,
    };
    let mut i = 0;
    while i + BLOCK <= target.len() {
        let found = index
            .get(&block_key(&target[i..i + BLOCK]))
            .map(|&p| p as usize);
        match found.filter(|&p| base[p..p + BLOCK] == target[i..i + BLOCK]) {
            Some(p) => {
                let back = common_suffix(&base[..p], &target[enc.literal_start..i]);
                let fwd = common_prefix(&base[p..], &target[i..]);
                enc.copy(target, i - back, p - back, back + fwd);
                i += fwd;
            }
            None => i += 1,
        }
    }
    enc.literal(target, target.len());
    enc.out.push(2);
    enc.out
}

struct Encoder {
    out: Vec<u8>,
    literal_start: usize,
    prev_end: usize,
}

impl Encoder {
    fn literal(&mut self, target: &[u8], end: usize) {
        if end > self.literal_start {
            self.out.push(0);
            put_varint(&mut self.out, (end - self.literal_start) as u64);
            self.out.extend_from_slice(&target[self.literal_start..end]);
        }
        self.literal_start = end;
    }

    fn copy(&mut self, target: &[u8], at: usize, from: usize, len: usize) {
        self.literal(target, at);
        let delta = from as i64 - self.prev_end as i64;
        self.out.push(1);
        put_varint(&mut self.out, ((delta << 1) ^ (delta >> 63)) as u64);
        put_varint(&mut self.out, len as u64);
        self.prev_end = from + len;
        self.literal_start = at + len;
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("delta: {}", msg.into()))
}

/// Streams the target NAR out of a delta and the base NAR it was made against.
pub struct DeltaReader<'a, R: Read> {
    base: &'a [u8],
    ops: R,
    /// Bytes of the current op still to produce: (from base at offset, or literal from `ops`).
    pending: Option<(Option<usize>, u64)>,
    prev_end: usize,
    produced: u64,
    target_len: u64,
    ended: bool,
}

impl<'a, R: Read> DeltaReader<'a, R> {
    /// Checks the header against the base the receiver has.
    pub fn new(base: &'a [u8], mut ops: R) -> io::Result<Self> {
        let mut head = [0u8; 4 + 8 + 32 + 8];
        ops.read_exact(&mut head)?;
        if &head[..4] != MAGIC {
            return Err(invalid("bad magic"));
        }
        let base_len = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
        if base_len != base.len() as u64 || head[12..44] != Sha256::digest(base)[..] {
            return Err(invalid(
                "made against a different base than the one on this device",
            ));
        }
        let target_len = u64::from_le_bytes(head[44..52].try_into().expect("8 bytes"));
        Ok(DeltaReader {
            base,
            ops,
            pending: None,
            prev_end: 0,
            produced: 0,
            target_len,
            ended: false,
        })
    }

    fn varint(&mut self) -> io::Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let mut b = [0u8; 1];
            self.ops.read_exact(&mut b)?;
            v |= u64::from(b[0] & 0x7f) << shift;
            if b[0] & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(invalid("varint too long"))
    }

    fn next_op(&mut self) -> io::Result<()> {
        let mut op = [0u8; 1];
        self.ops.read_exact(&mut op)?;
        let op = match op[0] {
            0 => (None, self.varint()?),
            1 => {
                let z = self.varint()?;
                let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
                let len = self.varint()?;
                // Offsets and lengths are untrusted: every step is checked, none wraps.
                let from = i64::try_from(self.prev_end)
                    .ok()
                    .and_then(|p| p.checked_add(delta))
                    .and_then(|f| usize::try_from(f).ok())
                    .ok_or_else(|| invalid("copy before the base"))?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| from.checked_add(l))
                    .filter(|&e| e <= self.base.len())
                    .ok_or_else(|| invalid("copy past the base"))?;
                self.prev_end = end;
                (Some(from), len)
            }
            2 => {
                self.ended = true;
                if self.produced != self.target_len {
                    return Err(invalid("ended before the announced length"));
                }
                return Ok(());
            }
            x => return Err(invalid(format!("unknown op {x}"))),
        };
        if op.1 > self.target_len - self.produced {
            return Err(invalid("longer than announced"));
        }
        self.pending = Some(op);
        Ok(())
    }
}

impl<R: Read> Read for DeltaReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.ended && !buf.is_empty() {
            match self.pending {
                None | Some((_, 0)) => self.next_op()?,
                Some((src, left)) => {
                    let n = usize::try_from(left).map_or(buf.len(), |l| buf.len().min(l));
                    match src {
                        Some(from) => {
                            buf[..n].copy_from_slice(&self.base[from..from + n]);
                            self.pending = Some((Some(from + n), left - n as u64));
                        }
                        None => {
                            self.ops.read_exact(&mut buf[..n])?;
                            self.pending = Some((None, left - n as u64));
                        }
                    }
                    self.produced += n as u64;
                    return Ok(n);
                }
            }
        }
        Ok(0)
    }
}

/// Applies a whole delta in memory.
pub fn apply(base: &[u8], delta: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    DeltaReader::new(base, delta)?.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 40) as u8
            })
            .collect()
    }

    #[test]
    fn roundtrip_with_scattered_edits() {
        let base = pseudo(200_000, 1);
        let mut target = base.clone();
        for k in (1000..target.len()).step_by(7919) {
            target[k..k + 32].copy_from_slice(&pseudo(32, k as u64));
        }
        target.splice(5000..5000, pseudo(3000, 9));
        target.drain(150_000..151_000);
        let d = encode(&base, &target);
        assert!(
            d.len() < target.len() / 10,
            "delta {} for {} bytes",
            d.len(),
            target.len()
        );
        assert_eq!(apply(&base, &d).unwrap(), target);
    }

    #[test]
    fn unrelated_and_tiny_inputs() {
        for (b, t) in [
            (vec![], vec![]),
            (vec![], pseudo(100, 3)),
            (pseudo(10, 4), vec![]),
            (pseudo(5000, 5), pseudo(7000, 6)),
        ] {
            assert_eq!(apply(&b, &encode(&b, &t)).unwrap(), t);
        }
    }

    #[test]
    fn wrong_base_and_corruption_are_refused() {
        let base = pseudo(10_000, 1);
        let d = encode(&base, &pseudo(10_000, 2));
        assert!(apply(&pseudo(10_000, 3), &d).is_err());
        let mut bad = encode(&base, &base);
        let n = bad.len();
        bad[n - 3] = 0xff;
        assert!(apply(&base, &bad).is_err());
        assert!(apply(&base, &bad[..n - 1]).is_err());
    }

    /// Hostile varints: copies far before or past the base, lengths that would wrap the count of
    /// produced bytes. Each is refused, none panics.
    #[test]
    fn hostile_offsets_and_lengths_are_refused() {
        let base = pseudo(100, 9);
        let header = |target_len: u64| {
            let mut d = MAGIC.to_vec();
            d.extend_from_slice(&(base.len() as u64).to_le_bytes());
            d.extend_from_slice(&Sha256::digest(&base));
            d.extend_from_slice(&target_len.to_le_bytes());
            d
        };
        let op = |d: &mut Vec<u8>, code: u8, args: &[u64]| {
            d.push(code);
            for &a in args {
                put_varint(d, a);
            }
        };
        let max = u64::MAX;
        type Ops<'a> = &'a [(u8, &'a [u64])];
        let cases: [(Ops, &str); 4] = [
            (&[(1, &[max, 1])], "before the base"),
            (&[(1, &[max - 1, 1])], "past the base"),
            (&[(1, &[20, max])], "past the base"),
            (&[(1, &[0, 10]), (0, &[max])], "longer than announced"),
        ];
        for (ops, want) in cases {
            let mut d = header(max);
            for (code, args) in ops {
                op(&mut d, *code, args);
            }
            let err = apply(&base, &d).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let mut d = header(10);
        op(&mut d, 0, &[max]);
        assert!(apply(&base, &d).unwrap_err().to_string().contains("longer"));
    }

    /// The fuzz target's property on a fixed pseudo-random corpus: arbitrary ops behind a valid
    /// header never panic, and a success always yields exactly the announced length.
    #[test]
    fn arbitrary_ops_never_panic() {
        let base = pseudo(3000, 77);
        for seed in 0..2000u64 {
            let ops = pseudo(64 + (seed as usize % 200), seed)
                .iter()
                .map(|b| b.wrapping_mul(7))
                .collect::<Vec<u8>>();
            let target_len = seed % 500;
            let mut d = MAGIC.to_vec();
            d.extend_from_slice(&(base.len() as u64).to_le_bytes());
            d.extend_from_slice(&Sha256::digest(&base));
            d.extend_from_slice(&target_len.to_le_bytes());
            d.extend_from_slice(&ops);
            if let Ok(out) = apply(&base, &d) {
                assert_eq!(out.len() as u64, target_len);
            }
        }
    }
}
