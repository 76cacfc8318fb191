//! Trial boots: something new booted once by kexec before the device commits to it; a reset
//! (crash, hang, watchdog) boots what was there before.
//!
//! - [`nor`]: `apply --try` on a NOR router (root inside the partition it updates) kexecs the
//!   bundle's kernel with the verified firmware image in its initramfs; `mark-good` in the
//!   trial system writes that image to the flash.
//! - [`generation`]: `receive --try` on a writable-root device kexecs the running kernel into
//!   the new generation while `/persist` still names the old one; `mark-good` makes it current.
//!
//! Both mark the trial kernel's command line with one word, [`MARKER`]. Its value tells the two
//! apart: a generation number (decimal, at most 10 digits, a `u32`) or an image trial's ID
//! ([`ID_LEN`] hex digits, which never reads as a `u32`). `mark-good` also finds an image
//! trial's description in RAM, which a generation trial never has.

pub mod generation;
pub mod nor;

use crate::error::ErrorKind;

/// `liminix.trial=VALUE` on the command line of a trial kernel: a generation number, or an
/// image trial's ID, a prefix of the image's sha256 ([`ID_LEN`] hex digits).
pub const MARKER: &str = "liminix.trial=";
pub const ID_LEN: usize = 16;

/// The trial named on a kernel command line.
pub fn marker(cmdline: &str) -> Option<&str> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(MARKER))
}

/// The command line `running` without any trial marker, then the marker for `value`.
pub fn with_marker(running: &str, value: &str) -> String {
    let mut words: Vec<&str> = running
        .split_whitespace()
        .filter(|w| !w.starts_with(MARKER))
        .collect();
    let marker = format!("{MARKER}{value}");
    words.push(&marker);
    words.join(" ")
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
    #[error("--try needs kexec, and this kernel has none ({0} is missing): install without --try")]
    NoKexec(std::path::PathBuf),
    #[error("--try needs kexec, and it is disabled ({0} reads 1 until the next boot)")]
    KexecDisabled(std::path::PathBuf),
    #[error(
        "--try boots the running kernel again, and {path} cannot be read (give --kernel FILE)"
    )]
    KernelUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--try: {0}")]
    Kernel(#[source] liminix_kexec::KexecError),
    #[error("generation {booted} is on trial, but {record} names generation {recorded}")]
    Mismatch {
        booted: u32,
        recorded: String,
        record: std::path::PathBuf,
    },
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
            TrialError::NoKexec(_) | TrialError::KexecDisabled(_) => ErrorKind::Device,
            TrialError::KernelUnreadable { .. } | TrialError::Kernel(_) => ErrorKind::Usage,
            TrialError::Mismatch { .. } => ErrorKind::State,
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

    #[test]
    fn the_marker_replaces_an_earlier_one() {
        assert_eq!(
            super::with_marker("console=ttyS0 liminix.trial=3 quiet", "4"),
            "console=ttyS0 quiet liminix.trial=4"
        );
        assert_eq!(super::with_marker("", "1"), "liminix.trial=1");
    }

    #[test]
    fn an_image_trial_id_never_reads_as_a_generation() {
        assert!("1234567890123456".parse::<u32>().is_err());
        assert_eq!(super::ID_LEN, 16);
    }
}
