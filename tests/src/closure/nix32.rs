//! Nix store path digests: nix32 encoding and the XOR-fold to 20 bytes
//! (docs/formats/nar.md, "Store paths" and "nix32").

use sha2::{Digest, Sha256};

pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Nix's base-32: characters are emitted from the most significant 5-bit group.
pub fn encode(bytes: &[u8]) -> String {
    let len = (bytes.len() * 8).div_ceil(5);
    (0..len)
        .rev()
        .map(|n| {
            let b = n * 5;
            let (i, j) = (b / 8, b % 8);
            let lo = u32::from(bytes[i]) >> j;
            let hi = bytes.get(i + 1).map_or(0, |&x| u32::from(x) << (8 - j));
            char::from(ALPHABET[((lo | hi) & 31) as usize])
        })
        .collect()
}

fn compress20(h: &[u8; 32]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, b) in h.iter().enumerate() {
        out[i % 20] ^= b;
    }
    out
}

/// The 32-character digest of a store path with this fingerprint
/// (`<type>:sha256:<hex>:/nix/store:<name>`).
pub fn digest_of_fingerprint(fingerprint: &str) -> String {
    let h: [u8; 32] = Sha256::digest(fingerprint.as_bytes()).into();
    encode(&compress20(&h))
}

/// A store path for an input-addressed output: `inputs` stands for the
/// derivation hash, so identical inputs give the identical path, like Nix.
pub fn output_path(inputs: &[u8], name: &str) -> String {
    let inner = hex::encode(Sha256::digest(inputs));
    let digest = digest_of_fingerprint(&format!("output:out:sha256:{inner}:/nix/store:{name}"));
    format!("/nix/store/{digest}-{name}")
}

/// True for `/nix/store/<32 nix32 chars>-<valid name>`.
pub fn is_store_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/nix/store/") else {
        return false;
    };
    let (digest, name) = match (rest.get(..32), rest.get(33..), rest.as_bytes().get(32)) {
        (Some(d), Some(n), Some(b'-')) => (d, n),
        _ => return false,
    };
    digest.bytes().all(|c| ALPHABET.contains(&c))
        && !name.is_empty()
        && name.len() <= 211
        && name != "."
        && name != ".."
        && !name.starts_with(".-")
        && !name.starts_with("..-")
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+-._?=".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix32_vector() {
        let h = Sha256::digest(b"abc");
        assert_eq!(
            encode(&h),
            "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
        );
    }

    #[test]
    fn text_store_path_vector() {
        let inner = hex::encode(Sha256::digest(b"bar"));
        let d = digest_of_fingerprint(&format!("text:sha256:{inner}:/nix/store:foo"));
        assert_eq!(d, "vxjiwkjkn7x4079qvh1jkl5pn05j2aw0");
    }

    #[test]
    fn validates_paths() {
        assert!(is_store_path(
            "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo"
        ));
        assert!(!is_store_path(
            "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0"
        ));
        assert!(!is_store_path(
            "/nix/store/exjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo"
        ));
        assert!(!is_store_path(
            "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-a/b"
        ));
    }
}
