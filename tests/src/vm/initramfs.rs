//! Assembles the guest's initramfs: busybox, kernel modules, host tools with
//! their shared libraries, test files, and an /init that runs the test script.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Cpio;
use super::kernel::{self, Kernel, ModuleDeps};
use super::VmError;

/// What goes into one initramfs.
pub struct Contents<'a> {
    pub kernel: &'a Kernel,
    pub modules: &'a [String],
    pub files: &'a [(PathBuf, String)],
    pub host_tools: &'a [String],
    pub script: &'a str,
    pub end_marker: &'a str,
    pub with_disks: bool,
}

fn read(path: &Path) -> Result<Vec<u8>, VmError> {
    std::fs::read(path).map_err(|e| VmError::Setup(format!("{}: {e}", path.display())))
}

fn find_tool(name: &str) -> Result<PathBuf, VmError> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| VmError::Setup(format!("host tool {name} not found")))
}

/// Shared libraries `ldd` reports for `bin` (absolute paths; none if static).
fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>, VmError> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| VmError::Setup(format!("ldd: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect())
}

fn add_modules(cpio: &mut Cpio, c: &Contents) -> Result<(), VmError> {
    let mut names = c.modules.to_vec();
    if c.with_disks {
        names.extend(["virtio_pci", "virtio_blk"].map(String::from));
    }
    if names.is_empty() {
        return Ok(());
    }
    let deps = ModuleDeps::load(c.kernel)?;
    let paths = deps.closure(&names)?;
    let base = format!("lib/modules/{}", c.kernel.version);
    for rel in &paths {
        let data = kernel::read_module(c.kernel, rel)?;
        cpio.file(&format!("{base}/{}", kernel::plain_ko(rel)), &data, 0o644);
    }
    cpio.file(
        &format!("{base}/modules.dep"),
        deps.filtered(&paths).as_bytes(),
        0o644,
    );
    Ok(())
}

fn add_host_tools(cpio: &mut Cpio, tools: &[String]) -> Result<(), VmError> {
    let mut libs = BTreeSet::new();
    for name in tools {
        let path = find_tool(name)?;
        cpio.file(&format!("usr/sbin/{name}"), &read(&path)?, 0o755);
        libs.extend(shared_libs(&path)?);
    }
    for lib in libs {
        // Copy the resolved file under the name the loader asks for.
        let real = std::fs::canonicalize(&lib)
            .map_err(|e| VmError::Setup(format!("{}: {e}", lib.display())))?;
        cpio.file(&lib.to_string_lossy(), &read(&real)?, 0o755);
    }
    Ok(())
}

fn init_script(c: &Contents) -> String {
    let disks = if c.with_disks {
        "modprobe virtio_pci; modprobe virtio_blk\nfor i in $(seq 50); do [ -e /dev/vda ] && break; sleep 0.1; done\n"
    } else {
        ""
    };
    format!(
        "#!/bin/busybox sh\n\
         /bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin\n\
         /bin/busybox --install -s\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mount -t tmpfs tmpfs /tmp\n\
         export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
         {disks}\
         echo; echo LIMINIX-VM-START\n\
         cd /tmp\n\
         sh -e /test.sh </dev/null 2>&1\n\
         rc=$?\n\
         sync\n\
         echo \"{marker} $rc\"\n\
         poweroff -f\n",
        marker = c.end_marker
    )
}

/// The archive bytes.
pub fn build(c: &Contents) -> Result<Vec<u8>, VmError> {
    let mut cpio = Cpio::default();
    cpio.file("bin/busybox", &read(Path::new("/bin/busybox"))?, 0o755);
    cpio.symlink("bin/sh", "busybox");
    cpio.file("init", init_script(c).as_bytes(), 0o755);
    // pipefail: `probe | sed …` must not hide a failing probe from `sh -e`.
    let script = format!("set -o pipefail\n{}", c.script);
    cpio.file("test.sh", script.as_bytes(), 0o755);
    add_modules(&mut cpio, c)?;
    add_host_tools(&mut cpio, c.host_tools)?;
    for (host, guest) in c.files {
        let mode = std::fs::metadata(host).map(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode()
        });
        let mode = mode.map_err(|e| VmError::Setup(format!("{}: {e}", host.display())))?;
        cpio.file(guest, &read(host)?, mode);
    }
    Ok(cpio.finish())
}
