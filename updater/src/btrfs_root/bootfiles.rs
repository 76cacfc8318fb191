//! The boot files of the installed generation, where U-Boot's distro boot looks for them:
//! Liminix's `bin/install` copies its extlinux boot files (kernel, DTB, `extlinux/`) into the
//! root's `boot/` as plain files, because the store links inside the subvolume would not
//! resolve from the btrfs top level the boot loader reads, and `boot` on the top level is a
//! link to `@/boot`.

use std::fs;
use std::path::Path;

use super::BtrfsRootError;
use crate::closure::generations::Generations;
use crate::error::{AgentError, Result};
use crate::root::DeviceRoot;
use crate::staging::symlink_atomic;

const CONF: &str = "extlinux/extlinux.conf";

/// Copies the current generation's boot files into `ROOT/boot` (replacing what is there).
pub fn install(root: &DeviceRoot) -> Result<String> {
    let gens = Generations::new(root);
    let n = gens.current().ok_or_else(|| BtrfsRootError::NotReceived {
        staging: root.dir().to_owned(),
    })?;
    let holders: Vec<String> = gens
        .closure(n)?
        .into_iter()
        .filter(|p| root.join(p).join(CONF).is_file())
        .collect();
    let source = match holders.as_slice() {
        [one] => one.clone(),
        [] => return Err(BtrfsRootError::NoBootFiles { generation: n }.into()),
        _ => {
            return Err(BtrfsRootError::SeveralBootFiles {
                generation: n,
                paths: holders.join(", "),
            }
            .into())
        }
    };
    let boot = root.join("/boot");
    let tmp = root.join("/boot.liminix-new");
    remove_tree(&tmp)?;
    copy_tree(&root.join(&source), &tmp)?;
    remove_tree(&boot)?;
    fs::rename(&tmp, &boot).map_err(AgentError::io("renaming", &tmp))?;
    // A commit, not only fsync: the boot loader reads the filesystem as last committed and
    // does not replay btrfs's fsync log.
    crate::staging::sync_fs(root.dir())?;
    Ok(source)
}

/// Makes `top/boot` the link `@/boot`, refusing to replace a directory.
pub fn link(top: &Path) -> Result<()> {
    let link = top.join("boot");
    let want = format!("{}/boot", super::ACTIVE);
    match fs::symlink_metadata(&link) {
        Ok(m) if m.is_dir() => Err(BtrfsRootError::BootInTheWay { path: link }.into()),
        Ok(_) if fs::read_link(&link).is_ok_and(|t| t == Path::new(&want)) => Ok(()),
        _ => symlink_atomic(&want, &link),
    }
}

fn remove_tree(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::io("removing", p)(e)),
    }
}

/// Copies a tree of files, directories and links, following none of the links.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir(to).map_err(AgentError::io("creating", to))?;
    for entry in fs::read_dir(from).map_err(AgentError::io("listing", from))? {
        let entry = entry.map_err(AgentError::io("listing", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(AgentError::io("reading", &src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&src).map_err(AgentError::io("reading link", &src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(AgentError::io("linking", &dst))?;
        } else {
            fs::copy(&src, &dst).map_err(AgentError::io("copying", &src))?;
        }
    }
    Ok(())
}
