//! The writable-root strategy: a bundle's Nix closure is received into the device's store,
//! recorded as a generation on the persist filesystem, activated (by reboot or live through
//! s6-rc), rolled back and garbage-collected. See docs/closure-updates.md.

pub mod activate;
pub mod bases;
pub mod gc;
pub mod generations;
pub mod patch;
pub mod receive;
pub mod rollback;
pub mod store;

#[cfg(test)]
mod tests;
