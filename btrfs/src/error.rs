use std::io;
use std::path::PathBuf;

/// What went wrong, with the path it happened on.
#[derive(Debug, thiserror::Error)]
pub enum BtrfsError {
    #[error("{path} is not on a btrfs filesystem")]
    NotBtrfs { path: PathBuf },
    #[error("{path} is not a btrfs subvolume (its root directory has inode 256)")]
    NotSubvolume { path: PathBuf },
    #[error("subvolume name {name:?} is not allowed: {why}")]
    BadName { name: String, why: &'static str },
    #[error("{op} {path}: {source}")]
    Ioctl {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BtrfsError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| BtrfsError::Io { op, path, source }
    }

    pub(crate) fn ioctl(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(rustix::io::Errno) -> Self {
        let path = path.into();
        move |e| BtrfsError::Ioctl {
            op,
            path,
            source: e.into(),
        }
    }
}
