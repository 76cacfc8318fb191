//! (being written)
pub mod vm;
