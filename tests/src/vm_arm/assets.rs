//! Everything a boot of the ARM test bed needs, built on the host: Debian's armhf
//! kernel and busybox (fetched by tests/vm-arm/fetch.sh), the static ARMv7 agent,
//! initramfs images, FAT slot images, the disk, and U-Boot's two pflash banks.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ArmError;

pub(super) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cache for downloads and ARM builds: `$CARGO_TARGET_DIR/vm-arm` (or target/vm-arm).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("vm-arm")
}

/// Runs a command, failing with its stderr.
pub(super) fn run(cmd: &mut Command) -> Result<Vec<u8>, ArmError> {
    let out = cmd
        .output()
        .map_err(|e| ArmError(format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(ArmError(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out.stdout)
}

/// Debian's armhf kernel, its modules and busybox, unpacked.
pub struct Debian {
    pub zimage: PathBuf,
    pub modules: PathBuf,
    pub busybox: PathBuf,
}

/// Fetches (once) and locates the armhf kernel and busybox.
pub fn debian() -> Result<Debian, ArmError> {
    let dir = cache_dir().join("debian");
    let script = workspace_root().join("tests/vm-arm/fetch.sh");
    run(Command::new("sh").arg(&script).arg(&dir))?;
    let root = dir.join("root");
    let find = |sub: &str, prefix: &str| -> Result<PathBuf, ArmError> {
        let d = root.join(sub);
        let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
            .map_err(|e| ArmError(format!("{}: {e}", d.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect();
        v.sort();
        v.pop()
            .ok_or_else(|| ArmError(format!("no {prefix}* in {}", d.display())))
    };
    Ok(Debian {
        zimage: find("boot", "vmlinuz-")?,
        modules: find("lib/modules", "6.")?,
        busybox: root.join("bin/busybox"),
    })
}

/// Static ARMv7 builds of the agent and the `ab_apply` example.
pub struct Agent {
    pub agent: PathBuf,
    pub ab_apply: PathBuf,
}

const ARM: &str = "armv7-unknown-linux-gnueabihf";

/// `cargo build --release --target armv7-unknown-linux-gnueabihf -p liminix-agent`
/// (static: .cargo/config.toml sets crt-static), in a target dir of its own so an outer
/// `cargo test` never holds its lock.
pub fn agent() -> Result<Agent, ArmError> {
    let dir = cache_dir().join("build");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "--quiet", "--target", ARM])
        .args(["-p", "liminix-agent", "--bin", "liminix-agent"])
        .args(["--example", "ab_apply", "--target-dir"])
        .arg(&dir))?;
    let rel = dir.join(ARM).join("release");
    Ok(Agent {
        agent: rel.join("liminix-agent"),
        ab_apply: rel.join("examples/ab_apply"),
    })
}

/// Modules the guest loads, in order (virtio and virtio_ring are built in).
pub const MODULES: &[&str] = &[
    "kernel/drivers/virtio/virtio_mmio.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/fs/fat/fat.ko",
    "kernel/fs/fat/vfat.ko",
    "kernel/fs/nls/nls_cp437.ko",
    "kernel/fs/nls/nls_ascii.ko",
];

/// A newc cpio archive of `dir` made by the host's cpio (owner root).
pub fn cpio_of(dir: &Path) -> Result<Vec<u8>, ArmError> {
    run(Command::new("sh").current_dir(dir).args([
        "-c",
        "find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet",
    ]))
}

/// A FAT filesystem image of `kib` KiB holding `files` (name, host path).
pub fn fat_image(out: &Path, kib: u64, files: &[(&str, &Path)]) -> Result<(), ArmError> {
    let _ = std::fs::remove_file(out);
    run(Command::new("mkfs.vfat")
        .args(["-C", "-n", "LIMINIX"])
        .arg(out)
        .arg(kib.to_string()))?;
    for (name, src) in files {
        run(Command::new("mcopy")
            .arg("-i")
            .arg(out)
            .arg(src)
            .arg(format!("::{name}")))?;
    }
    Ok(())
}

/// The U-Boot binary padded to a 64 MiB pflash bank.
pub fn uboot_bank(out: &Path) -> Result<(), ArmError> {
    let src = Path::new("/usr/lib/u-boot/qemu_arm/u-boot.bin");
    let mut b = std::fs::read(src).map_err(|e| ArmError(format!("{}: {e}", src.display())))?;
    b.resize(64 << 20, 0);
    std::fs::write(out, b).map_err(|e| ArmError(format!("{}: {e}", out.display())))
}

/// The second pflash bank: a mkenvimage environment (0x40000 bytes at offset 0).
pub fn env_bank(out: &Path, text: &str) -> Result<(), ArmError> {
    let txt = out.with_extension("txt");
    std::fs::write(&txt, text).map_err(|e| ArmError(e.to_string()))?;
    let img = out.with_extension("env");
    run(Command::new("mkenvimage")
        .args(["-s", "0x40000", "-o"])
        .arg(&img)
        .arg(&txt))?;
    let mut b = std::fs::read(&img).map_err(|e| ArmError(e.to_string()))?;
    b.resize(64 << 20, 0xFF);
    std::fs::write(out, b).map_err(|e| ArmError(e.to_string()))
}

/// `mkimage -T script`: the boot script as U-Boot sources it.
pub fn script_image(src: &Path, out: &Path) -> Result<(), ArmError> {
    run(Command::new("mkimage")
        .args([
            "-A",
            "arm",
            "-T",
            "script",
            "-C",
            "none",
            "-n",
            "liminix-ab",
            "-d",
        ])
        .arg(src)
        .arg(out))
    .map(|_| ())
}
