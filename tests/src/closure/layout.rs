//! What goes inside each generated store path.

use super::catalog::Kind;
use super::content;
use super::model::{Model, Package, Service};
use super::rng::{fnv1a, Rng};

#[derive(Debug, Clone)]
pub enum Entry {
    Dir(String),
    File {
        rel: String,
        bytes: Vec<u8>,
        exec: bool,
    },
    Symlink {
        rel: String,
        target: String,
    },
}

const APPLETS: &[&str] = &[
    "sh", "ash", "cat", "cp", "mv", "ln", "ls", "rm", "mkdir", "mount", "umount", "ip", "udhcpc",
    "ntpd", "sed", "awk", "grep", "find", "cpio", "sync", "test", "[", "tar", "gzip", "vi",
];

/// `hostapd-2.11` → `hostapd`: the name up to the version.
pub fn pname(name: &str) -> &str {
    let bytes = name.as_bytes();
    (1..bytes.len())
        .find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit())
        .map_or(name, |i| &name[..i - 1])
}

fn file(rel: String, bytes: Vec<u8>, exec: bool) -> Entry {
    Entry::File { rel, bytes, exec }
}

fn link(rel: &str, target: String) -> Entry {
    Entry::Symlink {
        rel: rel.to_string(),
        target,
    }
}

fn dirs(names: &[&str]) -> Vec<Entry> {
    names.iter().map(|d| Entry::Dir(d.to_string())).collect()
}

/// The files of a package, with its source edits applied.
pub fn package(model: &Model, p: &Package) -> Vec<Entry> {
    let refs: Vec<String> = p
        .deps
        .iter()
        .map(|&d| model.packages[d].path.clone())
        .collect();
    let size = p.bytes as usize;
    let pn = pname(&p.name);
    let mut out = match p.kind {
        Kind::Library => library(p.seed, pn, size, &refs),
        Kind::Program => program(p.seed, pn, size, &refs),
        Kind::Multicall => multicall(p.seed, pn, size, &refs),
        Kind::KernelModules => kernel_modules(p.seed, size),
        Kind::Firmware => firmware(p.seed, pn, size),
        Kind::Text => text_package(p.seed, pn, size, &refs),
        Kind::InitBin => init_bin(&refs),
    };
    if let Some(bb) = p
        .deps
        .iter()
        .map(|&d| &model.packages[d])
        .find(|d| d.kind == Kind::Multicall)
    {
        if matches!(p.kind, Kind::Program | Kind::Text) {
            out.push(Entry::Dir("libexec".into()));
            out.push(link("libexec/sh", format!("{}/bin/busybox", bb.path)));
        }
    }
    for e in &mut out {
        apply_edits(e, &p.edits);
    }
    out
}

fn apply_edits(e: &mut Entry, edits: &[u64]) {
    if let Entry::File { rel, bytes, .. } = e {
        for &seed in edits {
            let s = seed ^ fnv1a(rel.as_bytes());
            if std::str::from_utf8(bytes).is_ok() {
                content::edit_text(bytes, s);
            } else {
                content::edit(bytes, s);
            }
        }
    }
}

fn library(seed: u64, pn: &str, size: usize, refs: &[String]) -> Vec<Entry> {
    let stem = pn.trim_start_matches("lib");
    let so = format!("lib{stem}.so.1");
    let mut v = dirs(&["lib"]);
    v.push(file(
        format!("lib/{so}"),
        content::binary(seed, size * 9 / 10, refs),
        true,
    ));
    v.push(link(&format!("lib/lib{stem}.so"), so.clone()));
    if size > 8192 {
        v.extend(dirs(&["share", "share/doc"]));
        v.push(file(
            format!("share/doc/{stem}.txt"),
            content::text(seed + 1, size / 10, &[]),
            false,
        ));
    }
    v
}

fn program(seed: u64, pn: &str, size: usize, refs: &[String]) -> Vec<Entry> {
    let mut v = dirs(&["bin"]);
    let main = if size > 16384 { size * 7 / 10 } else { size };
    v.push(file(
        format!("bin/{pn}"),
        content::binary(seed, main, refs),
        true,
    ));
    if size > 16384 {
        v.push(file(
            format!("bin/{pn}-ctl"),
            content::binary(seed + 1, size / 5, refs),
            true,
        ));
        v.extend(dirs(&["lib", "share", &format!("share/{pn}")]));
        v.push(file(
            format!("lib/lib{pn}.so.0"),
            content::binary(seed + 2, size / 20, refs),
            true,
        ));
        v.push(link(&format!("lib/lib{pn}.so"), format!("lib{pn}.so.0")));
        v.push(file(
            format!("share/{pn}/defaults.conf"),
            content::text(seed + 3, size / 20, refs),
            false,
        ));
    }
    v
}

fn multicall(seed: u64, pn: &str, size: usize, refs: &[String]) -> Vec<Entry> {
    let mut v = dirs(&["bin", "sbin"]);
    v.push(file(
        format!("bin/{pn}"),
        content::binary(seed, size, refs),
        true,
    ));
    for a in APPLETS {
        v.push(link(&format!("bin/{a}"), pn.to_string()));
    }
    v.push(link("sbin/ifconfig", format!("../bin/{pn}")));
    v
}

fn kernel_modules(seed: u64, size: usize) -> Vec<Entry> {
    let base = "lib/modules/6.6.52/kernel";
    let subdirs = [
        "drivers/net/wireless",
        "net/netfilter",
        "drivers/mtd",
        "fs/ubifs",
    ];
    let mut v = dirs(&["lib", "lib/modules", "lib/modules/6.6.52", base]);
    let mut made = Vec::new();
    for sub in subdirs {
        let mut acc = String::from(base);
        for part in sub.split('/') {
            acc = format!("{acc}/{part}");
            if !made.contains(&acc) {
                made.push(acc.clone());
                v.push(Entry::Dir(acc.clone()));
            }
        }
    }
    let mut rng = Rng::new(seed);
    let count = (size / 40_000).clamp(1, 64);
    let mut dep = String::new();
    for i in 0..count {
        let rel = format!(
            "{base}/{}/mod{i:02}_{:x}.ko",
            subdirs[i % subdirs.len()],
            rng.below(0xffff)
        );
        dep.push_str(&format!(
            "{}:\n",
            rel.trim_start_matches("lib/modules/6.6.52/")
        ));
        v.push(file(
            rel,
            content::binary(seed + i as u64, size / count, &[]),
            false,
        ));
    }
    v.push(file(
        "lib/modules/6.6.52/modules.dep".into(),
        dep.into_bytes(),
        false,
    ));
    v
}

fn firmware(seed: u64, pn: &str, size: usize) -> Vec<Entry> {
    let mut v = dirs(&["lib", "lib/firmware", "lib/firmware/mediatek"]);
    let count = (size / 200_000).clamp(1, 8);
    for i in 0..count {
        let rel = format!("lib/firmware/mediatek/{pn}_{i}.bin");
        v.push(file(
            rel,
            content::firmware(seed + i as u64, size / count),
            false,
        ));
    }
    v
}

fn text_package(seed: u64, pn: &str, size: usize, refs: &[String]) -> Vec<Entry> {
    let mut v = dirs(&["bin", "share", "share/lua", &format!("share/lua/{pn}")]);
    let interp = refs
        .iter()
        .find(|r| r.contains("-busybox-"))
        .map_or("/bin/sh".to_string(), |b| format!("{b}/bin/sh"));
    let mut script = format!("#!{interp}\n").into_bytes();
    script.extend(content::text(seed, size / 4 + 1, refs));
    v.push(file(format!("bin/{pn}"), script, true));
    v.push(file(
        format!("share/lua/{pn}/init.lua"),
        content::text(seed + 1, size / 2 + 1, &[]),
        false,
    ));
    v.push(file(
        format!("share/lua/{pn}/util.lua"),
        content::text(seed + 2, size / 4 + 1, &[]),
        false,
    ));
    v
}

fn init_bin(refs: &[String]) -> Vec<Entry> {
    let find = |s: &str| {
        refs.iter()
            .find(|r| r.contains(s))
            .cloned()
            .unwrap_or_default()
    };
    let script = format!(
        "#!{}/bin/execlineb -S0\n{}/bin/s6-linux-init -c /etc/s6-linux-init/current -m 0022 -p /bin -d /dev -- \"$@\"\n",
        find("-execline-"),
        find("-s6-linux-init-"),
    );
    vec![
        Entry::Dir("bin".into()),
        file("bin/init".into(), script.into_bytes(), true),
    ]
}

/// A service directory as s6-rc's source format would have it.
pub fn service(model: &Model, s: &Service) -> Vec<Entry> {
    let pkg = &model.packages[s.package];
    let mut run = format!(
        "#!/bin/sh\n# service {}\nexec {}/bin/{} -f\n",
        s.name,
        pkg.path,
        pname(&pkg.name)
    );
    for (i, e) in s.edits.iter().enumerate() {
        run.push_str(&format!("# configuration revision {} ({e:016x})\n", i + 1));
    }
    vec![
        file("type".into(), b"longrun\n".to_vec(), false),
        file("run".into(), run.into_bytes(), true),
        link("package", pkg.path.clone()),
    ]
}

/// The compiled database: Liminix's `hashes` plus one link per service.
pub fn database(model: &Model) -> Vec<Entry> {
    let mut v = vec![
        file("hashes".into(), model.hashes().into_bytes(), false),
        Entry::Dir("servicedirs".into()),
    ];
    for s in &model.services {
        v.push(link(&format!("servicedirs/{}", s.name), s.path.clone()));
    }
    v
}

/// The toplevel: `bin/activate`, `bin/init`, `bin/install`, `etc/nix-store-paths`.
pub fn toplevel(model: &Model) -> Vec<Entry> {
    let init = model
        .package_named("s6-init-bin")
        .map(|p| format!("{}/bin/init", p.path))
        .unwrap_or_default();
    let mut paths = model.closure_paths_without_toplevel().join("\n");
    paths.push('\n');
    let mut v = dirs(&["bin", "etc"]);
    v.push(file(
        "bin/activate".into(),
        activate_script(model).into_bytes(),
        true,
    ));
    v.push(link("bin/init", init));
    v.push(file(
        "bin/install".into(),
        install_script(&model.toplevel).into_bytes(),
        true,
    ));
    v.push(file(
        "etc/nix-store-paths".into(),
        paths.into_bytes(),
        false,
    ));
    v
}

/// On a device `activate` is a static C program generated from
/// `config.filesystem`; this script does the part the tests observe: it
/// (re)creates `ROOT/etc/s6-rc/compiled` and a marker of the active generation.
fn activate_script(model: &Model) -> String {
    format!(
        r#"#!/bin/sh
# Generated test stand-in for Liminix's activate: unlink, then create each entry.
set -e
root="${{1:-/}}"
root="${{root%/}}"
mkdir -p "$root/etc" "$root/etc/s6-rc"
rm -f "$root/etc/s6-rc/compiled"
ln -s {db} "$root/etc/s6-rc/compiled"
rm -f "$root/etc/generation"
echo {top} > "$root/etc/generation"
"#,
        db = model.db,
        top = model.toplevel,
    )
}

/// Same contract as Liminix's `install [prefix]` (`sh -e`).
fn install_script(toplevel: &str) -> String {
    format!(
        r#"#!/bin/sh -e
dest="$1"
if test -d "$1/persist"; then dest="$1/persist"; fi
cd {toplevel}
cp -fP bin/* etc/* "${{dest:-/}}"
"#
    )
}
