//! Error type of the MTD layer: every variant names the device and, where it
//! applies, the flash offset, so a log line alone locates the problem.

use std::path::PathBuf;

use rustix::io::Errno;

/// Errors from MTD devices and their sysfs description.
#[derive(Debug, thiserror::Error)]
pub enum MtdError {
    /// open(2) of the character device failed.
    #[error("open {path}: {source}")]
    Open { path: PathBuf, source: Errno },
    /// An ioctl failed.
    #[error("{op} on {path} at offset {offset:#x}: {source}")]
    Ioctl {
        op: &'static str,
        path: PathBuf,
        offset: u64,
        source: Errno,
    },
    /// read(2) failed or returned early.
    #[error("read {path} at offset {offset:#x}: {source}")]
    Read {
        path: PathBuf,
        offset: u64,
        source: Errno,
    },
    /// write(2) failed or wrote nothing.
    #[error("write {path} at offset {offset:#x}: {source}")]
    Write {
        path: PathBuf,
        offset: u64,
        source: Errno,
    },
    /// The device reports an uncorrectable ECC error during a read.
    #[error("uncorrectable ECC error reading {path} at offset {offset:#x} ({len} bytes)")]
    EccFailed {
        path: PathBuf,
        offset: u64,
        len: usize,
    },
    /// The caller asked for a range that is misaligned or beyond the end.
    #[error("{op} on {path}: range {offset:#x}+{len:#x} {why}")]
    BadRange {
        op: &'static str,
        path: PathBuf,
        offset: u64,
        len: u64,
        why: &'static str,
    },
    /// The device was opened read-only.
    #[error("{path} was opened read-only")]
    ReadOnly { path: PathBuf },
    /// A sysfs attribute could not be read.
    #[error("read {path}: {source}")]
    Sysfs {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A sysfs attribute held something unexpected.
    #[error("{path}: cannot parse {value:?}")]
    SysfsParse { path: PathBuf, value: String },
    /// No MTD device matches a name or device spec.
    #[error("no MTD device {0:?}")]
    NotFound(String),
}
