//! `liminix-pack recovery --stick DISK`: the maintenance root on a USB disk U-Boot boots
//! (docs/recovery-stick.md), with what an install from it needs: the keys the bundle must be
//! signed with, the board name and where the U-Boot environment is.

use std::io::Write;
use std::path::PathBuf;

use liminix_build_tools::image::stick::{self, Stick};
use liminix_build_tools::image::timestamp;
use liminix_build_tools::output::{self, Inputs};
use liminix_build_tools::pack::PackError;
use liminix_recovery::tree::Tree;

#[derive(clap::Args)]
pub struct StickArgs {
    /// Write a recovery stick disk image (MBR, one bootable ext4 partition with extlinux)
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub stick: Option<PathBuf>,
    /// The kernel U-Boot boots from the stick (zImage on the Turris Omnia)
    #[arg(long, value_name = "FILE", requires = "stick")]
    kernel: Option<PathBuf>,
    /// The device tree for the kernel
    #[arg(long, value_name = "FILE", requires = "stick")]
    dtb: Option<PathBuf>,
    /// The kernel command line
    #[arg(
        long,
        value_name = "ARGS",
        default_value = "console=ttyS0,115200",
        requires = "stick"
    )]
    append: String,
    /// A cpio archive appended to the initramfs (kernel modules and /etc/modules, for example)
    #[arg(long = "append-initramfs", value_name = "FILE", requires = "stick")]
    extra: Vec<PathBuf>,
    /// A public key the bundles installed from the stick must be signed with (repeatable)
    #[arg(long = "trusted-key", value_name = "FILE")]
    trusted_keys: Vec<PathBuf>,
    /// The board the stick installs (/etc/liminix/board), e.g. turris-omnia
    #[arg(long, value_name = "NAME")]
    board: Option<String>,
    /// The fw_env.config naming where the U-Boot environment is (`btrfs-install finish` sets
    /// boot_targets through it)
    #[arg(long, value_name = "FILE")]
    fw_env_config: Option<PathBuf>,
    /// Size of the stick image
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, requires = "stick")]
    disk_size: u64,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, PackError> {
    std::fs::read(path).map_err(|source| PackError::Io {
        what: "reading",
        path: path.clone(),
        source,
    })
}

impl StickArgs {
    pub fn inputs(&self, inputs: &mut Inputs) {
        let files = [&self.kernel, &self.dtb, &self.fw_env_config];
        for f in files
            .into_iter()
            .flatten()
            .chain(&self.extra)
            .chain(&self.trusted_keys)
        {
            inputs.file(f);
        }
    }

    /// Trust, board and boot loader location, as the agent looks for them on `/`.
    pub fn add_to(&self, t: &mut Tree) -> super::Result {
        if !self.trusted_keys.is_empty() || self.board.is_some() {
            t.dir("/etc/liminix", 0o755)?;
        }
        if !self.trusted_keys.is_empty() {
            t.dir("/etc/liminix/trusted-keys", 0o755)?;
        }
        for (i, key) in self.trusted_keys.iter().enumerate() {
            t.copy(&format!("/etc/liminix/trusted-keys/{i}.pub"), key, 0o644)?;
        }
        if let Some(board) = &self.board {
            t.bytes(
                "/etc/liminix/board",
                format!("{board}\n").into_bytes(),
                0o644,
            )?;
        }
        if let Some(cfg) = &self.fw_env_config {
            t.copy("/etc/fw_env.config", cfg, 0o644)?;
        }
        Ok(())
    }

    /// Writes the stick, when asked for, with `archive` as its initramfs.
    pub fn write(&self, mut archive: Vec<u8>) -> super::Result {
        let (Some(out), Some(kernel)) = (&self.stick, &self.kernel) else {
            return Ok(());
        };
        // The kernel unpacks concatenated archives one after the other.
        for extra in &self.extra {
            // Each archive starts on a 4-byte boundary, as the kernel's unpacker wants.
            archive.resize(archive.len().div_ceil(4) * 4, 0);
            archive.extend(read(extra)?);
        }
        let kernel = read(kernel)?;
        let dtb = self.dtb.as_ref().map(read).transpose()?;
        let spec = Stick {
            kernel: &kernel,
            dtb: dtb.as_deref(),
            initramfs: &archive,
            append: &self.append,
            disk_size: self.disk_size,
        };
        // Staged beside the output (same filesystem, removed afterwards).
        let name = out
            .file_name()
            .map_or("stick".into(), |n| n.to_string_lossy().into_owned());
        let work = out.with_file_name(format!(".{name}.work"));
        let io = |what, path: &std::path::Path| {
            let path = path.to_owned();
            move |source| PackError::Io { what, path, source }
        };
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(io("creating", &work))?;
        let disk = work.join("disk.img");
        let written = stick::write(&spec, u64::from(timestamp()?), &work, &disk)
            .map_err(|e| -> Box<dyn std::error::Error> { Box::new(e) })
            .and_then(|layout| {
                let data = read(&disk)?;
                output::write_file(out, 0o644, |f, tmp| {
                    f.write_all(&data).map_err(io("writing", tmp))
                })?;
                Ok(layout)
            });
        let _ = std::fs::remove_dir_all(&work);
        let layout = written?;
        eprintln!("{}: recovery stick\n{layout}", out.display());
        Ok(())
    }
}
