//! What a router firmware of this guest carries so that a freshly kexec'd kernel can run it
//! from RAM (`apply --try`, `levitate --kexec`), and the guest's pstore:
//!
//! - the preinit's modules (and `loop`, `ramoops`) under `/lib/modules/RELEASE`, uncompressed,
//!   with a `modules.dep` for them: the agent carries the loaded ones into the new root;
//! - `/etc/liminix/flash-setup`: block2mtd and the BLKPG partitions, as the preinit makes
//!   them (the boards' kernels make their partitions themselves), with `mtdpart` listed in
//!   `flash-setup.needs`;
//! - the board definition `/etc/liminix/board.toml` and a trusted key, so `apply` takes a
//!   bundle packed for [`BOARD`];
//! - [`PSTORE_APPEND`]: a ramoops region reserved on the command line, loaded by the preinit,
//!   so a panic's kernel log survives the reset (RAM is kept: QEMU resets in-process).

use std::path::Path;

use super::flash::{Layout, ERASE};
use super::preinit::MODULES;
use super::tree::RootTree;
use crate::kernel::{self, Kernel, ModuleDeps};
use crate::VmError;

/// The board name the router's images are packed for.
pub const BOARD: &str = "qemu-nor-router";

/// Kernel command line words for ramoops in 1 MiB at 256 MiB (the guest has 384 MiB; QEMU
/// puts the initramfs at the top, kexec picks System RAM, which excludes the region).
pub const PSTORE_APPEND: &str = "memmap=1M$0x10000000 ramoops.mem_address=0x10000000 \
     ramoops.mem_size=0x100000 ramoops.record_size=0x20000";

/// Modules loaded besides the preinit's when pstore is wanted.
pub const PSTORE_MODULES: &[&str] = &["ramoops"];

/// Where `mtdpart` lives in the firmware: a directory no maintenance-root link covers.
const MTDPART: &str = "/libexec/liminix/mtdpart";

const FLASH_SETUP: &str = r#"#!/bin/sh
# This guest's kernel makes no flash partitions by itself (the boards' kernels do): block2mtd
# over the virtio disk, then firmware and persist with BLKPG, as the preinit does.
for i in $(seq 100); do [ -e /dev/vda ] && break; sleep 0.1; done
[ -e /dev/vda ] || { echo "flash-setup: no /dev/vda"; exit 1; }
echo /dev/vda,@ERASE@,flash > /sys/module/block2mtd/parameters/block2mtd || exit 1
for i in $(seq 50); do [ -e /dev/mtd0 ] && break; sleep 0.1; done
@MTDPART@ add /dev/mtd0 firmware 0 @FIRMWARE@ || exit 1
@MTDPART@ add /dev/mtd0 persist @FIRMWARE@ @PERSIST@ || exit 1
"#;

/// The board definition of the guest for `layout`.
pub fn board_toml(layout: &Layout) -> String {
    format!(
        r#"name = "{BOARD}"
description = "QEMU router guest: block2mtd NOR on a virtio disk; firmware = uImage + squashfs root"
strategy = "raw"
cpu = "x86_64"

[[flash]]
name = "flash"
type = "nor"
size = {total:#x}
erase_size = {ERASE:#x}

  [[flash.partition]]
  name = "firmware"
  mtd_name = "firmware"
  offset = 0x0
  size = {firmware:#x}

  [[flash.partition]]
  name = "persist"
  mtd_name = "persist"
  offset = {firmware:#x}
  size = {persist:#x}

[[image]]
name = "firmware"
target = "mtd:firmware"
"#,
        total = layout.flash_bytes(),
        firmware = layout.firmware,
        persist = layout.persist,
    )
}

/// Adds to `tree` what trial boots and kexec'd maintenance roots need (see the module docs);
/// `trusted` is the text of the build key's public key file.
pub fn add_support(
    tree: &RootTree,
    kernel: &Kernel,
    layout: &Layout,
    trusted: &str,
) -> Result<(), VmError> {
    modules(tree, kernel)?;
    crate::require_program("mtdpart", "mtd-utils")?;
    tree.executable(Path::new("/usr/sbin/mtdpart"), MTDPART)?;
    let setup = FLASH_SETUP
        .replace("@ERASE@", &ERASE.to_string())
        .replace("@MTDPART@", MTDPART)
        .replace("@FIRMWARE@", &layout.firmware.to_string())
        .replace("@PERSIST@", &layout.persist.to_string());
    tree.file("/etc/liminix/flash-setup", setup.as_bytes(), 0o755)?;
    tree.file(
        "/etc/liminix/flash-setup.needs",
        format!("{MTDPART}\n").as_bytes(),
        0o644,
    )?;
    tree.file(
        "/etc/liminix/board.toml",
        board_toml(layout).as_bytes(),
        0o644,
    )?;
    tree.file(
        "/etc/liminix/trusted-keys/build.pub",
        trusted.as_bytes(),
        0o644,
    )
}

/// The preinit's modules, `loop` and `ramoops`, with what they need.
fn modules(tree: &RootTree, kernel: &Kernel) -> Result<(), VmError> {
    let names: Vec<String> = MODULES
        .iter()
        .chain(PSTORE_MODULES)
        .chain(&["loop"])
        .map(|m| m.to_string())
        .collect();
    let deps = ModuleDeps::load(kernel)?;
    let paths = deps.closure(&names)?;
    let base = format!("/lib/modules/{}", kernel.version);
    for rel in &paths {
        let data = kernel::read_module(kernel, rel)?;
        tree.file(&format!("{base}/{}", kernel::plain_ko(rel)), &data, 0o644)?;
    }
    tree.file(
        &format!("{base}/modules.dep"),
        deps.filtered(&paths).as_bytes(),
        0o644,
    )
}
