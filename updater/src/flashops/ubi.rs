//! `ubi-update`: replace a UBI volume's contents as a journalled transaction.
//!
//! With room for a second copy, the image goes into a new volume
//! `<name>.new`, is read back and hashed, and one `UBI_IOCRNVOL` makes it
//! `<name>` while the previous one becomes `<name>.old` (kept for rollback
//! until the next update or a gc). Without room, and only when the caller
//! allows it (`--in-place`), the volume is overwritten with one
//! `UBI_IOCVOLUP`; that is refused while the volume is mounted, because the
//! old contents are gone the moment it starts. Sizes and space are checked
//! before anything is written.

use std::path::PathBuf;

use liminix_flash::mounts::{volume_mount_point, VolumeRef};
use liminix_flash::txn::update_ubi;
use liminix_flash::ubi_update::{plan, UbiPlan};
use liminix_flash::{FileImage, FileJournal, ImageSource, Progress, UbiDev, UbiOptions};
use serde::Serialize;

use super::error::FlashOpError;
use super::journal_dir::JournalLocation;
use super::raw::recover_then_claim;
use super::recovery::RecoveryLine;
use crate::root::DeviceRoot;
use crate::staging::journal::{settle, stage, StageKind};

/// What to write where.
#[derive(Debug, Clone)]
pub struct UbiRequest {
    /// `ubiN:NAME`, `ubi:NAME`, `/dev/ubiN_M` or `ubiN_M`.
    pub volume: String,
    /// Image file.
    pub image: PathBuf,
    /// Allow an in-place update when a swap does not fit.
    pub in_place: bool,
    /// `--journal DIR`.
    pub journal: Option<PathBuf>,
}

/// What a UBI update did.
#[derive(Debug, Clone, Serialize)]
pub struct UbiSummary {
    /// Journal key (`ubiN:NAME`).
    pub target: String,
    /// `swap` or `in-place`.
    pub strategy: &'static str,
    /// Id of the volume now called NAME (`/dev/ubiN_<id>`).
    pub volume_id: u32,
    /// Name under which the previous image is kept.
    pub old_kept_as: Option<String>,
    pub image_len: u64,
    pub sha256: String,
    pub staged: Option<StageKind>,
    pub journal: JournalLocation,
    pub recovered: Vec<RecoveryLine>,
}

/// Resolve a volume spec to (UBI device number, volume name). `ubiN:NAME`
/// need not exist yet (a swap creates it).
pub fn parse_volume(root: &DeviceRoot, spec: &str) -> Result<(u32, String), FlashOpError> {
    let bad = || FlashOpError::VolumeSpec(spec.to_string());
    let rest = spec.strip_prefix("/dev/").unwrap_or(spec);
    let rest = rest.strip_prefix("ubi").ok_or_else(bad)?;
    let dev_err = |source| FlashOpError::UbiDev {
        spec: spec.to_string(),
        source,
    };
    if let Some((dev, name)) = rest.split_once([':', '!']) {
        if name.is_empty() {
            return Err(bad());
        }
        if !dev.is_empty() {
            return Ok((dev.parse().map_err(|_| bad())?, name.to_string()));
        }
        let devices = liminix_ubi::sysfs::devices(root.dir()).map_err(dev_err)?;
        for num in &devices {
            let vols = liminix_ubi::sysfs::volumes(root.dir(), *num).map_err(dev_err)?;
            if vols.iter().any(|v| v.name == name) {
                return Ok((*num, name.to_string()));
            }
        }
        return match devices[..] {
            [only] => Ok((only, name.to_string())),
            _ => Err(dev_err(liminix_ubi::UbiError::NotFound(spec.to_string()))),
        };
    }
    let (dev, id) = rest.split_once('_').ok_or_else(bad)?;
    let (num, id) = (
        dev.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    );
    let info = liminix_ubi::sysfs::volume_info(root.dir(), num, id).map_err(dev_err)?;
    Ok((num, info.name))
}

/// Update the volume (see the module docs).
pub fn ubi_update(
    root: &DeviceRoot,
    req: &UbiRequest,
    progress: &mut dyn Progress,
) -> Result<UbiSummary, FlashOpError> {
    let (num, name) = parse_volume(root, &req.volume)?;
    let target = format!("ubi{num}");
    let key = format!("{target}:{name}");
    let mut ubi = UbiDev::open(root.dir(), num).map_err(|source| FlashOpError::UbiDev {
        spec: req.volume.clone(),
        source,
    })?;
    let image = FileImage::new(&req.image).map_err(|source| FlashOpError::Image {
        path: req.image.clone(),
        source,
    })?;
    let loc = JournalLocation::locate(root, req.journal.as_deref());
    let made = crate::staging::missing_dirs(&loc.staging());
    let _lock = loc.lock()?;
    let opts = UbiOptions {
        allow_in_place: req.in_place,
        ..UbiOptions::default()
    };
    let prepare = || -> Result<_, FlashOpError> {
        let recovered = recover_then_claim(root, &loc, &key, progress)?;
        let tx = |e: liminix_flash::ubi_update::PlanError| FlashOpError::Tx(e.into());
        let in_place = match plan(&mut ubi, &name, image.len(), &opts).map_err(tx)? {
            UbiPlan::InPlace { current } => {
                refuse_if_mounted(root, num, current.id, &name)?;
                true
            }
            UbiPlan::Swap { .. } => false,
        };
        // Only an in-place update needs the image again after a crash; a swap
        // rolls back by removing the half-written copy.
        let staged = match in_place {
            true => Some(stage(&loc, &key, &req.image)?),
            false => None,
        };
        let src = match &staged {
            Some(s) => FileImage::new(&s.path).map_err(|source| FlashOpError::Image {
                path: s.path.clone(),
                source,
            })?,
            None => image,
        };
        Ok((recovered, in_place, staged, src))
    };
    // A refusal before the first write leaves no journal directory this run made.
    let (recovered, in_place, staged, src) = prepare().inspect_err(|_| {
        crate::staging::journal::remove_made(&loc, &made);
    })?;
    let mut journal = FileJournal::open(&loc.dir)?;
    let result = update_ubi(
        &mut ubi,
        &mut journal,
        &target,
        &name,
        &src,
        &opts,
        progress,
    );
    settle(&mut journal, &loc, &key)?;
    let r = result?;
    Ok(UbiSummary {
        target: key,
        strategy: if in_place { "in-place" } else { "swap" },
        volume_id: r.volume_id,
        old_kept_as: r.old_kept_as,
        image_len: src.len(),
        sha256: hex::encode(r.sha256),
        staged: staged.map(|s| s.kind),
        journal: loc,
        recovered,
    })
}

fn refuse_if_mounted(root: &DeviceRoot, num: u32, id: u32, name: &str) -> Result<(), FlashOpError> {
    let vol = VolumeRef {
        ubi_num: num,
        vol_id: id,
        name,
    };
    let at = volume_mount_point(root.dir(), vol).map_err(|source| FlashOpError::Io {
        what: "read mounts under",
        path: root.dir().to_path_buf(),
        source,
    })?;
    match at {
        Some(at) => Err(FlashOpError::Mounted {
            volume: format!("ubi{num}:{name}"),
            at,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_volume(root: &std::path::Path, num: u32, id: u32, name: &str) {
        let d = root.join(format!("sys/class/ubi/ubi{num}/ubi{num}_{id}"));
        std::fs::create_dir_all(&d).unwrap();
        for (k, v) in [
            ("name", name),
            ("type", "dynamic"),
            ("reserved_ebs", "10"),
            ("usable_eb_size", "126976"),
            ("data_bytes", "1269760"),
            ("corrupted", "0"),
            ("upd_marker", "0"),
        ] {
            std::fs::write(d.join(k), format!("{v}\n")).unwrap();
        }
    }

    #[test]
    fn volume_specs() {
        let t = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(t.path());
        fake_volume(t.path(), 0, 3, "rootfs");
        let r = |s: &str| parse_volume(&root, s).map_err(|e| e.to_string());
        assert_eq!(r("ubi0:rootfs"), Ok((0, "rootfs".into())));
        assert_eq!(r("ubi1:kernel"), Ok((1, "kernel".into())), "need not exist");
        assert_eq!(r("/dev/ubi0_3"), Ok((0, "rootfs".into())));
        assert_eq!(r("ubi0_3"), Ok((0, "rootfs".into())));
        assert!(r("/dev/ubi0_4").is_err());
        for bad in ["rootfs", "ubi0:", "ubiX:rootfs", "/dev/mtd3", "ubi0"] {
            assert!(
                matches!(parse_volume(&root, bad), Err(FlashOpError::VolumeSpec(_))),
                "{bad}"
            );
        }
    }
}
