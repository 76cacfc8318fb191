//! The root filesystem `--root` names: a Liminix system configuration (its closure laid out as
//! Liminix's `rootdir` output lays it out), a directory, or a ready squashfs/UBIFS image.
//! Trees are copied into a staging directory first, so that `/boot` files can be added without
//! touching the input.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use liminix_boards::RootFs;

use super::BuildError;
use crate::closure::{closure, host_path};

/// `hsqs`: a squashfs superblock's magic (little-endian 0x73717368).
pub const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";
/// A UBIFS node's magic, little-endian 0x06101831.
pub const UBIFS_MAGIC: &[u8; 4] = &[0x31, 0x18, 0x10, 0x06];

/// What `--root` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootSource {
    /// A system configuration store path whose closure lies under `store_root`.
    Toplevel {
        toplevel: String,
        store_root: PathBuf,
    },
    Tree(PathBuf),
    /// A finished filesystem image, used as it is.
    Image {
        path: PathBuf,
        fs: RootFs,
    },
}

impl RootSource {
    /// Tells what `root` is: a store path (`/nix/store/…`) is a toplevel, a directory a tree,
    /// a file an image recognised by its magic.
    pub fn detect(root: &Path, store_root: &Path) -> Result<RootSource, BuildError> {
        let text = root.to_string_lossy();
        if text.starts_with("/nix/store/") {
            return Ok(RootSource::Toplevel {
                toplevel: text.into_owned(),
                store_root: store_root.to_owned(),
            });
        }
        let meta = fs::metadata(root).map_err(super::io_err("reading the root", root))?;
        if meta.is_dir() {
            return Ok(RootSource::Tree(root.to_owned()));
        }
        let mut head = [0u8; 4];
        let f = fs::File::open(root).map_err(super::io_err("reading the root", root))?;
        std::io::Read::read_exact(&mut &f, &mut head)
            .map_err(super::io_err("reading the root", root))?;
        let fs = match &head {
            SQUASHFS_MAGIC => RootFs::Squashfs,
            UBIFS_MAGIC => RootFs::Ubifs,
            _ => {
                return Err(BuildError::Input(format!(
                    "--root {} is neither a directory, a store path, a squashfs nor a UBIFS image (first bytes {})",
                    root.display(),
                    hex::encode(head)
                )))
            }
        };
        Ok(RootSource::Image {
            path: root.to_owned(),
            fs,
        })
    }
}

/// Copies the root tree into `dest` (which must not exist yet).
pub fn stage(src: &RootSource, dest: &Path) -> Result<(), BuildError> {
    match src {
        RootSource::Tree(dir) => copy_tree(dir, dest),
        RootSource::Toplevel {
            toplevel,
            store_root,
        } => stage_toplevel(toplevel, store_root, dest),
        RootSource::Image { .. } => Err(BuildError::Input(
            "a ready filesystem image has no tree to stage".into(),
        )),
    }
}

/// Liminix's `rootdir`: the closure under `nix/store`, empty `secrets` and `boot`, `activate`
/// copied from the toplevel's `bin/activate`, and `init` a link to the toplevel's `bin/init`
/// (Liminix links s6-linux-init's init directly, which that `bin/init` itself links to).
fn stage_toplevel(toplevel: &str, store_root: &Path, dest: &Path) -> Result<(), BuildError> {
    let paths = closure(store_root, toplevel)?;
    let store = dest.join("nix/store");
    mkdirs(&store)?;
    for p in &paths {
        copy_tree(&host_path(store_root, p), &store.join(p.base_name()))?;
    }
    for d in ["secrets", "boot"] {
        mkdirs(&dest.join(d))?;
    }
    // Links in the store point into /nix/store: resolve them under `store_root`.
    let activate = format!("{}/bin/activate", toplevel.trim_end_matches('/'));
    let resolved = liminix_bundle::resolve::resolve_below(store_root, &activate)
        .map_err(super::io_err("resolving", Path::new(&activate)))?;
    fs::copy(&resolved, dest.join("activate")).map_err(super::io_err("copying", &resolved))?;
    let init = format!("{}/bin/init", toplevel.trim_end_matches('/'));
    symlink(&init, dest.join("init")).map_err(super::io_err("linking", &dest.join("init")))
}

fn mkdirs(p: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(p).map_err(super::io_err("creating", p))
}

/// Copies `src` to `dest` keeping symlinks as links and the permission bits. A directory gets
/// its mode once filled, so the store's read-only directories stay read-only in the image
/// (`nar::remove_tree` clears the staged copy later).
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), BuildError> {
    let meta = fs::symlink_metadata(src).map_err(super::io_err("reading", src))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(super::io_err("reading the link", src))?;
        return symlink(&target, dest).map_err(super::io_err("linking", dest));
    }
    if ft.is_file() {
        fs::copy(src, dest).map_err(super::io_err("copying", src))?;
        return Ok(());
    }
    if !ft.is_dir() {
        return Err(BuildError::Input(format!(
            "{} is neither a file, a directory nor a link: device nodes and fifos are not copied into a root image",
            src.display()
        )));
    }
    fs::create_dir(dest).map_err(super::io_err("creating", dest))?;
    let mut names: Vec<_> = fs::read_dir(src)
        .map_err(super::io_err("listing", src))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(super::io_err("listing", src))?;
    names.sort();
    for n in names {
        copy_tree(&src.join(&n), &dest.join(&n))?;
    }
    let mode = meta.permissions().mode();
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))
        .map_err(super::io_err("setting the mode of", dest))
}
