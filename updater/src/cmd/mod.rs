//! One module per subcommand.

pub mod apply;
pub mod boot_log;
pub mod btrfs_install;
pub mod flashcp;
pub mod gc;
pub mod image_plan;
pub mod kexec;
pub mod levitate;
pub mod mark_good;
pub mod receive;
pub mod recover;
pub mod restore_snapshot;
pub mod rollback;
pub mod status;
pub mod trial_good;
pub mod ubi_update;
pub mod version;
