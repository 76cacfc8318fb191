//! The `/boot` files for boards whose U-Boot loads the kernel from the root filesystem:
//! `extlinux/extlinux.conf` with the kernel and DTB beside it (distro boot, `sysboot`), or a
//! FIT at `/boot/fit` (boards whose environment runs `ubifsload … boot/fit; bootm`).

use std::path::Path;

/// What goes into the root tree's `boot/` directory.
#[derive(Clone, Debug)]
pub enum BootFiles<'a> {
    Extlinux {
        /// The kernel as `sysboot` loads it (zImage, Image or a FIT).
        kernel: &'a [u8],
        dtb: Option<&'a [u8]>,
        /// The `append` line: the board's command line with `root=`.
        append: &'a str,
        /// The menu label.
        label: &'a str,
    },
    Fit {
        /// The FIT blob (`image::fit::write`).
        fit: &'a [u8],
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BootFilesError {
    #[error("boot files: {0}")]
    Skeleton(String),
}

/// The text of `extlinux.conf` for a kernel at `/boot/kernel` and a DTB at `/boot/dtb`.
pub fn extlinux_conf(label: &str, append: &str, with_dtb: bool) -> String {
    todo!("issue 12 skeleton: {label} {append} {with_dtb}")
}

/// Writes the files under `root/boot/`, a staged copy of the root tree the filesystem image
/// is then made from. Refuses a `boot` that exists and is not a directory.
pub fn add(root: &Path, files: &BootFiles) -> Result<(), BootFilesError> {
    todo!("issue 12 skeleton: {root:?} {files:?}")
}
