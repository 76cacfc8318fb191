//! Trial boots: a new image booted once from RAM before it becomes the one on flash.
//!
//! [`nor`]: `apply --try` on a NOR router (root inside the partition it updates) kexecs the
//! bundle's kernel with the verified firmware image in its initramfs; `mark-good` in the trial
//! system writes that image to the flash. The marker on the trial kernel's command line
//! ([`MARKER`]) is how the trial system knows it is one.

pub mod nor;

use crate::error::ErrorKind;

/// `liminix.trial=ID` on the command line of a trial kernel; ID is a prefix of the image's
/// sha256 ([`ID_LEN`] hex digits).
pub const MARKER: &str = "liminix.trial=";
pub const ID_LEN: usize = 16;

/// The trial named on a kernel command line.
pub fn marker(cmdline: &str) -> Option<&str> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(MARKER))
}

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error("apply --try is for boards written as raw flash images (strategy raw); {board} uses {strategy}")]
    Strategy { board: String, strategy: String },
    #[error("apply --try needs one image to boot, the firmware that starts with the kernel's uImage; the bundle has {count} images")]
    ImageCount { count: usize },
    #[error("image {image} does not start with a uImage kernel (magic 27051956): nothing to boot in a trial")]
    NoKernel { image: String },
    #[error("image {image} has no squashfs root (magic hsqs) at an erase block boundary after its {kernel_end}-byte kernel")]
    NoRoot { image: String, kernel_end: u64 },
    #[error("this system is itself the trial {0}: `mark-good` it or reset to the old firmware before trying another image")]
    InTrial(String),
    #[error("the system runs trial {marker} but {description} is missing or unreadable: {detail} (did the new root mount its own /dev over the trial's?)")]
    NoDescription {
        marker: String,
        description: std::path::PathBuf,
        detail: String,
    },
    #[error("the trial description {description} is for trial {found}, but the kernel runs trial {marker}")]
    WrongTrial {
        description: std::path::PathBuf,
        found: String,
        marker: String,
    },
    #[error("the staged image {path} no longer matches the bundle's sha256 {expected} (it hashes to {found}): the flash is left as it was")]
    Changed {
        path: std::path::PathBuf,
        expected: String,
        found: String,
    },
    #[error("the health check `{command}` failed ({status}): the flash is left as it was; reset to boot the old firmware")]
    Health { command: String, status: String },
}

impl TrialError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            TrialError::Strategy { .. }
            | TrialError::ImageCount { .. }
            | TrialError::NoKernel { .. }
            | TrialError::NoRoot { .. } => ErrorKind::Usage,
            TrialError::InTrial(_) | TrialError::Health { .. } => ErrorKind::State,
            TrialError::NoDescription { .. } | TrialError::WrongTrial { .. } => ErrorKind::State,
            TrialError::Changed { .. } => ErrorKind::Payload,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_marker_is_one_word_of_the_command_line() {
        assert_eq!(
            super::marker("console=ttyS0 liminix.trial=0123abcd panic=1"),
            Some("0123abcd")
        );
        assert_eq!(super::marker("console=ttyS0 xliminix.trial=1"), None);
    }
}
