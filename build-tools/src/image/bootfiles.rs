//! The `/boot` files for boards whose U-Boot loads the kernel from the root filesystem:
//! `extlinux/extlinux.conf` with the kernel and DTB beside it (distro boot, `sysboot`), or a
//! FIT at `/boot/fit` (boards whose environment runs `ubifsload … boot/fit; bootm`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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

/// Paths under the root tree, as U-Boot reads them from the root filesystem.
pub const CONF_PATH: &str = "boot/extlinux/extlinux.conf";
pub const KERNEL_PATH: &str = "boot/kernel";
pub const DTB_PATH: &str = "boot/dtb";
pub const FIT_PATH: &str = "boot/fit";

#[derive(Debug, thiserror::Error)]
pub enum BootFilesError {
    #[error("boot files: {path} exists and is not a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "boot files: {what} {value:?} holds a line break, which would end its extlinux.conf line"
    )]
    LineBreak { what: &'static str, value: String },
    #[error("boot files: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// The text of `extlinux.conf` for a kernel at `/boot/kernel` and a DTB at `/boot/dtb`.
/// `timeout` counts tenths of a second; without a `prompt 1` line `sysboot` boots the default
/// label at once anyway.
pub fn extlinux_conf(label: &str, append: &str, with_dtb: bool) -> String {
    let fdt = match with_dtb {
        true => format!("  fdt /{DTB_PATH}\n"),
        false => String::new(),
    };
    format!(
        "menu title Liminix\ntimeout 1\ndefault {label}\n\nlabel {label}\n  kernel /{KERNEL_PATH}\n{fdt}  append {append}\n"
    )
}

fn one_line(what: &'static str, value: &str) -> Result<(), BootFilesError> {
    if value.contains(['\n', '\r']) {
        return Err(BootFilesError::LineBreak {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// Writes the files under `root/boot/`, a staged copy of the root tree the filesystem image
/// is then made from. Refuses a `boot` that exists and is not a directory.
pub fn add(root: &Path, files: &BootFiles) -> Result<(), BootFilesError> {
    let boot = root.join("boot");
    match fs::symlink_metadata(&boot) {
        Ok(m) if !m.is_dir() => return Err(BootFilesError::NotADirectory { path: boot }),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(BootFilesError::Io {
                what: "reading",
                path: boot,
                source,
            })
        }
    }
    match files {
        BootFiles::Extlinux {
            kernel,
            dtb,
            append,
            label,
        } => {
            one_line("label", label)?;
            one_line("append line", append)?;
            let conf = extlinux_conf(label, append, dtb.is_some());
            put(root, CONF_PATH, conf.as_bytes())?;
            put(root, KERNEL_PATH, kernel)?;
            if let Some(d) = dtb {
                put(root, DTB_PATH, d)?;
            }
            Ok(())
        }
        BootFiles::Fit { fit } => put(root, FIT_PATH, fit),
    }
}

/// Writes `root/rel`, making its directories; an existing file there is replaced.
fn put(root: &Path, rel: &str, data: &[u8]) -> Result<(), BootFilesError> {
    let path = root.join(rel);
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| BootFilesError::Io { what, path, source }
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    fs::write(&path, data).map_err(io("writing", &path))
}
