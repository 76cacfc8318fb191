//! One function per output kind that is not flash-specific (those are in `flash.rs`): the
//! kernel file, the disk image, the TFTP boot files and the `/boot` files; and the filesystem
//! images of the root.

use std::fs;
use std::path::{Path, PathBuf};

use liminix_boards::{Output, RootFs};
use sha2::{Digest, Sha256};

use super::{flash, io_err, root_image, BuildError, Ctx};
use crate::image::bootfiles::{self, BootFiles};
use crate::image::{mbr, squashfs, tftpboot, ubifs};

pub(super) fn write(ctx: &mut Ctx, o: &Output, dir: &Path) -> Result<(), BuildError> {
    match o {
        Output::Kernel => write_file(&dir.join(ctx.kernel.file_name), &ctx.kernel.file),
        Output::Mtdimage { partition } => flash::mtdimage(ctx, partition, dir),
        Output::Ubimage { volume } => flash::ubimage(ctx, volume, dir),
        Output::Ubivolume {
            partition,
            volume,
            autoresize,
        } => flash::ubivolume(ctx, partition, volume, *autoresize, dir).map(|_| ()),
        Output::ZyxelNwaFit {
            compat_models,
            slot,
        } => flash::zyxel(ctx, compat_models, slot, dir),
        Output::Mbrimage {
            filesystem,
            disk_size,
            free_space,
        } => mbrimage(ctx, *filesystem, *disk_size, *free_space, dir),
        Output::Tftpboot {
            free_space,
            erase_size,
        } => tftp(ctx, *free_space, *erase_size, dir),
        Output::Extlinux | Output::FitBoot => Ok(()),
    }
}

pub(super) fn write_file(path: &Path, data: &[u8]) -> Result<(), BuildError> {
    fs::write(path, data).map_err(io_err("writing", path))
}

pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, BuildError> {
    fs::read(path).map_err(io_err("reading", path))
}

fn mbrimage(
    ctx: &mut Ctx,
    filesystem: Option<RootFs>,
    disk_size: u64,
    free_space: u64,
    dir: &Path,
) -> Result<(), BuildError> {
    let fs = filesystem.unwrap_or(ctx.boot.root_fs);
    let root = root_image(ctx, fs)?;
    let spec = mbr::MbrSpec {
        disk_size,
        root_free: free_space,
        second: None,
        epoch: Some(u64::from(ctx.req.time)),
    };
    mbr::write(&root, &spec, &dir.join("disk.img"))?;
    Ok(())
}

fn tftp(ctx: &mut Ctx, free_space: u64, erase_size: u64, dir: &Path) -> Result<(), BuildError> {
    let dtb = ctx.dtb.clone().ok_or_else(|| {
        BuildError::Input("tftpboot: the DTB reserves the root's RAM, so give --dtb".into())
    })?;
    let load_address = ctx.boot.tftp_load_address.ok_or_else(|| {
        BuildError::Input("tftpboot: the board has no [boot] tftp_load_address".into())
    })?;
    let root = read_file(&root_image(ctx, ctx.boot.root_fs)?)?;
    let spec = tftpboot::TftpbootSpec {
        kernel: &ctx.kernel.file,
        boot: ctx.kernel.boot,
        dtb: &dtb,
        rootfs: &root,
        load_address,
        free_space,
        erase_size,
        initramfs: None,
        command_line: &ctx.command_line,
        chosen_property: ctx.boot.chosen_property.as_str(),
        tftp: ctx.req.tftp.clone(),
        arch: ctx.kernel.arch,
        time: ctx.req.time,
    };
    tftpboot::write(&spec, dir)?;
    Ok(())
}

/// Adds the `/boot` files of `o` to the staged tree.
pub(super) fn boot_files(ctx: &mut Ctx, o: &Output) -> Result<(), BuildError> {
    let tree = ctx.tree.clone().ok_or_else(|| {
        BuildError::Input(format!(
            "output {}: a ready root image cannot get /boot files; give --root a tree or a system configuration",
            o.name()
        ))
    })?;
    let files = match o {
        Output::Extlinux => BootFiles::Extlinux {
            kernel: &ctx.kernel.file,
            dtb: ctx.dtb.as_deref(),
            append: &ctx.command_line,
            label: "Liminix",
        },
        _ => BootFiles::Fit {
            fit: &ctx.kernel.file,
        },
    };
    bootfiles::add(&tree, &files)?;
    Ok(())
}

/// Makes the filesystem image `fs` of `tree` at `out`.
pub(super) fn make_fs(ctx: &Ctx, fs: RootFs, tree: &Path, out: &Path) -> Result<(), BuildError> {
    let epoch = u64::from(ctx.req.time);
    match fs {
        RootFs::Squashfs => {
            let spec = squashfs::SquashfsSpec {
                compression: squashfs::Compression::Xz,
                epoch,
                block_size: None,
            };
            squashfs::write(tree, &spec, out)?;
            Ok(())
        }
        RootFs::Ubifs => {
            let board = ctx.req.board;
            let u = board.ubi.as_ref().ok_or_else(|| {
                BuildError::Input("a UBIFS root needs the board's [ubi] geometry".into())
            })?;
            let max = u.max_leb_count.ok_or_else(|| {
                BuildError::Input("a UBIFS root needs [ubi] max_leb_count".into())
            })?;
            let spec = ubifs::UbifsSpec {
                min_io: u.min_io,
                leb_size: u.leb_size,
                max_leb_count: max,
                epoch,
            };
            ubifs::write(tree, &spec, out)?;
            Ok(())
        }
        RootFs::Ext4 => super::ext4::write(tree, epoch, out),
        RootFs::Btrfs | RootFs::Jffs2 => Err(BuildError::Input(format!(
            "this packer makes squashfs, UBIFS and ext4 root images, not {}; give --root a ready image or use another output",
            fs.as_str()
        ))),
    }
}

/// One file of the output directory, for the summary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileInfo {
    /// Relative to the output directory.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Every regular file under `dir`, sorted by path.
pub fn file_infos(dir: &Path) -> Result<Vec<FileInfo>, BuildError> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(base: &Path, at: &Path, out: &mut Vec<FileInfo>) -> Result<(), BuildError> {
    for e in fs::read_dir(at).map_err(io_err("listing", at))? {
        let p: PathBuf = e.map_err(io_err("listing", at))?.path();
        let meta = fs::symlink_metadata(&p).map_err(io_err("reading", &p))?;
        if meta.is_dir() {
            walk(base, &p, out)?;
        } else if meta.is_file() {
            let mut f = fs::File::open(&p).map_err(io_err("reading", &p))?;
            let mut h = Sha256::new();
            let size = std::io::copy(&mut f, &mut h).map_err(io_err("reading", &p))?;
            let rel = p.strip_prefix(base).unwrap_or(&p);
            out.push(FileInfo {
                path: rel.to_string_lossy().into_owned(),
                size,
                sha256: hex::encode(h.finalize()),
            });
        }
    }
    Ok(())
}
