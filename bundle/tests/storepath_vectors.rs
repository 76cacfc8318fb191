//! Store path parsing and nix32 against the vectors verified with nix (docs/formats/nar.md).

use liminix_bundle::storepath::{nix32_decode, nix32_encode, StorePath, StorePathError, STORE_DIR};
use sha2::{Digest, Sha256};

/// Nix's XOR-fold of a sha256 to the 20 bytes a store path digest holds.
fn compress20(h: &[u8]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, b) in h.iter().enumerate() {
        out[i % 20] ^= b;
    }
    out
}

#[test]
fn nix32_of_sha256_abc() {
    let h = Sha256::digest(b"abc");
    let s = nix32_encode(&h);
    assert_eq!(s, "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
    assert_eq!(nix32_decode(&s).unwrap(), h.as_slice());
}

#[test]
fn nix32_lengths_and_roundtrip() {
    for len in 0..40usize {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let s = nix32_encode(&bytes);
        assert_eq!(s.len(), (len * 8).div_ceil(5), "length for {len} bytes");
        assert_eq!(nix32_decode(&s).unwrap(), bytes);
    }
    assert_eq!(nix32_encode(&[0xff; 20]).len(), 32);
}

#[test]
fn nix32_decode_rejects_bad_input() {
    let good = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";
    for bad_char in ['e', 'o', 'u', 't', 'A', '-', 'é'] {
        let s = format!("{}{}", &good[..51], bad_char);
        let err = nix32_decode(&s).unwrap_err();
        assert!(
            matches!(err, StorePathError::Nix32Char { .. }),
            "{s}: {err}"
        );
        assert!(err.to_string().contains(&format!("{bad_char:?}")), "{err}");
    }
    // 52 characters hold 260 bits; a leading digit above 15 sets bits beyond 32 bytes.
    let overflow = format!("z{}", &good[1..]);
    assert!(matches!(
        nix32_decode(&overflow),
        Err(StorePathError::Nix32Overflow { .. })
    ));
}

#[test]
fn text_store_path_vector() {
    // builtins.toFile "foo" "bar" → /nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo
    let inner = hex::encode(Sha256::digest(b"bar"));
    let fingerprint = format!("text:sha256:{inner}:{STORE_DIR}:foo");
    let digest = nix32_encode(&compress20(&Sha256::digest(fingerprint.as_bytes())));
    let expected = "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo";
    assert_eq!(format!("{STORE_DIR}/{digest}-foo"), expected);
    let p = StorePath::parse(expected).unwrap();
    assert_eq!(p.digest(), digest);
    assert_eq!(p.name(), "foo");
    assert_eq!(p.to_string(), expected);
}

#[test]
fn parse_accepts_valid_paths() {
    let cases = [
        "/nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a",
        "/nix/store/kbnsdqvza4r1hzcr5vs2bhx8kv150g37-b",
        "/nix/store/a1ps36f9hgswz9k0s9hxkywj2vbz7ibx-hi",
        "/nix/store/bwpmyjs4z84l9kwbcv2pk966pxd98snl-busybox-1.36.1+x_y?z=.w",
        "/nix/store/bwpmyjs4z84l9kwbcv2pk966pxd98snl-.hidden",
        "/nix/store/bwpmyjs4z84l9kwbcv2pk966pxd98snl-...",
    ];
    for c in cases {
        let p: StorePath = c.parse().unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(p.to_string(), c);
        let base = c.strip_prefix("/nix/store/").unwrap();
        assert_eq!(p.base_name(), base);
        assert_eq!(StorePath::from_base_name(base).unwrap(), p);
    }
    let long = format!(
        "/nix/store/12wigjpizrn8axaqxj288q1b751qmwya-{}",
        "x".repeat(211)
    );
    assert!(StorePath::parse(&long).is_ok());
}

#[test]
fn parse_rejects_invalid_paths() {
    let d = "12wigjpizrn8axaqxj288q1b751qmwya";
    let cases = [
        "/etc/passwd".to_owned(),
        "/nix/store/../etc".to_owned(),
        "/nix/store".to_owned(),
        "/nix/store/".to_owned(),
        "nix/store/{d}-a".replace("{d}", d),
        format!("/nix/storex/{d}-a"),
        format!("/nix/store/{d}-a/"),
        format!("/nix/store/{d}-a/bin/sh"),
        format!("/nix/store//{d}-a"),
        format!("/nix/store/{d}-"),
        format!("/nix/store/{d}"),
        format!("/nix/store/{d}x-a"),
        format!("/nix/store/{}-a", &d[..31]),
        format!("/nix/store/{}e-a", &d[..31]),
        format!("/nix/store/{}E-a", &d[..31]),
        format!("/nix/store/{}é-a", &d[..30]),
        format!("/nix/store/{d}-."),
        format!("/nix/store/{d}-.."),
        format!("/nix/store/{d}-.-x"),
        format!("/nix/store/{d}-..-x"),
        format!("/nix/store/{d}-a b"),
        format!("/nix/store/{d}-a\0"),
        format!("/nix/store/{d}-ä"),
        format!("/nix/store/{d}-{}", "x".repeat(212)),
    ];
    for c in &cases {
        let err = StorePath::parse(c).expect_err(c);
        assert!(
            err.to_string().contains(&format!("{c:?}")),
            "error should name the input: {err}"
        );
    }
    assert!(StorePath::from_base_name(&format!("{d}-a/b")).is_err());
    assert!(StorePath::from_base_name(&format!("/nix/store/{d}-a")).is_err());
}

#[test]
fn ordering_and_hash_are_by_digest_then_name() {
    let a = StorePath::parse("/nix/store/12wigjpizrn8axaqxj288q1b751qmwya-z").unwrap();
    let b = StorePath::parse("/nix/store/kbnsdqvza4r1hzcr5vs2bhx8kv150g37-a").unwrap();
    assert!(a < b);
    let set: std::collections::HashSet<_> = [a.clone(), a.clone(), b].into_iter().collect();
    assert_eq!(set.len(), 2);
}
