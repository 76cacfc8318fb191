//! Tests of the A/B strategy on simulated flash: golden bootconfig bytes against the
//! vendor U-Boot model, the boot-script model, full install/trial/confirm/rollback
//! cycles, and power cuts after every erase and program of an install and of every
//! boot-state write. `ops` runs `apply`, `mark_good`, `status` and `rollback` on a
//! device root made of files.

mod flows;
mod ops;
mod power_cut;
mod slot_ubi;
mod ubi_volume;
mod world;
