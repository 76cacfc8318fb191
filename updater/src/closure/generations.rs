//! Generations: the installed systems a device can boot, recorded under `/persist/generations`.
//!
//! ```text
//! /persist/generations/N/{activate,init,nix-store-paths,toplevel,info.json}
//! /persist/generations/current  -> N          (one rename switches generations)
//! /persist/generations/previous -> M          (the rollback target)
//! /persist/generations/epoch                  (highest security epoch ever installed)
//! /persist/activate        -> generations/current/activate   (a regular file behind the link)
//! /persist/init            -> generations/current/init
//! /persist/nix-store-paths -> generations/current/nix-store-paths
//! /persist/YYYYmmddTHHMMSS.configuration -> nix/store/<toplevel>
//! ```
//! All links are relative so that preinit, which mounts the persist filesystem at `/target/persist`
//! and runs `/target/persist/activate` before it chroots, finds a regular file behind them.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result, StateError};
use crate::root::{DeviceRoot, STORE};
use crate::staging::{symlink_atomic, sync_dir, write_atomic};

const FIXED_LINKS: [&str; 3] = ["activate", "init", "nix-store-paths"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationInfo {
    pub number: u32,
    /// `None` for a generation adopted from a factory image that recorded no toplevel.
    pub toplevel: Option<String>,
    pub board: Option<String>,
    pub epoch: u64,
    pub build_time: Option<u64>,
    pub installed_at: u64,
    /// Name of the `/persist/*.configuration` link made for it, if any.
    pub link: Option<String>,
    /// "bundle" or "adopted".
    pub origin: String,
}

/// What a new generation's record is made of, read and checked before anything is written.
pub struct Record {
    activate: Vec<u8>,
    init: Init,
    list: Vec<u8>,
}

/// The generation's `init`: a link to a device path, or a regular file's bytes.
enum Init {
    Link(String),
    File(Vec<u8>),
}

/// A generation whose record cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DamagedGeneration {
    pub number: u32,
    pub problem: String,
}

/// The generations of a device, usable and damaged apart.
#[derive(Debug, Default)]
pub struct Scan {
    pub good: Vec<GenerationInfo>,
    pub damaged: Vec<DamagedGeneration>,
}

pub struct Generations {
    root: DeviceRoot,
    dir: PathBuf,
}

/// What a new generation is made from.
pub struct NewGeneration<'a> {
    pub toplevel: &'a str,
    pub board: &'a str,
    pub epoch: u64,
    pub build_time: u64,
    pub now: u64,
}

impl Generations {
    pub fn new(root: &DeviceRoot) -> Self {
        Generations {
            root: root.clone(),
            dir: root.generations(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every recorded generation's number, damaged or not, in order.
    fn numbers(&self) -> Result<Vec<u32>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(AgentError::io("listing", &self.dir)(e)),
        };
        let mut out: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The generations that can be used, in order; damaged ones are left out (see [`Self::scan`]).
    pub fn list(&self) -> Result<Vec<GenerationInfo>> {
        Ok(self.scan()?.good)
    }

    /// Every generation, the usable ones and the damaged ones apart: one damaged record must
    /// not stop `status`, `gc`, a rollback to another generation or an update.
    pub fn scan(&self) -> Result<Scan> {
        let mut scan = Scan::default();
        for n in self.numbers()? {
            match self.check(n) {
                Ok(info) => scan.good.push(info),
                Err(problem) => scan.damaged.push(DamagedGeneration { number: n, problem }),
            }
        }
        Ok(scan)
    }

    /// A generation's record, if it is whole: its info parses, its path list can be read and its
    /// toplevel is in the store. Otherwise what is wrong, in words.
    pub fn check(&self, n: u32) -> std::result::Result<GenerationInfo, String> {
        let words = |e: AgentError| e.message();
        let info = self.info(n).map_err(words)?;
        self.closure_list(n).map_err(words)?;
        if let Some(top) = &info.toplevel {
            let host = self.root.store().join(store_base(top));
            if fs::symlink_metadata(&host).is_err() {
                return Err(format!("its toplevel {top} is missing from the store"));
            }
        }
        Ok(info)
    }

    pub fn info(&self, n: u32) -> Result<GenerationInfo> {
        let path = self.dir.join(n.to_string()).join("info.json");
        let bytes = fs::read(&path).map_err(AgentError::io("reading", &path))?;
        serde_json::from_slice(&bytes)
            .map_err(|source| StateError::GenerationInfo { path, source }.into())
    }

    fn read_pointer(&self, name: &str) -> Option<u32> {
        fs::read_link(self.dir.join(name))
            .ok()?
            .to_str()?
            .parse()
            .ok()
    }

    pub fn current(&self) -> Option<u32> {
        self.read_pointer("current")
    }

    pub fn previous(&self) -> Option<u32> {
        self.read_pointer("previous")
    }

    /// Highest security epoch installed; it never goes down, even when generations are collected.
    pub fn highest_epoch(&self) -> Result<u64> {
        let recorded = fs::read_to_string(self.dir.join("epoch"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let listed = self.list()?.iter().map(|g| g.epoch).max().unwrap_or(0);
        Ok(recorded.max(listed))
    }

    /// Store paths (device form) a generation needs: its list plus its toplevel.
    /// A damaged record whose info cannot be read still names its toplevel through its
    /// `toplevel` link, so that `gc` never deletes what a kept damaged generation boots.
    pub fn closure(&self, n: u32) -> Result<Vec<String>> {
        let mut paths = self.closure_list(n)?;
        let top = match self.info(n) {
            Ok(info) => info.toplevel,
            Err(e) => Some(self.toplevel_link(n).ok_or(e)?),
        };
        paths.extend(top);
        Ok(paths)
    }

    /// Every generation whose closure can be read, damaged or not, with its closure.
    pub fn closures(&self) -> Result<Vec<(u32, Vec<String>)>> {
        Ok(self
            .numbers()?
            .into_iter()
            .filter_map(|n| Some((n, self.closure(n).ok()?)))
            .collect())
    }

    /// The toplevel the record's `toplevel` link names, as a device path.
    fn toplevel_link(&self, n: u32) -> Option<String> {
        let target = fs::read_link(self.dir.join(n.to_string()).join("toplevel")).ok()?;
        let base = target.file_name()?.to_str()?;
        Some(format!("{STORE}/{base}"))
    }

    /// The generation's `nix-store-paths`, one device path a line.
    fn closure_list(&self, n: u32) -> Result<Vec<String>> {
        let path = self.dir.join(n.to_string()).join("nix-store-paths");
        let text = fs::read_to_string(&path).map_err(AgentError::io("reading", &path))?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// After every recorded number, damaged records included: a new record never takes the
    /// name of an old one.
    fn next_number(&self) -> Result<u32> {
        Ok(self.numbers()?.last().map_or(1, |n| n + 1))
    }

    /// Records a factory-installed system (plain files in /persist, as the image builder leaves
    /// them) as a generation, so the first update is an ordinary, atomic switch with a way back.
    pub fn adopt_existing(&self, now: u64, store_paths: &[String]) -> Result<Option<u32>> {
        let persist = self.root.persist();
        let activate = persist.join("activate");
        if self.current().is_some() || fs::symlink_metadata(&activate).is_err() {
            return Ok(None);
        }
        let n = self.next_number()?.max(1) - 1;
        let tmp = self.dir.join(format!(".new-{n}"));
        let _ = liminix_bundle::nar::remove_tree(&tmp);
        fs::create_dir_all(&tmp).map_err(AgentError::io("creating", &tmp))?;
        for name in ["activate", "init"] {
            copy_entry(&persist.join(name), &tmp.join(name))?;
        }
        // Without a recorded closure, everything present now is assumed to belong to it, so that
        // garbage collection can never remove what the factory system needs.
        let listed = fs::read_to_string(persist.join("nix-store-paths"))
            .unwrap_or_else(|_| store_paths.join("\n") + "\n");
        write_atomic(&tmp.join("nix-store-paths"), listed.as_bytes())?;
        let info = GenerationInfo {
            number: n,
            toplevel: newest_configuration_link(&self.root),
            board: None,
            epoch: 0,
            build_time: None,
            installed_at: now,
            link: None,
            origin: "adopted".into(),
        };
        self.finish_record(&tmp, &info)?;
        self.set_pointer("current", n)?;
        self.ensure_fixed_links()?;
        Ok(Some(n))
    }

    /// Writes generation files for an installed closure; does not make it current. On failure
    /// nothing of it is left behind.
    pub fn create(&self, new: &NewGeneration) -> Result<u32> {
        let record = self.prepare(new.toplevel)?;
        self.create_from(new, &record)
    }

    /// Reads and checks everything a generation of `top` is made from, writing nothing: what
    /// would make the install fail is found before the device is touched.
    pub fn prepare(&self, top: &str) -> Result<Record> {
        let activate = self
            .root
            .resolve(&format!("{top}/bin/activate"))
            .map_err(AgentError::io("resolving", top))?;
        self.require_in_store(&activate, "bin/activate")?;
        let activate = fs::read(&activate).map_err(AgentError::io("reading", &activate))?;
        let init = self.read_init(top)?;
        let list = self
            .root
            .resolve(&format!("{top}/etc/nix-store-paths"))
            .map_err(AgentError::io("resolving", top))?;
        self.require_in_store(&list, "etc/nix-store-paths")?;
        let list = fs::read(&list).map_err(AgentError::io("reading", &list))?;
        self.require_listed_paths(&list)?;
        Ok(Record {
            activate,
            init,
            list,
        })
    }

    /// [`Self::create`] from a record [`Self::prepare`] read. The generations directory is
    /// removed again if it was made for a record that then failed.
    pub fn create_from(&self, new: &NewGeneration, record: &Record) -> Result<u32> {
        let made = fs::symlink_metadata(&self.dir).is_err();
        let result = fs::create_dir_all(&self.dir)
            .map_err(AgentError::io("creating", &self.dir))
            .and_then(|()| self.write_record(new, record));
        if result.is_err() && made {
            let _ = fs::remove_dir(&self.dir);
        }
        result
    }

    fn write_record(&self, new: &NewGeneration, record: &Record) -> Result<u32> {
        let n = self.next_number()?;
        let tmp = self.dir.join(format!(".new-{n}"));
        let _ = liminix_bundle::nar::remove_tree(&tmp);
        fs::create_dir(&tmp).map_err(AgentError::io("creating", &tmp))?;
        let link = fill_record(&tmp, record)
            .and_then(|()| self.make_configuration_link(new.toplevel, new.now.max(new.build_time)));
        let link = match link {
            Ok(l) => l,
            Err(e) => {
                let _ = liminix_bundle::nar::remove_tree(&tmp);
                return Err(e);
            }
        };
        let info = GenerationInfo {
            number: n,
            toplevel: Some(new.toplevel.to_owned()),
            board: Some(new.board.to_owned()),
            epoch: new.epoch,
            build_time: Some(new.build_time),
            installed_at: new.now,
            link: Some(link.clone()),
            origin: "bundle".into(),
        };
        if let Err(e) = self.finish_record(&tmp, &info) {
            let _ = liminix_bundle::nar::remove_tree(&tmp);
            let _ = fs::remove_file(self.root.persist().join(&link));
            return Err(e);
        }
        Ok(n)
    }

    /// A generation is only recorded when everything its list names is in the store.
    fn require_listed_paths(&self, list: &[u8]) -> Result<()> {
        for line in String::from_utf8_lossy(list)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let p = liminix_bundle::storepath::StorePath::parse(line).map_err(|source| {
                StateError::BadListEntry {
                    list: "etc/nix-store-paths".into(),
                    entry: line.into(),
                    source,
                }
            })?;
            if fs::symlink_metadata(self.root.store().join(p.base_name())).is_err() {
                return Err(StateError::Unlisted(line.into()).into());
            }
        }
        Ok(())
    }

    /// The device path of a resolved host path, in the store's own name when it is in the store.
    fn device_form(&self, host: &Path) -> Option<String> {
        match host.strip_prefix(self.root.store()) {
            Ok(rel) => Some(format!("{STORE}/{}", rel.to_str()?)),
            Err(_) => self.root.device_path(host),
        }
    }

    fn require_in_store(&self, host: &Path, what: &'static str) -> Result<()> {
        if host.starts_with(self.root.store()) && host.is_file() {
            Ok(())
        } else {
            Err(StateError::NotInStore {
                what,
                resolved: host.to_owned(),
            }
            .into())
        }
    }

    /// `init` keeps the toplevel's form: a link into the store (resolved to an absolute store path,
    /// valid once preinit has chrooted) or a copy of a regular file.
    fn read_init(&self, top: &str) -> Result<Init> {
        let src = self.root.store().join(store_base(top)).join("bin/init");
        let meta = fs::symlink_metadata(&src).map_err(AgentError::io("reading", &src))?;
        if meta.file_type().is_symlink() {
            let host = self
                .root
                .resolve(&format!("{top}/bin/init"))
                .map_err(AgentError::io("resolving", &src))?;
            Ok(Init::Link(self.device_form(&host).unwrap_or_default()))
        } else {
            let bytes = fs::read(&src).map_err(AgentError::io("reading", &src))?;
            Ok(Init::File(bytes))
        }
    }

    fn make_configuration_link(&self, top: &str, when: u64) -> Result<String> {
        let persist = self.root.persist();
        // Relative to the persist filesystem, which is the root in a recovery install.
        let target = format!("{}/{}", STORE.trim_start_matches('/'), store_base(top));
        for bump in 0..3600 {
            let name = format!("{}.configuration", timestamp(when + bump));
            let path = persist.join(&name);
            match fs::read_link(&path) {
                Ok(existing) if existing.to_str() == Some(target.as_str()) => return Ok(name),
                Ok(_) => continue,
                Err(_) if fs::symlink_metadata(&path).is_ok() => continue,
                Err(_) => {
                    symlink_atomic(&target, &path)?;
                    return Ok(name);
                }
            }
        }
        Err(StateError::NoLinkName(persist).into())
    }

    fn finish_record(&self, tmp: &Path, info: &GenerationInfo) -> Result<()> {
        let json = serde_json::to_vec_pretty(info).expect("info serialises");
        write_atomic(&tmp.join("info.json"), &json)?;
        let top = info.toplevel.as_deref().unwrap_or_default();
        if !top.is_empty() {
            let rel = format!("../..{STORE}/{}", store_base(top));
            std::os::unix::fs::symlink(rel, tmp.join("toplevel"))
                .map_err(AgentError::io("linking", tmp))?;
        }
        sync_dir(tmp)?;
        let fin = self.dir.join(info.number.to_string());
        fs::rename(tmp, &fin).map_err(AgentError::io("renaming", &fin))?;
        let epoch = self.highest_epoch()?.max(info.epoch);
        write_atomic(&self.dir.join("epoch"), format!("{epoch}\n").as_bytes())?;
        sync_dir(&self.dir)
    }

    fn set_pointer(&self, name: &str, n: u32) -> Result<()> {
        symlink_atomic(&n.to_string(), &self.dir.join(name))
    }

    /// Makes `n` the generation the next boot runs; the current one becomes the rollback target.
    pub fn switch_to(&self, n: u32) -> Result<()> {
        self.info(n)?;
        if let Some(cur) = self.current().filter(|c| *c != n) {
            self.set_pointer("previous", cur)?;
        }
        self.set_pointer("current", n)?;
        self.ensure_fixed_links()
    }

    /// `/persist/{activate,init,nix-store-paths}` as relative links through `current`.
    pub fn ensure_fixed_links(&self) -> Result<()> {
        let persist = self.root.persist();
        for name in FIXED_LINKS {
            let target = format!("generations/current/{name}");
            let path = persist.join(name);
            if fs::read_link(&path)
                .ok()
                .and_then(|t| t.to_str().map(str::to_owned))
                != Some(target.clone())
            {
                symlink_atomic(&target, &path)?;
            }
        }
        Ok(())
    }

    /// Removes a generation's record and its configuration link (not its store paths). A
    /// damaged record whose info cannot be read is removed all the same, its link left.
    pub fn remove(&self, n: u32) -> Result<()> {
        if let Some(link) = self.info(n).ok().and_then(|i| i.link) {
            let _ = fs::remove_file(self.root.persist().join(link));
        }
        let from = self.dir.join(n.to_string());
        let parked = self.dir.join(format!(".old-{n}"));
        fs::rename(&from, &parked).map_err(AgentError::io("removing", &from))?;
        liminix_bundle::nar::remove_tree(&parked).map_err(AgentError::io("removing", &parked))?;
        sync_dir(&self.dir)
    }

    /// Cleans records a crash left half-made or half-removed.
    pub fn tidy(&self) -> Result<()> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".new-") || name.starts_with(".old-") {
                liminix_bundle::nar::remove_tree(&e.path())
                    .map_err(AgentError::io("removing", e.path()))?;
            }
        }
        Ok(())
    }
}

/// `activate` (a regular file), `init` and `nix-store-paths` as [`Generations::prepare`] read them.
fn fill_record(tmp: &Path, record: &Record) -> Result<()> {
    let activate = tmp.join("activate");
    write_atomic(&activate, &record.activate)?;
    set_mode(&activate, 0o555)?;
    let init = tmp.join("init");
    match &record.init {
        Init::Link(device) => {
            std::os::unix::fs::symlink(device, &init).map_err(AgentError::io("linking", &init))?
        }
        Init::File(bytes) => {
            write_atomic(&init, bytes)?;
            set_mode(&init, 0o555)?
        }
    }
    write_atomic(&tmp.join("nix-store-paths"), &record.list)
}

fn newest_configuration_link(root: &DeviceRoot) -> Option<String> {
    let mut links: Vec<(String, String)> = fs::read_dir(root.persist())
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let target = fs::read_link(e.path()).ok()?.to_str()?.to_owned();
            name.ends_with(".configuration").then_some((name, target))
        })
        .collect();
    links.sort();
    let (_, target) = links.pop()?;
    let base = target.rsplit('/').next()?;
    Some(format!("{STORE}/{base}"))
}

/// `top` without the store directory (a store path's base name and anything below it).
fn store_base(top: &str) -> &str {
    top.strip_prefix(STORE)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(top)
}

fn copy_entry(src: &Path, dest: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).map_err(AgentError::io("reading", src))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(src).map_err(AgentError::io("reading", src))?;
        std::os::unix::fs::symlink(target, dest).map_err(AgentError::io("linking", dest))
    } else {
        let bytes = fs::read(src).map_err(AgentError::io("reading", src))?;
        write_atomic(dest, &bytes)?;
        set_mode(dest, 0o555)
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(AgentError::io("chmod", path))
}

/// `YYYYmmddTHHMMSS` in UTC, the form Liminix's configuration links use.
pub fn timestamp(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "19700101T000000");
        assert_eq!(timestamp(1_795_000_000), "20261118T110640");
        assert_eq!(timestamp(951_782_400), "20000229T000000");
    }
}
