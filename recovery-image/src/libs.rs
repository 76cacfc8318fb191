//! The shared libraries a dynamic program needs, found the way the loader finds them, in a
//! system below a root directory (the router's `/`, a `--root`, or a build host's sysroot).
//!
//! Each library is put into the maintenance root at the path where it was found, so the
//! program's own interpreter path and RUNPATH (a Nix store path on Liminix) keep working there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use liminix_bundle::resolve::resolve_below;

use crate::elf;
use crate::RecoveryError;

/// Directories the loaders look in after RUNPATH: the classic ones and Debian's multiarch ones.
const DEFAULT_DIRS: &[&str] = &["/lib", "/usr/lib", "/lib64", "/usr/lib64"];

/// Device path → host file of every library (and the interpreter) `program` needs, with
/// theirs, found below `root`.
pub fn closure(root: &Path, program: &Path) -> Result<BTreeMap<String, PathBuf>, RecoveryError> {
    let top = elf::read(program)?;
    let mut found = BTreeMap::new();
    let mut pending = vec![(program.to_path_buf(), top.clone())];
    if let Some(interp) = &top.interpreter {
        let host = host_file(root, interp).ok_or_else(|| missing(program, interp, root))?;
        found.insert(interp.clone(), host);
    }
    let dirs = default_dirs(root);
    while let Some((from, needs)) = pending.pop() {
        for name in &needs.needed {
            let (device, host) = locate(root, &from, &needs, name, &dirs)?;
            if found.contains_key(&device) {
                continue;
            }
            let lib = elf::read(&host)?;
            if lib.machine != top.machine {
                return Err(RecoveryError::ForeignLibrary {
                    binary: program.to_path_buf(),
                    library: host,
                    binary_machine: top.machine,
                    library_machine: lib.machine,
                });
            }
            found.insert(device, host.clone());
            pending.push((host, lib));
        }
    }
    Ok(found)
}

/// The default directories that exist below `root`, multiarch ones (`/lib/x86_64-linux-gnu`)
/// right after their parent, as Debian's loader configuration orders them.
fn default_dirs(root: &Path) -> Vec<String> {
    let mut dirs = Vec::new();
    for d in DEFAULT_DIRS {
        let Ok(host) = resolve_below(root, d) else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(&host) else {
            continue;
        };
        let mut multiarch: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| n.contains("-linux-"))
            .map(|n| format!("{d}/{n}"))
            .collect();
        multiarch.sort();
        dirs.extend(multiarch);
        dirs.push(d.to_string());
    }
    dirs
}

/// Where the loader would find `name` for the object `from`: its device path and host file.
fn locate(
    root: &Path,
    from: &Path,
    needs: &elf::Dynamic,
    name: &str,
    dirs: &[String],
) -> Result<(String, PathBuf), RecoveryError> {
    if name.contains('/') {
        let host = host_file(root, name).ok_or_else(|| missing(from, name, root))?;
        return Ok((name.to_string(), host));
    }
    let origin = origin(root, from);
    let search = needs
        .search
        .iter()
        .map(|d| d.replace("$ORIGIN", &origin).replace("${ORIGIN}", &origin))
        .chain(dirs.iter().cloned());
    for dir in search {
        let device = format!("{}/{name}", dir.trim_end_matches('/'));
        if let Some(host) = host_file(root, &device) {
            return Ok((device, host));
        }
    }
    Err(missing(from, name, root))
}

/// The device directory holding `from` (for `$ORIGIN`).
fn origin(root: &Path, from: &Path) -> String {
    let dir = from.parent().unwrap_or(Path::new("/"));
    match dir.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => dir.display().to_string(),
    }
}

/// The regular file a device path names below `root`, links followed inside it.
fn host_file(root: &Path, device: &str) -> Option<PathBuf> {
    let host = resolve_below(root, device).ok()?;
    host.is_file().then_some(host)
}

fn missing(binary: &Path, library: &str, root: &Path) -> RecoveryError {
    RecoveryError::MissingLibrary {
        binary: binary.to_path_buf(),
        library: library.to_string(),
        searched: format!(
            "its RUNPATH or the library directories below {}",
            root.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The oracle is the host's own loader, through `ldd`: we must find every library it does.
    #[test]
    fn dropbears_libraries_are_the_ones_ldd_lists() {
        let prog = Path::new("/usr/sbin/dropbear");
        let ours = closure(Path::new("/"), prog).unwrap();
        let out = Command::new("ldd")
            .arg(prog)
            .output()
            .expect("ldd (Debian package libc-bin)");
        let text = String::from_utf8(out.stdout).unwrap();
        let theirs: std::collections::BTreeSet<PathBuf> = text
            .lines()
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
            .map(|p| std::fs::canonicalize(p).unwrap())
            .collect();
        assert!(!theirs.is_empty());
        // The same file may sit at two device paths (the interpreter, by path and by name).
        let ours_real: std::collections::BTreeSet<PathBuf> = ours
            .values()
            .map(|p| std::fs::canonicalize(p).unwrap())
            .collect();
        assert_eq!(ours_real, theirs, "{ours:?}");
    }
}
