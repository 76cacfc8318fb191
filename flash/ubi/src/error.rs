//! Error type of the UBI layer; variants carry the device or volume path.

use std::path::PathBuf;

use rustix::io::Errno;

/// Errors from UBI control, device and volume nodes and their sysfs.
#[derive(Debug, thiserror::Error)]
pub enum UbiError {
    /// open(2) of a UBI node failed.
    #[error("open {path}: {source}")]
    Open { path: PathBuf, source: Errno },
    /// A UBI ioctl failed.
    #[error("{op} on {path} ({what}): {source}")]
    Ioctl {
        op: &'static str,
        path: PathBuf,
        what: String,
        source: Errno,
    },
    /// A sysfs attribute could not be read.
    #[error("read {path}: {source}")]
    Sysfs {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A sysfs attribute held something unexpected.
    #[error("{path}: cannot parse {value:?}")]
    SysfsParse { path: PathBuf, value: String },
    /// No UBI device or volume matches the request.
    #[error("no UBI volume or device {0:?}")]
    NotFound(String),
    /// A volume name the kernel would refuse.
    #[error("invalid UBI volume name {name:?}: {why}")]
    InvalidName { name: String, why: &'static str },
    /// More renames than one UBI_IOCRNVOL can carry.
    #[error("{0} renames requested; one atomic rename takes at most 32")]
    TooManyRenames(usize),
    /// Writing volume data failed.
    #[error("write to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A volume update ended with a byte count different from the announced one;
    /// the kernel keeps the volume marked as damaged (upd_marker) in that case.
    #[error("update of {path}: announced {announced} bytes, wrote {written}")]
    UpdateSize {
        path: PathBuf,
        announced: u64,
        written: u64,
    },
}
