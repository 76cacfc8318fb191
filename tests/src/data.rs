//! Deterministic test data shared by the VM tests (images whose blocks differ from one seed to
//! the next, so "changed blocks" are known exactly).

pub use liminix_testdata::pattern;
