//! Test harnesses for the end-to-end tests in `tests/tests/`, all with real parts:
//! [`device`] (a Liminix-like chroot behind a real OpenSSH sshd), [`closure`] (synthetic Liminix
//! system closures), [`lab`] (both wired together through `update.sh`), [`vm`] (QEMU x86_64 with
//! nandsim, mtdram and block2mtd) and [`vm_arm`] (QEMU ARM with real U-Boot and two slots).
pub mod closure;
pub mod data;
pub mod device;
pub mod lab;
pub mod vm;
pub mod vm_arm;
