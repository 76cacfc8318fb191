use std::path::PathBuf;

/// Why the maintenance root could not be described or written.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ELF file this reader understands: {reason}")]
    Elf { path: PathBuf, reason: String },
    #[error("{binary} needs {library}, which is not in {searched}")]
    MissingLibrary {
        binary: PathBuf,
        library: String,
        searched: String,
    },
    #[error("{library} is for ELF machine {library_machine}, but {binary} is for {binary_machine}: give the libraries of the device's CPU (--lib-root)")]
    ForeignLibrary {
        binary: PathBuf,
        library: PathBuf,
        binary_machine: u16,
        library_machine: u16,
    },
    #[error("{busybox} lacks the applets {missing}, which the maintenance root's /init runs")]
    MissingApplets { busybox: PathBuf, missing: String },
    #[error("no dropbear found (looked for {searched}): give one with --dropbear")]
    NoDropbear { searched: String },
    #[error("no busybox found at {0}: give one with --busybox")]
    NoBusybox(PathBuf),
    #[error("no authorized ssh keys found (looked in {searched}): nobody could log in to the maintenance root")]
    NoAuthorizedKeys { searched: String },
    #[error("{path:?} is not a path the maintenance root may hold (empty, `.` or `..` parts)")]
    BadPath { path: String },
    #[error("{what} {value:?} is not safe to put into the maintenance root's shell script")]
    Unsafe { what: &'static str, value: String },
    #[error("{value:?} is not {expected}")]
    BadNetwork {
        value: String,
        expected: &'static str,
    },
    #[error(
        "{path} changed while it was copied: {expected} bytes were described, {found} were read"
    )]
    Changed {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path} is {size} bytes, more than a newc cpio entry holds (4 GiB)")]
    TooBig { path: String, size: u64 },
    #[error("the running kernel has modules loaded ({loaded}) but {dir} does not exist: the new root could not load them")]
    NoModules { dir: PathBuf, loaded: String },
    #[error("the loaded module {module} is not in {dep}: the new root would lack it")]
    UnknownModule { module: String, dep: PathBuf },
    #[error("{needs} names {program}, which is not a file on the running system")]
    MissingProgram { program: String, needs: PathBuf },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
}

impl RecoveryError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RecoveryError::Io { what, path, source }
    }
}
