//! (being written)
pub mod closure;
pub mod device;
pub mod vm;
