//! Whole-disk and root-filesystem images built from what a Liminix build produces (issue 12):
//! an MBR disk holding the root partition, and a squashfs of a root tree. Both are reproducible:
//! the same inputs and `SOURCE_DATE_EPOCH` give the same bytes.

pub mod mbr;
pub mod squashfs;

/// `SOURCE_DATE_EPOCH` from the environment, when it is set and a whole number of seconds.
/// Images take their timestamps and identifiers from it so that two builds agree.
pub fn source_date_epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}
