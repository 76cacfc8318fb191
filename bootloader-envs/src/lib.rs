//! Boot-loader state for Liminix: U-Boot environments and the Zyxel NWA50AX bootconfig.
//!
//! * [`env`](mod@env), [`layout`], [`store`]: parse and write U-Boot environments (single or
//!   redundant, either CRC byte order), choosing the current copy by U-Boot's rule and
//!   storing changes so that a power cut leaves the old or the new environment.
//! * [`config`], [`storage`], [`devices`]: fw_env.config and the devices copies live on,
//!   raw flash through liminix-flash's [`Flash`](liminix_flash::Flash).
//! * [`fwtool`]: drop-in `fw_printenv` / `fw_setenv` with libubootenv 0.3.2's behaviour.
//! * [`zyxel`]: the Zyxel dual-image bootconfig, the `zyxel-bootconfig` tool and a model
//!   of the vendor U-Boot's slot decision.
//! * [`mkenv`]: images byte-identical to u-boot-tools' `mkenvimage`.
//!
//! Typical use by the agent: `devices::open_config(Path::new("/etc/fw_env.config"), true)?
//! .update(|env| { env.set(b"boot_slot", b"b")?; env.remove(b"upgrade_available"); Ok(()) })`
//! changes any number of variables with one verified write.
//!
//! How it is checked (see `tests/`): against libubootenv-tool 0.3.2 and mkenvimage on the
//! same files (stdout, stderr, exit status and bytes); against Debian's qemu_arm U-Boot
//! reading what we wrote from pflash, single copy, and a build of Debian's U-Boot source
//! with the redundant layout (torn copies, U-Boot's own `saveenv`); on real NAND and UBI
//! (nandsim in a QEMU x86_64 VM) next to libubootenv; power cuts after every erase/write;
//! fuzz targets in `fuzz/`. Not proven on a real U-Boot: big-endian CRCs (no big-endian
//! U-Boot build is packaged).

pub mod config;
pub mod devices;
pub mod env;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod fwtool;
pub mod layout;
pub mod mkenv;
pub mod storage;
pub mod store;
pub mod zyxel;

pub use config::FwEnvConfig;
pub use env::Env;
pub use error::{EnvError, Result};
pub use fwtool::{fw_printenv_main, fw_setenv_main};
pub use layout::{Endian, FlagScheme, Layout, SelectRule};
pub use store::EnvStore;
pub use zyxel::{vendor_boot_decision, zyxel_bootconfig_main, Bootconfig, ImageStatus};
