//! The slot model: two slots, each a kernel target and an optional root filesystem target,
//! and the board's description of them (which boot flow, where its state lives, how to
//! check health before confirming a boot).

use liminix_boards::VolumeKind;
use serde::{Deserialize, Serialize};

/// One of the two slots. On Zyxel boards A is image 0 (`firmware`), B image 1
/// (`firmware_1`); on U-Boot-environment boards they are `a` and `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// Both slots, A first.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// 0 for A, 1 for B (the Zyxel image number).
    pub fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    /// The slot with image number `i` (0 or 1; anything else is B, as bit 0 decides).
    pub fn from_index(i: usize) -> Slot {
        if i & 1 == 0 {
            Slot::A
        } else {
            Slot::B
        }
    }

    /// The other slot.
    pub fn other(self) -> Slot {
        Slot::from_index(self.index() + 1)
    }

    /// `a` or `b`, as the boot script and the kernel command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// Parses `a`/`b` (any case) or `0`/`1`.
    pub fn parse(s: &str) -> Option<Slot> {
        match s.trim().to_ascii_lowercase().as_str() {
            "a" | "0" => Some(Slot::A),
            "b" | "1" => Some(Slot::B),
            _ => None,
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one image of a slot goes. Paths are device paths, resolved below `--root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    /// A raw MTD partition, by its name in sysfs (`kernel_1`); written with the raw writer.
    /// A UBI partition written this way takes a ubinized image.
    Mtd { name: String },
    /// A volume of the UBI device numbered `ubi`, which must be attached and hold the
    /// volume already; replaced by one volume update. (The form of ab.json files written
    /// before `ubi-partition`; derived layouts use `ubi-partition`.)
    UbiVolume { ubi: u32, volume: String },
    /// Volume `volume` of the UBI device on MTD partition `partition` (its sysfs name),
    /// attached or not: the device number is looked up when the slot is opened, and a
    /// partition the running system has not attached is attached for the install and
    /// detached again. A missing or too small volume is (re)made, of `type` and `size`
    /// bytes (`None`: all the space the device has); see docs/ab.md.
    UbiPartition {
        partition: String,
        volume: String,
        #[serde(default, rename = "type")]
        volume_type: VolumeKind,
        #[serde(default)]
        size: Option<u64>,
    },
    /// A block device or file (a partition of a disk), written in place and read back.
    Block { path: String },
}

/// The images of one slot and the most each may hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotTargets {
    pub kernel: Target,
    /// Largest kernel image the slot takes, in bytes (8 MiB on the NWA50AX).
    pub kernel_max: u64,
    /// Root filesystem target; `None` when the kernel image carries everything.
    #[serde(default)]
    pub rootfs: Option<Target>,
    /// Largest root filesystem image, in bytes (32 MiB UBI on the NWA50AX).
    #[serde(default)]
    pub rootfs_max: u64,
}

/// Which boot-loader protocol makes a slot "the one to try next".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FlowConfig {
    /// Zyxel NWA50AX bootconfig partition (device path or `mtd:bootconfig`), bytes at `offset`.
    Zyxel {
        device: String,
        #[serde(default)]
        offset: u64,
    },
    /// U-Boot environment described by an fw_env.config, driven by `ab-boot.txt`.
    UbootEnv {
        config: String,
        /// Boots a new slot gets before U-Boot falls back (1..=9).
        #[serde(default = "default_attempts")]
        attempts: u8,
    },
}

fn default_attempts() -> u8 {
    3
}

/// What must hold before `mark-good` confirms a boot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// s6-rc services that must be up (listed by `s6-rc -a list`).
    #[serde(default)]
    pub services: Vec<String>,
    /// A shell command that must exit 0.
    #[serde(default)]
    pub command: Option<String>,
    /// Seconds to keep checking before giving up (default 120).
    #[serde(default)]
    pub deadline_secs: Option<u64>,
}

/// The slot layout (`ab.json`, or derived from the board definition): the board name, the
/// targets of the two slots, the boot flow and the health check `mark-good` waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotLayout {
    pub board: String,
    pub slots: [SlotTargets; 2],
    pub flow: FlowConfig,
    #[serde(default)]
    pub health: HealthConfig,
}

impl SlotLayout {
    /// The layout of `slot`.
    pub fn slot(&self, slot: Slot) -> &SlotTargets {
        &self.slots[slot.index()]
    }

    /// The Zyxel NWA50AX: per slot an 8 MiB kernel and a 32 MiB UBI partition, bootconfig
    /// in its own partition (docs/formats/zyxel-bootconfig.md, "Flash map").
    pub fn zyxel_nwa50ax() -> SlotLayout {
        let slot = |k: &str, u: &str| SlotTargets {
            kernel: Target::Mtd { name: k.into() },
            kernel_max: 8 << 20,
            rootfs: Some(Target::Mtd { name: u.into() }),
            rootfs_max: 32 << 20,
        };
        SlotLayout {
            board: "zyxel-nwa50ax".into(),
            slots: [slot("kernel", "ubi"), slot("kernel_1", "ubi_1")],
            flow: FlowConfig::Zyxel {
                device: "mtd:bootconfig".into(),
                offset: 0,
            },
            health: HealthConfig::default(),
        }
    }
}

/// Reads the slot layout of this device: its slot layout
/// ([`crate::root::DeviceRoot::slot_layout`]) if present, else the slots of its board definition
/// (liminix-boards, strategies `ab-zyxel`/`ab-uboot`). `Ok(None)` when
/// it is not an A/B board (or names no board definition the agent knows).
pub fn load_slot_layout(
    root: &crate::root::DeviceRoot,
) -> Result<Option<SlotLayout>, super::AbError> {
    let path = root.slot_layout();
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| super::ConfigError::Parse { path, source }.into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => from_board_definition(root),
        Err(source) => Err(super::ConfigError::Read { path, source }.into()),
    }
}

fn from_board_definition(
    root: &crate::root::DeviceRoot,
) -> Result<Option<SlotLayout>, super::AbError> {
    let Ok(name) = std::fs::read_to_string(root.board_name()) else {
        return Ok(None);
    };
    let Ok(board) = liminix_boards::for_device(root.dir(), name.trim()) else {
        return Ok(None);
    };
    if !board.strategy.is_ab() {
        return Ok(None);
    }
    crate::apply::ab::ab_board(root, &board)
        .map(Some)
        .map_err(|e| {
            super::ConfigError::Board {
                board: board.name.clone(),
                source: Box::new(e),
            }
            .into()
        })
}
