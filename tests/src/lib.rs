//! (being written)
pub mod closure;
pub mod device;
pub mod lab;
pub mod vm;
pub mod vm_arm;
