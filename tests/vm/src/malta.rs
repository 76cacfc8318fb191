//! A uniprocessor Linux for the Malta guest, built from Debian's kernel source by
//! `build-malta-kernel.sh` (cached). Debian's 4kc-malta kernel is an SMP build, which refuses
//! every kexec_load; this one runs kexec for real. Everything is built in: it has no modules.

use std::path::PathBuf;
use std::process::Command;

use super::kernel::Kernel;
use super::VmError;

/// The release string the build gives itself; there is no module tree to match it.
const VERSION: &str = "6.1-liminix-malta-up";

/// Builds (once; minutes) and locates the uniprocessor Malta vmlinux.
pub fn uniprocessor_kernel() -> Result<Kernel, VmError> {
    let dir = crate::cache_dir("vm-malta-kernel");
    let script = crate::workspace_root().join("tests/vm/build-malta-kernel.sh");
    crate::run_command(Command::new("bash").arg(&script).arg(&dir))?;
    Ok(Kernel {
        image: dir.join("vmlinux"),
        version: VERSION.to_owned(),
        modules_dir: PathBuf::new(),
    })
}
