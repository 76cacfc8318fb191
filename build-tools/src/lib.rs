//! Build-side tools: `liminix-pack` makes keys and signed bundles, `liminix-update` (behind the
//! generated `update.sh`) sends a bundle to a device over one ssh connection. Bundles carry a
//! system closure, flash images placed by the board definition (`liminix-boards`), or both.

pub mod agents;
pub mod bootstrap;
pub mod client;
pub mod closure;
pub mod image;
pub mod images;
pub mod output;
pub mod pack;

/// The board definitions the packer places images by.
pub use liminix_boards;
