//! liminix-boards: what the updater knows about each board.
//!
//! A board definition (`boards/devices/<name>.toml`, documented in `docs/boards.md`) says which flash
//! chips and MTD partitions the board has, its UBI geometry and volumes, which images a bundle for
//! it may carry and where each one goes, and which update strategy applies (`raw`, `ubi`,
//! `ab-zyxel`, `ab-uboot`). Every real device's board definition of this repository is compiled into the
//! agent and the packer, so both agree on the targets; the boards of the QEMU test guests
//! (`vm-*`) only with the `test-boards` feature, which tests enable. A device may carry its own file
//! (`/etc/liminix/board.toml`) for a board or a layout the agent does not know yet. Every board is
//! validated when it is loaded ([`validate`]): partitions aligned to erase blocks, inside their
//! chip and not overlapping, targets that exist and are writable, a strategy that fits them.

pub mod boot;
pub mod cpu;
pub mod schema;
pub mod target;
pub mod validate;
mod validate_boot;

use std::path::{Path, PathBuf};

pub use boot::{Boot, ChosenProperty, Install, KernelCompression, KernelFormat, Output, RootFs};
pub use cpu::Cpu;
pub use schema::{
    Board, Bootloader, Chip, ChipKind, ImageSpec, Partition, Slot, Strategy, UbiLayout, Volume,
    VolumeKind,
};
pub use target::{Place, Resolved, TargetRef};

/// Device path of a board definition that takes precedence over the built-in one.
pub const OVERRIDE_PATH: &str = "/etc/liminix/board.toml";

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("board definition {origin}: {source}")]
    Parse {
        origin: String,
        source: toml::de::Error,
    },
    #[error("board {board}: {msg}")]
    Invalid { board: String, msg: String },
    #[error("board definition {origin} describes board {found:?}, expected {expected:?}")]
    Name {
        origin: String,
        found: String,
        expected: String,
    },
    #[error("no board definition for {0:?}: this program knows {known}", known = known_names())]
    Unknown(String),
    #[error("reading board definition {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("target {0:?} is not `mtd:PARTITION` or `ubi:VOLUME`")]
    Target(String),
    #[error("board {board} has no image called {image:?}")]
    UnknownImage { board: String, image: String },
    #[error("no slot called {0:?} (or the image has no per-slot target)")]
    UnknownSlot(String),
    #[error("image {0} is written per slot: name the slot")]
    SlotNeeded(String),
}

/// The board definitions of real devices, by name: compiled into the agent and the packer.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "belkin-rt3200",
        include_str!("../devices/belkin-rt3200.toml"),
    ),
    ("gl-ar750", include_str!("../devices/gl-ar750.toml")),
    ("gl-mt300a", include_str!("../devices/gl-mt300a.toml")),
    ("gl-mt300n-v2", include_str!("../devices/gl-mt300n-v2.toml")),
    ("openwrt-one", include_str!("../devices/openwrt-one.toml")),
    ("qemu", include_str!("../devices/qemu.toml")),
    ("qemu-aarch64", include_str!("../devices/qemu-aarch64.toml")),
    ("qemu-armv7l", include_str!("../devices/qemu-armv7l.toml")),
    (
        "tp-archer-ax23",
        include_str!("../devices/tp-archer-ax23.toml"),
    ),
    ("turris-omnia", include_str!("../devices/turris-omnia.toml")),
    (
        "zyxel-nwa50ax",
        include_str!("../devices/zyxel-nwa50ax.toml"),
    ),
];

/// The boards of the QEMU test guests, by name. Only tests need them, so only the
/// `test-boards` feature (or this crate's own tests) builds them in: the shipped agent does
/// not know them, and VM tests that run it put the board definition on the guest
/// ([`OVERRIDE_PATH`]).
#[cfg(any(test, feature = "test-boards"))]
pub const TEST_BOARDS: &[(&str, &str)] = &[
    ("vm-ab-uboot", include_str!("../devices/vm-ab-uboot.toml")),
    ("vm-ab-zyxel", include_str!("../devices/vm-ab-zyxel.toml")),
    ("vm-nand-ubi", include_str!("../devices/vm-nand-ubi.toml")),
    ("vm-nor", include_str!("../devices/vm-nor.toml")),
];

/// Without the `test-boards` feature there are none.
#[cfg(not(any(test, feature = "test-boards")))]
pub const TEST_BOARDS: &[(&str, &str)] = &[];

/// Every board this build knows: [`EMBEDDED`], then [`TEST_BOARDS`].
fn known() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    EMBEDDED.iter().chain(TEST_BOARDS)
}

fn known_names() -> String {
    known().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Parses and validates a board definition; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Board, BoardError> {
    let board: Board = toml::from_str(text).map_err(|source| BoardError::Parse {
        origin: origin.to_owned(),
        source,
    })?;
    validate::validate(&board)?;
    Ok(board)
}

/// A built-in board.
pub fn builtin(name: &str) -> Result<Board, BoardError> {
    let (_, text) = known()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| BoardError::Unknown(name.to_owned()))?;
    let b = parse(text, &format!("(built in) {name}.toml"))?;
    expect_name(b, name, name)
}

/// Every built-in board.
pub fn all_builtin() -> Result<Vec<Board>, BoardError> {
    known().map(|(n, _)| builtin(n)).collect()
}

/// Reads a board definition from `path`.
pub fn load_file(path: &Path) -> Result<Board, BoardError> {
    let text = std::fs::read_to_string(path).map_err(|source| BoardError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// The board a device runs: `ROOT/etc/liminix/board.toml` when it exists, else the built-in file
/// for `name` (the contents of `/etc/liminix/board`). Either way it must describe `name`.
pub fn for_device(root: &Path, name: &str) -> Result<Board, BoardError> {
    let over = root.join(OVERRIDE_PATH.trim_start_matches('/'));
    if over.exists() {
        let b = load_file(&over)?;
        return expect_name(b, name, &over.display().to_string());
    }
    builtin(name)
}

fn expect_name(b: Board, name: &str, origin: &str) -> Result<Board, BoardError> {
    if b.name != name {
        return Err(BoardError::Name {
            origin: origin.to_owned(),
            found: b.name,
            expected: name.to_owned(),
        });
    }
    Ok(b)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_boot;
