//! How a board boots and which build outputs `liminix-pack image` makes for it: the `[boot]`
//! section (kernel format, addresses, command line, root filesystem), the `[[output]]` list and
//! the `[install]` section. `docs/boards.md` documents every field; [`crate::validate`] checks
//! the rules that cross fields.

use serde::{Deserialize, Serialize};

/// The kernel file U-Boot is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelFormat {
    /// A legacy uImage (`bootm`).
    Uimage,
    /// A FIT holding the kernel and the DTB (`bootm`).
    Fit,
    /// An ARM zImage (`bootz`), as the kernel build makes it.
    Zimage,
    /// An arm64 Image (`booti`), as the kernel build makes it.
    Image,
}

/// What the kernel payload of a uImage or FIT is compressed with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelCompression {
    #[default]
    None,
    Gzip,
    Lzma,
}

/// The root filesystem type the kernel mounts (`rootfstype=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootFs {
    Squashfs,
    Ubifs,
    Btrfs,
    Ext4,
    Jffs2,
}

impl RootFs {
    pub fn as_str(self) -> &'static str {
        match self {
            RootFs::Squashfs => "squashfs",
            RootFs::Ubifs => "ubifs",
            RootFs::Btrfs => "btrfs",
            RootFs::Ext4 => "ext4",
            RootFs::Jffs2 => "jffs2",
        }
    }
}

/// The `/chosen` property the command line goes into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChosenProperty {
    #[default]
    #[serde(rename = "bootargs")]
    Bootargs,
    /// Vendor U-Boots that rewrite `bootargs` (Zyxel) leave this one alone.
    #[serde(rename = "bootargs-override")]
    BootargsOverride,
}

impl ChosenProperty {
    pub fn as_str(self) -> &'static str {
        match self {
            ChosenProperty::Bootargs => "bootargs",
            ChosenProperty::BootargsOverride => "bootargs-override",
        }
    }
}

/// `[boot]`: what the board's U-Boot boots and how Linux finds its root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    pub kernel_format: KernelFormat,
    #[serde(default)]
    pub compression: KernelCompression,
    /// Where the kernel is decompressed to (`hardware.loadAddress`).
    pub load_address: u64,
    pub entry_point: u64,
    /// The board's own arguments (console, quirks); `root=` and `rootfstype=` are added.
    #[serde(default)]
    pub command_line: String,
    /// `root=`: `/dev/mtdblock5`, `ubi0:liminix`, `/dev/mmcblk0p1`, …
    pub root_device: String,
    pub root_fs: RootFs,
    /// `rootflags=`, e.g. `subvol=@` for the Omnia's btrfs.
    #[serde(default)]
    pub root_options: Option<String>,
    #[serde(default)]
    pub chosen_property: ChosenProperty,
    /// Where the firmware partition appears in U-Boot's memory map (NOR boards), for flash.scr.
    #[serde(default)]
    pub flash_address: Option<u64>,
    /// Free RAM where U-Boot's `tftpboot` puts a downloaded file.
    #[serde(default)]
    pub tftp_load_address: Option<u64>,
}

impl Boot {
    /// The full kernel command line, as Liminix's base module assembles it: its fixed
    /// arguments, `root=`, `rootfstype=`, `fw_devlink=off`, `rootflags=` when set, then the
    /// board's own.
    pub fn full_command_line(&self) -> String {
        let mut parts = vec![
            "panic=10 oops=panic init=/bin/init loglevel=8".to_owned(),
            format!("root={}", self.root_device),
            format!("rootfstype={}", self.root_fs.as_str()),
            "fw_devlink=off".to_owned(),
        ];
        if let Some(o) = &self.root_options {
            parts.push(format!("rootflags={o}"));
        }
        if !self.command_line.trim().is_empty() {
            parts.push(self.command_line.trim().to_owned());
        }
        parts.join(" ")
    }
}

/// One `[[output]]`: a file or folder `liminix-pack image` writes for the board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Output {
    /// The kernel file alone, in the `[boot]` format.
    #[serde(rename = "kernel")]
    Kernel,
    /// `firmware.bin` for a raw NOR partition (uImage, then the squashfs), and `flash.scr`.
    #[serde(rename = "mtdimage")]
    Mtdimage { partition: String },
    /// The UBIFS root image for a UBI volume, and `flash.scr` (`ubi write`).
    #[serde(rename = "ubimage")]
    Ubimage { volume: String },
    /// A whole UBI image (ubinize's output) for a UBI partition, holding the root volume.
    #[serde(rename = "ubivolume")]
    Ubivolume {
        partition: String,
        volume: String,
        /// Let the kernel grow the volume over the free PEBs at first attach.
        #[serde(default)]
        autoresize: bool,
    },
    /// The Zyxel NWA `firmware` FIT the vendor web UI accepts, plus the slot's raw images.
    #[serde(rename = "zyxel-nwa-fit")]
    ZyxelNwaFit {
        /// The `compat-models` bytes, as hex (`6be16fe1ffffffffffff`).
        compat_models: String,
        /// The slot whose kernel and UBI partitions size the two halves.
        slot: String,
    },
    /// A disk image: MBR, the root filesystem in partition 1, room to grow after it.
    #[serde(rename = "mbrimage")]
    Mbrimage {
        /// The partition's filesystem when it is not the board's `root_fs` (a recovery stick
        /// the board's U-Boot must read).
        #[serde(default)]
        filesystem: Option<RootFs>,
        disk_size: u64,
        #[serde(default)]
        free_space: u64,
    },
    /// Files U-Boot fetches over TFTP and boots from RAM (root in a phram device).
    #[serde(rename = "tftpboot")]
    Tftpboot {
        #[serde(default)]
        free_space: u64,
        erase_size: u64,
    },
    /// `/boot/extlinux/extlinux.conf`, kernel and DTB inside the root filesystem.
    #[serde(rename = "extlinux")]
    Extlinux,
    /// `/boot/fit` inside the root filesystem.
    #[serde(rename = "fit-boot")]
    FitBoot,
}

impl Output {
    /// The name of the output: its type, which is also its folder under `--out`.
    pub fn name(&self) -> &'static str {
        match self {
            Output::Kernel => "kernel",
            Output::Mtdimage { .. } => "mtdimage",
            Output::Ubimage { .. } => "ubimage",
            Output::Ubivolume { .. } => "ubivolume",
            Output::ZyxelNwaFit { .. } => "zyxel-nwa-fit",
            Output::Mbrimage { .. } => "mbrimage",
            Output::Tftpboot { .. } => "tftpboot",
            Output::Extlinux => "extlinux",
            Output::FitBoot => "fit-boot",
        }
    }

    /// Outputs that only add files under `/boot` of the root, before its image is made.
    pub fn is_boot_files(&self) -> bool {
        matches!(self, Output::Extlinux | Output::FitBoot)
    }
}

/// `[install]`: how the first Liminix gets onto the board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    /// The output a first install uses (an `[[output]]` type of the board).
    pub output: String,
    /// The path in words, e.g. "U-Boot serial console: tftp + flash.scr".
    pub path: String,
}

/// Parses the hex of `compat_models`.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
