//! The NOR router guest: an x86_64 machine that boots like a Liminix router whose root is the
//! squashfs inside the `firmware` partition, and keeps running while the host talks to it.
//!
//! - [`flash`]: the flash disk (block2mtd, 128 KiB erase blocks; `firmware` and `persist`) and
//!   `firmware.bin` (uImage + squashfs, as Liminix's mtdimage);
//! - [`preinit`]: the initramfs that partitions the flash, splits `rootfs` out of `firmware`
//!   after the uImage, mounts it and `switch_root`s;
//! - [`RootTree`]: the firmware's root tree (s6-svscan as PID 1 with Liminix's
//!   `.s6-svscan/finish` hook, dropbear, the agent), for a squashfs writer;
//! - [`Keys`]: the router's host key (baked into each image) and the host's client key;
//! - [`Router`]: the running guest: boot banners on the console, ssh from the host through a
//!   loopback port, reboot, power-off, power cut.

pub mod flash;
mod guest;
mod keys;
pub mod preinit;
mod tree;
pub mod trial;

pub use flash::Layout;
pub use guest::{Router, Ssh};
pub use keys::Keys;
pub use tree::RootTree;

/// The console line stage 1 prints on every boot, followed by the firmware's banner.
pub const BANNER_PREFIX: &str = "LIMINIX-ROUTER-BOOT";

/// The line the preinit prints before powering off when it cannot mount the root.
pub const PREINIT_FAILED: &str = "LIMINIX-PREINIT-FAILED";

/// The guest's static address on QEMU's user network, and its gateway (the host).
pub const GUEST_ADDRESS: &str = "10.0.2.15/24";
pub const GATEWAY: &str = "10.0.2.2";
