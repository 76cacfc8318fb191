//! Build-side tools: `liminix-pack` makes keys and signed bundles, `liminix-update` (behind the
//! generated `update.sh`) sends a bundle to a device over one ssh connection.

pub mod client;
pub mod closure;
pub mod pack;
