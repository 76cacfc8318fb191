//! The bounds every number of a manifest must keep (docs/bundle-format.md, "Limits").
//!
//! A signature proves who made a bundle, not that its numbers are sane: a key can be stolen, a
//! build script can go wrong. So every reader (the packer's `verify` and `inspect`, the agent's
//! `receive` and `apply`) refuses the same out-of-bound manifest with the same error before it
//! computes with its numbers. The bounds are far above any real router and far below where a
//! sum or a product of them could overflow a `u64`: `receive` adds up `nar_size + entries *
//! block_size` over every path, so `MAX_TOTAL_BYTES + MAX_TOTAL_ENTRIES * 2^32` must fit.

/// Bounds a manifest must keep; [`LIMITS`] is the one set every reader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Store paths in one bundle.
    pub max_paths: usize,
    /// Flash images in one bundle.
    pub max_images: usize,
    /// Sum of every NAR size and image size (so each one, too).
    pub max_total_bytes: u64,
    /// Sum of every path's file, directory and symlink count (so each one, too).
    pub max_total_entries: u64,
    /// Latest build time, seconds since 1970: the end of year 9999, the last a configuration
    /// link's `YYYYmmdd` name can spell.
    pub max_build_time: u64,
    /// Highest security epoch: 2^53, the largest integer every JSON reader reads exactly.
    pub max_epoch: u64,
    /// Longest board name.
    pub max_board_name: usize,
}

/// The limits of bundle format 1.
pub const LIMITS: Limits = Limits {
    max_paths: 1 << 14,
    max_images: 64,
    max_total_bytes: 1 << 40,
    max_total_entries: 1 << 24,
    max_build_time: 253_402_300_799,
    max_epoch: 1 << 53,
    max_board_name: 64,
};

/// One bound a manifest broke: which number, its value and the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "manifest {what} is {}{value}, over the limit of {limit}",
    if *partial { "at least " } else { "" }
)]
pub struct LimitError {
    /// The number, in words (`total size of NARs and images`, `number of store paths`).
    pub what: String,
    /// The value, or for a sum the first partial sum past the limit.
    pub value: u64,
    pub limit: u64,
    /// `value` is a partial sum (reading stops there, so the whole is never computed).
    pub partial: bool,
}

impl Limits {
    /// `value` must not be above `limit`.
    pub(crate) fn check(what: impl Into<String>, value: u64, limit: u64) -> Result<(), LimitError> {
        if value > limit {
            return Err(LimitError {
                what: what.into(),
                value,
                limit,
                partial: false,
            });
        }
        Ok(())
    }

    /// Adds `values` without ever passing `limit`: the first partial sum above it is refused,
    /// so the sum cannot overflow whatever the values are.
    pub(crate) fn sum(
        what: &str,
        values: impl IntoIterator<Item = u64>,
        limit: u64,
    ) -> Result<u64, LimitError> {
        let mut total = 0u64;
        let mut values = values.into_iter().peekable();
        while let Some(v) = values.next() {
            let next = total.saturating_add(v);
            Self::check(what, next, limit).map_err(|e| LimitError {
                partial: values.peek().is_some() || next == u64::MAX,
                ..e
            })?;
            total = next;
        }
        Ok(total)
    }
}

/// Widens a count to `u64` (lossless on every target Rust supports).
pub(crate) fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_sums_never_overflow() {
        let err = Limits::sum("x", [u64::MAX, u64::MAX], 10).unwrap_err();
        assert_eq!((err.value, err.limit), (u64::MAX, 10));
        let err = Limits::sum("x", [6, 5], 10).unwrap_err();
        assert_eq!(err.to_string(), "manifest x is 11, over the limit of 10");
        let err = Limits::sum("x", [6, 5, 1], 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "manifest x is at least 11, over the limit of 10"
        );
        assert_eq!(Limits::sum("x", [6, 4], 10).unwrap(), 10);
    }

    #[test]
    fn worst_case_space_sum_fits_u64() {
        let block = 1u64 << 32;
        let worst = LIMITS
            .max_total_entries
            .checked_mul(block)
            .and_then(|e| e.checked_add(LIMITS.max_total_bytes));
        assert!(worst.is_some());
    }
}
