//! Kernels and the modules a guest needs: the host's x86_64 kernel, or one that
//! [`crate::debian`] fetched for another architecture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::VmError;

/// A bootable kernel image and its module tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub image: PathBuf,
    pub version: String,
    pub modules_dir: PathBuf,
}

/// Splits "6.1.0-56-amd64" into numbers for ordering ("6.1.0-9" < "6.1.0-56").
fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The newest `/boot/vmlinuz-*-amd64` that has a module tree.
pub fn find_kernel() -> Result<Kernel, VmError> {
    let rd = std::fs::read_dir("/boot").map_err(VmError::io(Path::new("/boot")))?;
    let mut found: Vec<Kernel> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let version = name.strip_prefix("vmlinuz-")?.to_string();
            let modules_dir = Path::new("/lib/modules").join(&version);
            (version.ends_with("-amd64") && modules_dir.join("modules.dep").exists()).then(|| {
                Kernel {
                    image: e.path(),
                    version,
                    modules_dir,
                }
            })
        })
        .collect();
    found.sort_by_key(|k| version_key(&k.version));
    found.pop().ok_or(VmError::MissingTool {
        tool: "/boot/vmlinuz-*-amd64 with its modules".into(),
        package: "linux-image-amd64",
    })
}

/// modules.dep as a map from normalised module name to (path, dependency paths).
pub struct ModuleDeps {
    by_name: BTreeMap<String, (String, Vec<String>)>,
    kernel: String,
}

/// Module names treat '-' and '_' alike.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

impl ModuleDeps {
    pub fn load(kernel: &Kernel) -> Result<Self, VmError> {
        let p = kernel.modules_dir.join("modules.dep");
        let text = std::fs::read_to_string(&p).map_err(VmError::io(&p))?;
        let by_name = text
            .lines()
            .filter_map(|l| {
                let (path, deps) = l.split_once(':')?;
                let deps = deps.split_whitespace().map(str::to_string).collect();
                Some((module_name(path), (path.to_string(), deps)))
            })
            .collect();
        Ok(Self {
            by_name,
            kernel: kernel.version.clone(),
        })
    }

    /// Module paths (relative to the module dir) of `names` and all they need.
    pub fn closure(&self, names: &[String]) -> Result<BTreeSet<String>, VmError> {
        let mut out = BTreeSet::new();
        for name in names {
            let (path, deps) =
                self.by_name
                    .get(&name.replace('-', "_"))
                    .ok_or_else(|| VmError::NoModule {
                        kernel: self.kernel.clone(),
                        module: name.clone(),
                    })?;
            out.insert(path.clone());
            out.extend(deps.iter().cloned());
        }
        Ok(out)
    }

    /// A modules.dep restricted to `paths`, with compressed names rewritten to `.ko`.
    pub fn filtered(&self, paths: &BTreeSet<String>) -> String {
        let mut text = String::new();
        for (path, deps) in self.by_name.values().filter(|(p, _)| paths.contains(p)) {
            let deps: Vec<String> = deps.iter().map(|d| plain_ko(d)).collect();
            text.push_str(&format!("{}: {}\n", plain_ko(path), deps.join(" ")));
        }
        text
    }
}

/// The in-initramfs name of a module file: always uncompressed.
pub fn plain_ko(path: &str) -> String {
    match path.find(".ko") {
        Some(i) => format!("{}.ko", &path[..i]),
        None => path.to_string(),
    }
}

/// Reads a module file, decompressing `.ko.xz` / `.ko.zst` / `.ko.gz` with the
/// host tools so busybox modprobe in the guest needs no decompressor.
pub fn read_module(kernel: &Kernel, rel: &str) -> Result<Vec<u8>, VmError> {
    let path = kernel.modules_dir.join(rel);
    let tool = match path.extension().and_then(|e| e.to_str()) {
        Some("xz") => Some("xz"),
        Some("zst") => Some("zstd"),
        Some("gz") => Some("gzip"),
        _ => None,
    };
    let Some(tool) = tool else {
        return std::fs::read(&path).map_err(VmError::io(&path));
    };
    crate::run_command(Command::new(tool).arg("-dc").arg(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        assert_eq!(
            module_name("kernel/drivers/mtd/nand/raw/nandsim.ko.xz"),
            "nandsim"
        );
        assert_eq!(module_name("kernel/x/virtio-blk.ko"), "virtio_blk");
        assert_eq!(plain_ko("a/b.ko.zst"), "a/b.ko");
        assert!(version_key("6.1.0-9-amd64") < version_key("6.1.0-56-amd64"));
    }

    /// Distributions ship .ko.xz / .ko.zst; the guest gets them decompressed.
    #[test]
    fn compressed_modules_are_unpacked() {
        let dir = std::env::temp_dir().join(format!("vm-kmod-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        let k = Kernel {
            image: PathBuf::new(),
            version: "test".into(),
            modules_dir: dir.clone(),
        };
        let payload = b"\x7fELF pretend module".repeat(100);
        for (tool, ext) in [("xz", "xz"), ("zstd", "zst"), ("gzip", "gz")] {
            let plain = dir.join("kernel/m.ko");
            std::fs::write(&plain, &payload).unwrap();
            let st = Command::new(tool)
                .args(["-q", "-f"])
                .arg(&plain)
                .status()
                .unwrap();
            assert!(st.success(), "{tool}");
            let rel = format!("kernel/m.ko.{ext}");
            assert_eq!(read_module(&k, &rel).unwrap(), payload, "{tool}");
            std::fs::remove_file(dir.join(&rel)).unwrap();
        }
        let deps = ModuleDeps {
            by_name: [(
                "m".to_string(),
                ("kernel/m.ko.xz".to_string(), vec!["kernel/d.ko.xz".into()]),
            )]
            .into_iter()
            .collect(),
            kernel: "test".into(),
        };
        let paths = deps.closure(&["m".into()]).unwrap();
        assert_eq!(deps.filtered(&paths), "kernel/m.ko: kernel/d.ko\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
