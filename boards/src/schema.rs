//! The board definition's shape, as serde reads it. `docs/boards.md` documents every field; the rules
//! that cross fields (alignment, overlap, references) live in [`crate::validate`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One board: its flash, what the updater may write there, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Equal to `/etc/liminix/board` on the device and to the bundle manifest's `board`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The CPU family, which decides the agent build `update.sh` carries for the board. Every
    /// built-in board names it; a device's own file may leave it out.
    #[serde(default)]
    pub cpu: Option<crate::Cpu>,
    /// How images get onto the flash.
    pub strategy: Strategy,
    /// Flash chips, each with its MTD partitions. A board with no images (closure updates only)
    /// may have none.
    #[serde(default)]
    pub flash: Vec<Chip>,
    /// UBI geometry and volumes, for boards with UBI targets.
    #[serde(default)]
    pub ubi: Option<UbiLayout>,
    /// Images a bundle for this board may carry; none on boards updated by closure only
    /// (the strategy is then unused).
    #[serde(default, rename = "image")]
    pub images: Vec<ImageSpec>,
    /// A/B boards: the two slots, each with its own targets.
    #[serde(default, rename = "slot")]
    pub slots: Vec<Slot>,
    /// Who chooses the slot at boot (A/B boards), or which U-Boot environment the board has.
    #[serde(default)]
    pub bootloader: Option<Bootloader>,
    /// What U-Boot boots and how Linux finds its root (needed by `liminix-pack image`).
    #[serde(default)]
    pub boot: Option<crate::boot::Boot>,
    /// The build outputs `liminix-pack image` writes for the board.
    #[serde(default, rename = "output")]
    pub outputs: Vec<crate::boot::Output>,
    /// How a first install reaches the board.
    #[serde(default)]
    pub install: Option<crate::boot::Install>,
}

/// The update strategy a board uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Each image is written to a raw MTD partition (flashcp semantics, incremental, journalled).
    #[serde(rename = "raw")]
    Raw,
    /// Each image replaces a UBI volume (staged volume + atomic rename when there is room).
    #[serde(rename = "ubi")]
    Ubi,
    /// Two slots; the Zyxel bootconfig block picks the slot (try-once via status "new").
    #[serde(rename = "ab-zyxel")]
    AbZyxel,
    /// Two slots; variables in the U-Boot environment pick the slot.
    #[serde(rename = "ab-uboot")]
    AbUboot,
}

impl Strategy {
    pub fn is_ab(self) -> bool {
        matches!(self, Strategy::AbZyxel | Strategy::AbUboot)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Raw => "raw",
            Strategy::Ubi => "ubi",
            Strategy::AbZyxel => "ab-zyxel",
            Strategy::AbUboot => "ab-uboot",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChipKind {
    Nor,
    Nand,
}

/// One flash chip as Linux sees it (after any NMBM/bad-block remapping layer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chip {
    /// A label for messages (`spi-nor`, `spi-nand`, …).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChipKind,
    pub size: u64,
    pub erase_size: u64,
    /// Smallest program unit: the page on NAND; 1 on NOR (the default there).
    #[serde(default)]
    pub write_size: Option<u64>,
    #[serde(rename = "partition")]
    pub partitions: Vec<Partition>,
}

impl Chip {
    pub fn write_size(&self) -> u64 {
        self.write_size.unwrap_or(1)
    }
}

/// One MTD partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// The board's name for it, used by targets (`mtd:NAME`).
    pub name: String,
    /// The kernel's partition name (`/sys/class/mtd/mtdN/name`) when it differs from `name`.
    #[serde(default)]
    pub mtd_name: Option<String>,
    /// Offset from the start of the chip.
    pub offset: u64,
    pub size: u64,
    /// Never written by the updater (bootloader, calibration data, …).
    #[serde(default)]
    pub read_only: bool,
}

impl Partition {
    /// The name to look up in sysfs.
    pub fn sysfs_name(&self) -> &str {
        self.mtd_name.as_deref().unwrap_or(&self.name)
    }

    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// UBI geometry (as `ubinize`/`mkfs.ubifs` need it) and the volumes the board's images go to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UbiLayout {
    /// The MTD partition holding UBI; A/B boards name one per slot instead (`slot.ubi`).
    #[serde(default)]
    pub partition: Option<String>,
    pub min_io: u64,
    pub leb_size: u64,
    pub peb_size: u64,
    /// `mkfs.ubifs -c`: the most LEBs a UBIFS image may grow to.
    #[serde(default)]
    pub max_leb_count: Option<u64>,
    #[serde(default, rename = "volume")]
    pub volumes: Vec<Volume>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    #[default]
    Dynamic,
    Static,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: VolumeKind,
    /// Reserved bytes; when absent the volume may take what the UBI device has free.
    #[serde(default)]
    pub size: Option<u64>,
}

/// An image a bundle may carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// The name in the bundle (`liminix-pack bundle --image NAME=FILE`).
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `mtd:PARTITION` or `ubi:VOLUME`; absent on A/B boards, whose slots give the targets.
    #[serde(default)]
    pub target: Option<String>,
}

/// One slot of an A/B board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// `a` or `b` (or the vendor's names).
    pub name: String,
    /// The bootloader's number for the slot (Zyxel image 0/1, the U-Boot variable's value).
    pub index: u32,
    /// The MTD partition holding this slot's UBI device, if the slot has UBI targets.
    #[serde(default)]
    pub ubi: Option<String>,
    /// Image name → target in this slot.
    pub targets: BTreeMap<String, String>,
}

/// The bootloader facts an A/B strategy needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Bootloader {
    /// Zyxel NWA50AX/NWA55AXE: the 2-byte bootconfig at the start of a partition.
    #[serde(rename = "zyxel-bootconfig")]
    ZyxelBootconfig {
        /// The bootconfig partition (a board partition name).
        partition: String,
    },
    /// U-Boot with an environment that `fw_printenv`/`fw_setenv` reach through fw_env.config.
    #[serde(rename = "uboot-env")]
    UbootEnv {
        /// Device path of the fw_env.config describing the environment.
        fw_env_config: String,
        /// Boots a newly installed slot gets before U-Boot falls back (1..=9; the agent's
        /// default is 3). The variable names are fixed by the shipped boot script
        /// (`bootloader-envs/uboot/ab-boot.txt`: `ab_boot`, `ab_try`, `ab_left`, `ab_failed`).
        #[serde(default)]
        attempts: Option<u8>,
    },
}
