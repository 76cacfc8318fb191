//! The mount table as this process sees it (`ROOT/proc/self/mountinfo`, or
//! `ROOT/proc/mounts`), and whether a UBI volume is mounted, so the agent can refuse an
//! in-place update of a mounted volume ([`crate::in_use`] does the same for raw partitions).
//!
//! A mount source names the volume when it is one of the forms UBIFS and
//! ubiblock accept: `ubiX:NAME`, `ubiX!NAME`, `ubi:NAME`/`ubi!NAME` (any
//! device, so matched conservatively), `ubiX_Y`, `/dev/ubiX_Y`,
//! `/dev/ubiblockX_Y`, and `ubiY` / `/dev/ubiY`-less `ubiY` for device 0.

use std::io;
use std::path::Path;

/// A UBI volume to look for.
#[derive(Debug, Clone, Copy)]
pub struct VolumeRef<'a> {
    /// UBI device number (X in ubiX).
    pub ubi_num: u32,
    /// Volume id (Y in ubiX_Y).
    pub vol_id: u32,
    /// Volume name.
    pub name: &'a str,
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the mounted device (mountinfo only; 0:N for anonymous ones).
    pub dev: Option<(u32, u32)>,
    /// What was mounted, as the filesystem names it (`/dev/root` for the kernel's root).
    pub source: String,
    pub mount_point: String,
}

/// The mounts this process sees: `ROOT/proc/self/mountinfo`, or `ROOT/proc/mounts`
/// (without device numbers) where there is none. Inside a chroot the kernel lists only
/// the mounts below the chroot's root.
pub fn mount_table(root: &Path) -> io::Result<Vec<Mount>> {
    let info = root.join("proc/self/mountinfo");
    match std::fs::read_to_string(&info) {
        Ok(text) => Ok(text.lines().filter_map(parse_mountinfo).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let text = std::fs::read_to_string(root.join("proc/mounts"))?;
            Ok(text.lines().filter_map(parse_mounts).collect())
        }
        Err(e) => Err(e),
    }
}

/// The mount point of the first mount of `vol`, if it is mounted.
pub fn volume_mount_point(root: &Path, vol: VolumeRef<'_>) -> io::Result<Option<String>> {
    Ok(mount_table(root)?
        .into_iter()
        .find(|m| source_names(&m.source, vol))
        .map(|m| m.mount_point))
}

fn parse_mountinfo(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut f = left.split(' ');
    let dev = f.nth(2)?.split_once(':');
    let dev = dev.and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    let mount_point = f.nth(1)?;
    let source = right.split(' ').nth(1)?;
    Some(Mount {
        dev,
        source: unescape(source),
        mount_point: unescape(mount_point),
    })
}

fn parse_mounts(line: &str) -> Option<Mount> {
    let mut f = line.split(' ');
    let source = f.next()?;
    let mount_point = f.next()?;
    Some(Mount {
        dev: None,
        source: unescape(source),
        mount_point: unescape(mount_point),
    })
}

/// Undo the kernel's octal escaping of spaces, tabs, newlines and backslashes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether mount source `src` refers to `vol`.
pub fn source_names(src: &str, vol: VolumeRef<'_>) -> bool {
    let src = src
        .strip_prefix("/dev/ubiblock")
        .map(|r| format!("ubi{r}"))
        .unwrap_or_else(|| src.strip_prefix("/dev/").unwrap_or(src).to_string());
    let Some(rest) = src.strip_prefix("ubi") else {
        return false;
    };
    if let Some((dev, name)) = rest.split_once([':', '!']) {
        return name == vol.name && (dev.is_empty() || dev.parse() == Ok(vol.ubi_num));
    }
    match rest.split_once('_') {
        Some((dev, id)) => dev.parse() == Ok(vol.ubi_num) && id.parse() == Ok(vol.vol_id),
        None => vol.ubi_num == 0 && rest.parse() == Ok(vol.vol_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOL: VolumeRef<'static> = VolumeRef {
        ubi_num: 0,
        vol_id: 1,
        name: "rootfs",
    };

    #[test]
    fn source_forms() {
        for yes in [
            "ubi0:rootfs",
            "ubi:rootfs",
            "ubi0!rootfs",
            "ubi0_1",
            "/dev/ubi0_1",
            "/dev/ubiblock0_1",
            "ubi1",
        ] {
            assert!(source_names(yes, VOL), "{yes}");
        }
        for no in [
            "ubi1:rootfs",
            "ubi0:rootfs2",
            "ubi0_10",
            "ubi1_1",
            "/dev/mtdblock1",
            "ubi0",
            "tmpfs",
            "ubi0:",
        ] {
            assert!(!source_names(no, VOL), "{no}");
        }
    }

    #[test]
    fn mountinfo_and_proc_mounts_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let proc_dir = dir.path().join("proc/self");
        std::fs::create_dir_all(&proc_dir).unwrap();
        std::fs::write(
            dir.path().join("proc/mounts"),
            "tmpfs /run tmpfs rw 0 0\n/dev/ubi0_1 /mnt/a\\040b ubifs rw 0 0\n",
        )
        .unwrap();
        assert_eq!(
            volume_mount_point(dir.path(), VOL).unwrap().as_deref(),
            Some("/mnt/a b")
        );
        std::fs::write(
            proc_dir.join("mountinfo"),
            "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
             30 1 0:25 / / rw,relatime shared:1 - ubifs ubi0:rootfs rw,assert=read-only\n",
        )
        .unwrap();
        assert_eq!(
            volume_mount_point(dir.path(), VOL).unwrap().as_deref(),
            Some("/")
        );
        assert_eq!(
            mount_table(dir.path()).unwrap()[1],
            Mount {
                dev: Some((0, 25)),
                source: "ubi0:rootfs".into(),
                mount_point: "/".into()
            }
        );
        let other = VolumeRef {
            name: "data",
            vol_id: 2,
            ..VOL
        };
        assert_eq!(volume_mount_point(dir.path(), other).unwrap(), None);
    }
}
