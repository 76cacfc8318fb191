//! Image bundles through the packer's library: manifest from the board definition, payload entries,
//! full verification, and refusal of images the board cannot take.

use std::path::Path;

use liminix_build_tools::images::ImageInput;
use liminix_build_tools::pack::{self, PackError, PackOptions};
use liminix_bundle::SecretKey;

fn opts<'a>(
    images: &'a [ImageInput],
    board: &'a liminix_boards::Board,
    raw: bool,
) -> PackOptions<'a> {
    PackOptions {
        store_root: Path::new("/nonexistent"),
        toplevel: None,
        board: &board.name,
        epoch: 2,
        build_time: 7,
        level: 3,
        images,
        board_def: Some(board),
        raw_images: raw,
    }
}

fn image(dir: &Path, name: &str, len: usize) -> ImageInput {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.join(name);
    std::fs::write(&file, data).unwrap();
    ImageInput {
        name: name.into(),
        file,
        base: None,
    }
}

#[test]
fn image_only_bundle_packs_verifies_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate();
    let board = liminix_boards::builtin("vm-nand-ubi").unwrap();
    let images = [
        image(dir.path(), "rootfs", 300_000),
        image(dir.path(), "kernel", 70_000),
    ];
    for raw in [false, true] {
        let out = dir.path().join(format!("b-{raw}.bundle"));
        let m = pack::write_bundle(&opts(&images, &board, raw), &key, &out, &|_, _| {}).unwrap();
        assert!(!m.has_closure());
        let names: Vec<_> = m
            .images
            .iter()
            .map(|i| (i.name.as_str(), i.target.as_str()))
            .collect();
        assert_eq!(names, [("kernel", "ubi:kernel"), ("rootfs", "ubi:rootfs")]);
        let v = pack::verify(&out, &key.public()).unwrap();
        assert_eq!((v.entries, v.images), (0, 2));
        let (_, entries) = pack::index(&out).unwrap();
        assert_eq!(entries.len(), 2);
        // Flip one payload byte of the last entry: verification names the image.
        let mut bytes = std::fs::read(&out).unwrap();
        let last = &entries[1];
        let at = (last.offset + last.len / 2) as usize;
        bytes[at] ^= 0x40;
        let bad = dir.path().join("bad.bundle");
        std::fs::write(&bad, &bytes).unwrap();
        let Err(err) = pack::verify(&bad, &key.public()) else {
            panic!("a flipped byte verified")
        };
        let err = err.to_string();
        assert!(err.contains("image"), "{err}");
    }
}

#[test]
fn images_the_board_cannot_take_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate();
    let out = dir.path().join("x.bundle");
    let nor = liminix_boards::builtin("vm-nor").unwrap();
    let unknown = [image(dir.path(), "kernel", 10)];
    let e = pack::write_bundle(&opts(&unknown, &nor, false), &key, &out, &|_, _| {}).unwrap_err();
    assert!(matches!(e, PackError::ImageNotOnBoard { .. }), "{e}");
    let big = [image(dir.path(), "firmware", 0x400001)];
    let e = pack::write_bundle(&opts(&big, &nor, false), &key, &out, &|_, _| {}).unwrap_err();
    assert!(
        matches!(e, PackError::ImageTooLarge { max: 0x400000, .. }),
        "{e}"
    );
    let twice = [
        image(dir.path(), "firmware", 10),
        image(dir.path(), "firmware", 10),
    ];
    let e = pack::write_bundle(&opts(&twice, &nor, false), &key, &out, &|_, _| {}).unwrap_err();
    assert!(matches!(e, PackError::DuplicateImage(_)), "{e}");
    let e = pack::write_bundle(&opts(&[], &nor, false), &key, &out, &|_, _| {}).unwrap_err();
    assert!(matches!(e, PackError::Nothing), "{e}");
    // A/B boards record slot-neutral targets.
    let ab = liminix_boards::builtin("vm-ab-uboot").unwrap();
    let k = [image(dir.path(), "kernel", 1000)];
    let m = pack::write_bundle(&opts(&k, &ab, false), &key, &out, &|_, _| {}).unwrap();
    assert_eq!(m.images[0].target, "slot:kernel");
}
