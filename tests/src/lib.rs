//! Test harnesses for the end-to-end tests in `tests/tests/`, all with real parts:
//! [`device`] (a Liminix-like chroot behind a real OpenSSH sshd), [`fleet`] (many of them in an
//! Ansible inventory, driven by the `liminix.update` collection), [`closure`] (synthetic Liminix
//! system closures), [`lab`] (both wired together through `update.sh`) and [`ab_layout`] (the
//! agent's A/B layouts for QEMU guests), [`crafted`] (signed bundles written by hand), [`images`] (image bundles packed in process). The QEMU guests themselves come from the `liminix-vm`
//! crate (`tests/vm`). [`tree`] snapshots a directory tree, for tests that a refusal changed nothing.
pub mod ab_layout;
pub mod closure;
pub mod crafted;
pub mod data;
pub mod device;
pub mod fleet;
pub mod images;
pub mod lab;
pub mod nor_bed;
pub mod tree;
