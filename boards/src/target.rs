//! Targets: where an image goes. `mtd:PARTITION` is a raw MTD partition, `ubi:VOLUME` a volume of
//! the board's (or the slot's) UBI device.

use crate::schema::{Board, Chip, ImageSpec, Partition, Volume};
use crate::BoardError;

/// A parsed target string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetRef<'a> {
    Raw(&'a str),
    Ubi(&'a str),
}

impl<'a> TargetRef<'a> {
    pub fn parse(s: &'a str) -> Result<Self, BoardError> {
        let bad = || BoardError::Target(s.to_owned());
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        if !crate::validate::plain_name(name) {
            return Err(bad());
        }
        match kind {
            "mtd" => Ok(TargetRef::Raw(name)),
            "ubi" => Ok(TargetRef::Ubi(name)),
            _ => Err(bad()),
        }
    }
}

/// Where one image of the board goes, resolved to the board's partitions and volumes.
#[derive(Clone, Debug)]
pub struct Resolved<'a> {
    pub image: &'a ImageSpec,
    /// The target as written in the board definition (`mtd:kernel_1`, `ubi:rootfs`).
    pub target: &'a str,
    pub place: Place<'a>,
    /// Most bytes the target can take according to the board (the device's bad blocks and the
    /// UBI device's free space are checked on the device).
    pub max_size: u64,
}

#[derive(Clone, Debug)]
pub enum Place<'a> {
    /// A raw partition.
    Raw {
        chip: &'a Chip,
        partition: &'a Partition,
    },
    /// A UBI volume on the UBI device attached to `partition`.
    Ubi {
        chip: &'a Chip,
        partition: &'a Partition,
        volume: &'a Volume,
    },
}

impl Place<'_> {
    /// The MTD partition written (raw) or holding the UBI device.
    pub fn partition(&self) -> &Partition {
        match self {
            Place::Raw { partition, .. } | Place::Ubi { partition, .. } => partition,
        }
    }
}

impl Board {
    /// The chip and partition called `name` (the board's name, not the kernel's).
    pub fn partition(&self, name: &str) -> Option<(&Chip, &Partition)> {
        self.flash
            .iter()
            .flat_map(|c| c.partitions.iter().map(move |p| (c, p)))
            .find(|(_, p)| p.name == name)
    }

    pub fn image(&self, name: &str) -> Option<&ImageSpec> {
        self.images.iter().find(|i| i.name == name)
    }

    /// What a bundle's manifest records as the image's target: the board's target, or
    /// `slot:IMAGE` on A/B boards (the slot is chosen on the device).
    pub fn manifest_target(&self, image: &str) -> Option<String> {
        let spec = self.image(image)?;
        Some(match &spec.target {
            Some(t) => t.clone(),
            None => format!("slot:{image}"),
        })
    }

    /// LEBs × LEB size a UBI device on `partition` offers to volumes: its PEBs less the layout
    /// volume (2), wear-levelling and atomic-change reserve (2) and, on NAND, the bad-block reserve
    /// the kernel keeps by default (20 per 1024 PEBs of the chip).
    pub fn ubi_capacity(&self, partition: &str) -> Option<u64> {
        let u = self.ubi.as_ref()?;
        let (chip, p) = self.partition(partition)?;
        let pebs = p.size / u.peb_size;
        let bad_reserve = match chip.kind {
            crate::schema::ChipKind::Nand => (chip.size / u.peb_size * 20).div_ceil(1024),
            crate::schema::ChipKind::Nor => 0,
        };
        Some(pebs.saturating_sub(4 + bad_reserve) * u.leb_size)
    }

    /// Resolves `image` (in `slot` on A/B boards) to its target.
    pub fn resolve(&self, image: &str, slot: Option<&str>) -> Result<Resolved<'_>, BoardError> {
        let spec = self.image(image).ok_or_else(|| BoardError::UnknownImage {
            board: self.name.clone(),
            image: image.to_owned(),
        })?;
        let (target, ubi_part) = match (&spec.target, slot) {
            (Some(t), None) => (
                t.as_str(),
                self.ubi.as_ref().and_then(|u| u.partition.as_deref()),
            ),
            (None, Some(slot_name)) => {
                let s = self
                    .slots
                    .iter()
                    .find(|s| s.name == slot_name)
                    .ok_or_else(|| BoardError::UnknownSlot(slot_name.to_owned()))?;
                let t = s
                    .targets
                    .get(image)
                    .expect("validated: every slot targets every image");
                (t.as_str(), s.ubi.as_deref())
            }
            (Some(_), Some(s)) => return Err(BoardError::UnknownSlot(s.to_owned())),
            (None, None) => return Err(BoardError::SlotNeeded(image.to_owned())),
        };
        let place = match TargetRef::parse(target)? {
            TargetRef::Raw(p) => {
                let (chip, partition) = self.partition(p).expect("validated");
                Place::Raw { chip, partition }
            }
            TargetRef::Ubi(v) => {
                let (chip, partition) = self
                    .partition(ubi_part.expect("validated"))
                    .expect("validated");
                let u = self.ubi.as_ref().expect("validated");
                let volume = u.volumes.iter().find(|x| x.name == v).expect("validated");
                Place::Ubi {
                    chip,
                    partition,
                    volume,
                }
            }
        };
        let max_size = match &place {
            Place::Raw { partition, .. } => partition.size,
            Place::Ubi {
                partition, volume, ..
            } => volume
                .size
                .unwrap_or_else(|| self.ubi_capacity(&partition.name).unwrap_or(0)),
        };
        Ok(Resolved {
            image: spec,
            target,
            place,
            max_size,
        })
    }
}
