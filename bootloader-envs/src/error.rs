//! Error type shared by the environment engine, its storage backends and the Zyxel bootconfig.

use std::path::PathBuf;

/// Everything that can go wrong while reading, changing or storing a boot environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The serialised variables do not fit into the data area.
    #[error("environment needs {needed} bytes but the data area holds only {available}")]
    TooLarge {
        /// Bytes needed including the terminating empty string.
        needed: usize,
        /// Size of the data area (env size minus header).
        available: usize,
    },
    /// A variable name that U-Boot would refuse.
    #[error("invalid variable name {name:?}: {why}")]
    BadName {
        /// The offending name, lossily decoded.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A value containing a NUL byte cannot be stored.
    #[error("value of {name:?} contains a NUL byte")]
    BadValue {
        /// Name of the variable.
        name: String,
    },
    /// A `name=value` text line without `=`.
    #[error("line {line}: {text:?} has no '='")]
    MissingEquals {
        /// 1-based line number.
        line: usize,
        /// The line, lossily decoded.
        text: String,
    },
    /// No copy of the environment has a valid CRC.
    #[error("no valid environment: CRC mismatch in {copies} cop{}", if *copies == 1 { "y" } else { "ies" })]
    BadCrc {
        /// How many copies were checked (1 or 2).
        copies: usize,
    },
    /// The data area has no terminating NUL within its bounds.
    #[error("environment data is not NUL-terminated within {0} bytes")]
    Unterminated(usize),
    /// Geometry that cannot work (env smaller than its header, two copies of different size…).
    #[error("bad environment geometry: {0}")]
    Geometry(String),
    /// fw_env.config could not be understood.
    #[error("{path}:{line}: {why}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// 1-based line number (0 = whole file).
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// Writing a copy and reading it back gave different bytes.
    #[error("read-back of {what} differs from what was written at byte {offset}")]
    VerifyFailed {
        /// Which copy / device.
        what: String,
        /// First differing offset within the copy.
        offset: usize,
    },
    /// NAND: not enough good blocks within the configured sector count.
    #[error("{what}: no good block left within {sectors} sector(s)")]
    NoGoodBlock {
        /// Device description.
        what: String,
        /// Configured sector count.
        sectors: u64,
    },
    /// A raw flash operation failed (the flash error says which and where).
    #[error("{what}: {source}")]
    Flash {
        /// Device and what was being done.
        what: String,
        /// The failed operation.
        #[source]
        source: liminix_flash::FlashError,
    },
    /// An I/O error with the device it happened on.
    #[error("{what}: {source}")]
    Io {
        /// Device or file and operation.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl EnvError {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        EnvError::Io {
            what: what.into(),
            source,
        }
    }
}

impl EnvError {
    /// Wraps a flash error with a description of what was being done.
    pub fn flash(what: impl Into<String>, source: liminix_flash::FlashError) -> Self {
        EnvError::Flash {
            what: what.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, EnvError>;
