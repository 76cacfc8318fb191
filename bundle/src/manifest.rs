//! The manifest: what a bundle claims to contain, signed as a whole.
//!
//! It is JSON so that `liminix-pack inspect` and humans can read it, but it is parsed strictly:
//! unknown fields are refused, store paths are validated, and the list of paths must be sorted and
//! unique so that one manifest has exactly one serialisation a signer could have meant.
//!
//! A manifest lists store paths (a closure update), flash images (an image update), or both. The
//! `images` field is left out when empty, so closure-only manifests serialise exactly as before
//! images existed. An image-only manifest has no store paths and an empty (omitted) toplevel.

use serde::{Deserialize, Serialize};

use crate::limits::{count, LimitError, Limits, LIMITS};
use crate::storepath::StorePath;

/// Bundle format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Upper bound for the manifest, so that a hostile stream cannot make the device allocate much:
/// room for [`LIMITS`]`.max_paths` paths, and the parsed manifest with its bytes stays within a
/// few MiB of a router's memory.
pub const MAX_MANIFEST_BYTES: u32 = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Board name as in `/etc/liminix/board` on the device.
    pub board: String,
    pub generation: Generation,
    /// Security epoch: a device refuses a bundle whose epoch is lower than the highest it installed.
    pub epoch: u64,
    /// Every store path of the closure, including the toplevel, sorted by path.
    #[serde(default)]
    pub paths: Vec<PathEntry>,
    /// Flash images, sorted by name; the board definition says where each one goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    /// The system configuration store path (`…-system-configuration-<arch>`); empty (and omitted)
    /// in an image-only bundle.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub toplevel: String,
    /// Seconds since the epoch, UTC, when the bundle was made (or `SOURCE_DATE_EPOCH`).
    pub build_time: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathEntry {
    pub path: String,
    /// sha256 of the path's NAR serialisation, lower-case hex (`nix-store --dump P | sha256sum`).
    pub nar_sha256: String,
    pub nar_size: u64,
    /// Files, directories and symlinks in the path: with `nar_size`, a receiver's upper bound for
    /// the space (blocks and inodes) the path will take.
    pub entries: u64,
}

/// One flash image: the bytes for one target (a raw partition or a UBI volume) of the board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// Image name as the board definition defines it (`firmware`, `kernel`, `rootfs`, …).
    pub name: String,
    /// Where the board definition said the image goes when the bundle was packed (`mtd:NAME` or
    /// `ubi:VOLUME`); the device checks it against its own board definition.
    pub target: String,
    /// sha256 of the image bytes, lower-case hex.
    pub sha256: String,
    /// Image length in bytes.
    pub size: u64,
    /// What the device must hold for an entry of this image to be a patch (encoding 4): the
    /// current contents of the image's target, their first `size` bytes. Left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<ImageBase>,
}

/// The contents of a target an image patch was made against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBase {
    /// sha256 of the base bytes, lower-case hex.
    pub sha256: String,
    /// Length of the base in bytes.
    pub size: u64,
}

/// Largest base an image patch may name (the largest flash partition the format expects).
pub const MAX_IMAGE_BASE: u64 = 1 << 40;

/// Longest image name or target.
pub const MAX_IMAGE_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON for format {FORMAT_VERSION}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bundle format {found} is not supported (this agent reads format {FORMAT_VERSION})")]
    Version { found: u32 },
    #[error("manifest names an invalid store path {path:?}: {source}")]
    BadPath {
        path: String,
        source: crate::storepath::StorePathError,
    },
    #[error("manifest paths are not sorted and unique at {path:?}")]
    Unsorted { path: String },
    #[error("manifest has a malformed NAR hash for {path:?}")]
    BadHash { path: String },
    #[error("toplevel {toplevel:?} is not one of the manifest's paths")]
    ToplevelMissing { toplevel: String },
    #[error("board name {0:?} is not a plain name")]
    BadBoard(String),
    #[error("manifest has neither store paths nor images")]
    Empty,
    #[error("manifest has store paths but no toplevel")]
    NoToplevel,
    #[error("image name or target {0:?} is not a plain name")]
    BadImageName(String),
    #[error("manifest images are not sorted and unique at {0:?}")]
    UnsortedImages(String),
    #[error("manifest has a malformed sha256 for image {0:?}")]
    BadImageHash(String),
    #[error("image {0:?} is empty")]
    EmptyImage(String),
    #[error("image {0:?}'s patch base is malformed (a sha256 and a size of 1 to {MAX_IMAGE_BASE} bytes)")]
    BadImageBase(String),
    #[error(transparent)]
    Limit(#[from] LimitError),
}

fn plain_name(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= MAX_IMAGE_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b) || extra.contains(&b))
        && !s.starts_with('.')
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Manifest {
    /// Parses and validates manifest bytes exactly as they were signed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serialises")
    }

    /// Validates against the format's [`LIMITS`], as every reader does.
    pub fn validate(&self) -> Result<(), ManifestError> {
        self.validate_within(&LIMITS)
    }

    /// The one validation of a manifest: syntax, names, order, and every number within `limits`
    /// (so that no sum or product of them overflows where a reader uses them).
    pub fn validate_within(&self, limits: &Limits) -> Result<(), ManifestError> {
        if self.format != FORMAT_VERSION {
            return Err(ManifestError::Version { found: self.format });
        }
        self.validate_numbers(limits)?;
        let board_ok = !self.board.is_empty()
            && self.board.len() <= limits.max_board_name
            && self
                .board
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !board_ok {
            return Err(ManifestError::BadBoard(self.board.clone()));
        }
        self.validate_paths()?;
        self.validate_images()?;
        if self.paths.is_empty() && self.images.is_empty() {
            return Err(ManifestError::Empty);
        }
        if self.generation.toplevel.is_empty() {
            if !self.paths.is_empty() {
                return Err(ManifestError::NoToplevel);
            }
            return Ok(());
        }
        StorePath::parse(&self.generation.toplevel).map_err(|source| ManifestError::BadPath {
            path: self.generation.toplevel.clone(),
            source,
        })?;
        if self.index_of(&self.generation.toplevel).is_none() {
            return Err(ManifestError::ToplevelMissing {
                toplevel: self.generation.toplevel.clone(),
            });
        }
        Ok(())
    }

    fn validate_numbers(&self, limits: &Limits) -> Result<(), LimitError> {
        Limits::check(
            "number of store paths",
            count(self.paths.len()),
            count(limits.max_paths),
        )?;
        Limits::check(
            "number of images",
            count(self.images.len()),
            count(limits.max_images),
        )?;
        Limits::check(
            "build time",
            self.generation.build_time,
            limits.max_build_time,
        )?;
        Limits::check("security epoch", self.epoch, limits.max_epoch)?;
        let sizes = self.paths.iter().map(|p| p.nar_size);
        let sizes = sizes.chain(self.images.iter().map(|i| i.size));
        Limits::sum(
            "total size of NARs and images",
            sizes,
            limits.max_total_bytes,
        )?;
        Limits::sum(
            "total number of store path entries",
            self.paths.iter().map(|p| p.entries),
            limits.max_total_entries,
        )?;
        Ok(())
    }

    fn validate_paths(&self) -> Result<(), ManifestError> {
        let mut previous: Option<&str> = None;
        for entry in &self.paths {
            StorePath::parse(&entry.path).map_err(|source| ManifestError::BadPath {
                path: entry.path.clone(),
                source,
            })?;
            if previous.is_some_and(|p| p >= entry.path.as_str()) {
                return Err(ManifestError::Unsorted {
                    path: entry.path.clone(),
                });
            }
            previous = Some(&entry.path);
            if !is_sha256_hex(&entry.nar_sha256) {
                return Err(ManifestError::BadHash {
                    path: entry.path.clone(),
                });
            }
        }
        Ok(())
    }

    fn validate_images(&self) -> Result<(), ManifestError> {
        let mut previous: Option<&str> = None;
        for image in &self.images {
            if !plain_name(&image.name, b"") {
                return Err(ManifestError::BadImageName(image.name.clone()));
            }
            if !plain_name(&image.target, b":") {
                return Err(ManifestError::BadImageName(image.target.clone()));
            }
            if previous.is_some_and(|p| p >= image.name.as_str()) {
                return Err(ManifestError::UnsortedImages(image.name.clone()));
            }
            previous = Some(&image.name);
            if !is_sha256_hex(&image.sha256) {
                return Err(ManifestError::BadImageHash(image.name.clone()));
            }
            if image.size == 0 {
                return Err(ManifestError::EmptyImage(image.name.clone()));
            }
            if let Some(b) = &image.base {
                if !is_sha256_hex(&b.sha256) || b.size == 0 || b.size > MAX_IMAGE_BASE {
                    return Err(ManifestError::BadImageBase(image.name.clone()));
                }
            }
        }
        Ok(())
    }

    /// Whether the bundle carries a system closure (and so a toplevel).
    pub fn has_closure(&self) -> bool {
        !self.generation.toplevel.is_empty()
    }

    pub fn image(&self, name: &str) -> Option<&ImageEntry> {
        self.images.iter().find(|i| i.name == name)
    }

    /// Sum of the image sizes; a validated manifest keeps it within [`LIMITS`], an unvalidated
    /// one saturates rather than overflow.
    pub fn total_image_size(&self) -> u64 {
        self.images
            .iter()
            .fold(0u64, |sum, i| sum.saturating_add(i.size))
    }

    pub fn index_of(&self, path: &str) -> Option<usize> {
        self.paths
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
    }

    /// Sum of the NAR sizes; within [`LIMITS`] once validated, saturating otherwise.
    pub fn total_nar_size(&self) -> u64 {
        self.paths
            .iter()
            .fold(0u64, |sum, p| sum.saturating_add(p.nar_size))
    }

    pub fn toplevel(&self) -> StorePath {
        StorePath::parse(&self.generation.toplevel).expect("validated")
    }
}

impl PathEntry {
    pub fn store_path(&self) -> StorePath {
        StorePath::parse(&self.path).expect("validated")
    }

    pub fn sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.nar_sha256, &mut out).expect("validated");
        out
    }
}

impl ImageEntry {
    pub fn sha256_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.sha256, &mut out).expect("validated");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, target: &str) -> ImageEntry {
        ImageEntry {
            name: name.into(),
            target: target.into(),
            sha256: "ab".repeat(32),
            base: None,
            size: 10,
        }
    }

    fn image_manifest(images: Vec<ImageEntry>) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            board: "gl-ar750".into(),
            generation: Generation {
                toplevel: String::new(),
                build_time: 5,
            },
            epoch: 1,
            paths: Vec::new(),
            images,
        }
    }

    #[test]
    fn image_only_manifest_roundtrips_without_toplevel() {
        let m = image_manifest(vec![image("firmware", "mtd:firmware")]);
        let bytes = m.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("toplevel"), "{text}");
        assert_eq!(Manifest::from_bytes(&bytes).unwrap(), m);
        assert!(!m.has_closure());
    }

    #[test]
    fn closure_manifest_has_no_images_field() {
        let json = br#"{"format":1,"board":"b","generation":{"toplevel":"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x","build_time":1},"epoch":0,"paths":[{"path":"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x","nar_sha256":"abababababababababababababababababababababababababababababababab","nar_size":1,"entries":1}]}"#;
        let m = Manifest::from_bytes(json).unwrap();
        assert!(m.images.is_empty());
        assert!(!String::from_utf8(m.to_bytes()).unwrap().contains("images"));
    }

    #[test]
    fn bad_images_are_refused() {
        let cases = [
            (vec![image("b", "mtd:b"), image("a", "mtd:a")], "not sorted"),
            (vec![image("a", "mtd:a"), image("a", "mtd:a")], "not sorted"),
            (vec![image("../x", "mtd:x")], "not a plain name"),
            (vec![image("x", "mtd:x/y")], "not a plain name"),
            (vec![], "neither"),
        ];
        for (images, want) in cases {
            let err = image_manifest(images).validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let mut bad = image("a", "mtd:a");
        bad.sha256 = "AB".repeat(32);
        assert!(image_manifest(vec![bad]).validate().is_err());
        let mut empty = image("a", "mtd:a");
        empty.size = 0;
        assert!(image_manifest(vec![empty]).validate().is_err());
    }

    fn closure_manifest(paths: Vec<(u64, u64)>) -> Manifest {
        let paths: Vec<PathEntry> = paths
            .into_iter()
            .enumerate()
            .map(|(i, (nar_size, entries))| PathEntry {
                path: format!("/nix/store/{}-p{i:05}", "a".repeat(32)),
                nar_sha256: "ab".repeat(32),
                nar_size,
                entries,
            })
            .collect();
        Manifest {
            format: FORMAT_VERSION,
            board: "b".into(),
            generation: Generation {
                toplevel: paths[0].path.clone(),
                build_time: 1,
            },
            epoch: 0,
            paths,
            images: Vec::new(),
        }
    }

    fn limit_of(m: &Manifest) -> LimitError {
        match m.validate() {
            Err(ManifestError::Limit(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_past_the_limits_are_refused() {
        let huge = closure_manifest(vec![(u64::MAX, 1)]);
        assert_eq!(limit_of(&huge).what, "total size of NARs and images");
        let overflowing = closure_manifest(vec![(1 << 39, 1), (u64::MAX - 1, 1)]);
        assert_eq!(limit_of(&overflowing).limit, LIMITS.max_total_bytes);
        let entries = closure_manifest(vec![(100, u64::MAX), (100, u64::MAX)]);
        assert_eq!(
            limit_of(&entries).what,
            "total number of store path entries"
        );
        let mut late = closure_manifest(vec![(100, 1)]);
        late.generation.build_time = u64::MAX;
        assert_eq!(limit_of(&late).what, "build time");
        let mut epoch = closure_manifest(vec![(100, 1)]);
        epoch.epoch = u64::MAX;
        assert_eq!(limit_of(&epoch).what, "security epoch");
        let mut board = closure_manifest(vec![(100, 1)]);
        board.board = "b".repeat(LIMITS.max_board_name + 1);
        assert!(matches!(board.validate(), Err(ManifestError::BadBoard(_))));
        let mut big_image = image_manifest(vec![image("a", "mtd:a")]);
        big_image.images[0].size = LIMITS.max_total_bytes + 1;
        assert_eq!(limit_of(&big_image).value, LIMITS.max_total_bytes + 1);
    }

    #[test]
    fn counts_past_the_limits_are_refused() {
        let many = closure_manifest(vec![(1, 1); LIMITS.max_paths + 1]);
        assert_eq!(
            limit_of(&many).to_string(),
            format!(
                "manifest number of store paths is {}, over the limit of {}",
                LIMITS.max_paths + 1,
                LIMITS.max_paths
            )
        );
        let images = (0..=LIMITS.max_images)
            .map(|i| image(&format!("i{i:03}"), "mtd:x"))
            .collect();
        assert_eq!(limit_of(&image_manifest(images)).what, "number of images");
    }

    #[test]
    fn numbers_at_the_limits_are_taken() {
        let mut m = closure_manifest(vec![
            (LIMITS.max_total_bytes - 1, LIMITS.max_total_entries - 1),
            (1, 1),
        ]);
        m.generation.build_time = LIMITS.max_build_time;
        m.epoch = LIMITS.max_epoch;
        m.validate().unwrap();
        assert_eq!(m.total_nar_size(), LIMITS.max_total_bytes);
    }
}
