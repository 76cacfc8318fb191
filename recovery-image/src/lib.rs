//! liminix-recovery: the maintenance root a router runs from while its flash is rewritten.
//!
//! One description ([`tree::Tree`], made by [`root::Maintenance`]) and two writers: into a
//! directory ([`dir::write`], `/run/maintenance` for the s6 hand-over) and into a gzip-compressed
//! newc cpio ([`cpio::write_gz`], an initramfs for a kexec or a TFTP boot). Two sources feed the
//! description: the running system below a root directory ([`system`]) and files given on the
//! build host (`liminix-pack recovery`). [`tree::Tree::ram_bytes`] says what the root takes in RAM.

pub mod carry;
pub mod cpio;
pub mod dir;
pub mod elf;
mod error;
pub mod libs;
pub mod network;
pub mod root;
pub mod scripts;
pub mod system;
pub mod tree;
pub mod trial;

pub use error::RecoveryError;
pub use root::{Maintenance, Parts};
