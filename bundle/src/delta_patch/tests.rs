use super::*;

fn pseudo(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 251) as u8
        })
        .collect()
}

/// A target like a rebuilt binary: the base with scattered edits, an insertion, a deletion.
fn edited(base: &[u8]) -> Vec<u8> {
    let mut t = base.to_vec();
    for k in (1000..t.len().saturating_sub(64)).step_by(7919) {
        t[k..k + 20].copy_from_slice(&pseudo(20, k as u64));
    }
    t.splice(5000..5000, pseudo(3000, 9));
    t.drain(t.len() / 2..t.len() / 2 + 1000);
    t
}

#[test]
fn roundtrip_small_and_windowed() {
    for n in [0, 100, 200_000, (MAX_REF as usize) + (3 << 20)] {
        let base = pseudo(n, 3);
        let target = if n < 6000 {
            pseudo(n, 4)
        } else {
            edited(&base)
        };
        let p = encode(&base, &target, 3).unwrap();
        assert_eq!(apply(&base, &p).unwrap(), target, "{n}");
        if n >= 6000 {
            assert!(
                p.len() < target.len() / 20,
                "{} for {}",
                p.len(),
                target.len()
            );
        }
    }
}

/// The frames are real zstd: the zstd tool decodes a one-segment patch's frame given the base as
/// `--patch-from`, which is what the encoder claims to produce.
#[test]
fn segments_are_zstd_patch_from_frames() {
    let dir = tempfile::tempdir().unwrap();
    let base = pseudo(300_000, 5);
    let target = edited(&base);
    let p = encode(&base, &target, 19).unwrap();
    let frame_at = HEADER_LEN + 8 + 12;
    std::fs::write(dir.path().join("base"), &base).unwrap();
    std::fs::write(dir.path().join("frame.zst"), &p[frame_at..]).unwrap();
    let out = std::process::Command::new("zstd")
        .args(["-d", "-q", "-c", "--long=24", "--patch-from"])
        .arg(dir.path().join("base"))
        .arg(dir.path().join("frame.zst"))
        .output()
        .expect("zstd must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, target);
}

#[test]
fn wrong_base_and_hostile_segments_are_refused() {
    let base = pseudo(50_000, 1);
    let target = edited(&base);
    let p = encode(&base, &target, 3).unwrap();
    let err = apply(&pseudo(50_000, 2), &p).unwrap_err().to_string();
    assert!(err.contains("different base"), "{err}");
    assert!(apply(&base, &p[..p.len() - 1]).is_err());
    let mut trailing = p.clone();
    trailing.push(0);
    assert!(apply(&base, &trailing).is_err());
    let seg = HEADER_LEN;
    let field = |p: &mut Vec<u8>, at: usize, v: &[u8]| p[at..at + v.len()].copy_from_slice(v);
    let cases: [(usize, Vec<u8>, &str); 4] = [
        (seg, 40_000u64.to_le_bytes().to_vec(), "past the base"),
        (
            seg + 8,
            (MAX_REF + 1).to_le_bytes().to_vec(),
            "past the base",
        ),
        (
            seg + 12,
            (MAX_SEG + 1).to_le_bytes().to_vec(),
            "over the limits",
        ),
        (seg + 12, 0u32.to_le_bytes().to_vec(), "over the limits"),
    ];
    for (at, v, want) in cases {
        let mut bad = p.clone();
        field(&mut bad, at, &v);
        let err = apply(&base, &bad).unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let base = pseudo(20_000, 77);
    let good = encode(&base, &edited(&base), 1).unwrap();
    for seed in 0..500u64 {
        let mut p = good.clone();
        let at = HEADER_LEN + (seed as usize * 31) % (p.len() - HEADER_LEN);
        p[at] ^= (seed as u8) | 1;
        if let Ok(out) = apply(&base, &p) {
            assert_eq!(out.len(), edited(&base).len());
        }
    }
}
