//! (being written)
pub mod closure;
pub mod vm;
