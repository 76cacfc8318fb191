//! Image bundles packed in process for the VM tests, as `liminix-pack bundle --image NAME=FILE
//! [--delta-base NAME=FILE]` packs them for a built-in board (epoch 0, zstd level 19).

use std::path::Path;

use liminix_build_tools::images::ImageInput;
use liminix_build_tools::liminix_boards;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;

/// Writes to `out` the bundle of `images` for `board`, signed with `key`.
pub fn image_bundle(key: &SecretKey, board: &str, images: &[ImageInput], out: &Path) {
    let def = liminix_boards::builtin(board).unwrap_or_else(|e| panic!("board {board}: {e}"));
    let opts = PackOptions {
        store_root: Path::new("/nonexistent"),
        toplevel: None,
        board,
        epoch: 0,
        build_time: 1,
        level: 19,
        images,
        board_def: Some(&def),
        raw_images: false,
    };
    write_bundle(&opts, key, out, &|_, _| {}).unwrap_or_else(|e| panic!("packing {out:?}: {e}"));
}
