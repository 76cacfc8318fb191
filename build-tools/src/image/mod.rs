//! The images a Liminix build is flashed or booted from. Kernel and boot-script images in
//! U-Boot's own formats: the legacy uImage (`uimage`), its script flavour (`script`) and the FIT
//! (`fit`); whole disks (`mbr`) and root filesystems (`squashfs`). Shared here: what each header field names
//! (architecture, payload type, compression), the payload compressors and the timestamp, which
//! comes from `SOURCE_DATE_EPOCH` so that the same inputs give the same bytes.
//! docs/formats/uimage-fit.md describes the layouts.

pub mod bootfiles;
pub mod build;
pub mod commands;
pub use liminix_fdt as dtb;
pub mod elf;
pub mod fit;
pub mod mbr;
pub mod script;
pub mod squashfs;
pub mod stick;
pub mod tftpboot;
pub mod ubifs;
pub mod uimage;
pub mod zyxel;

mod compress;

pub use compress::compress;

/// The CPU a payload runs on. Only the architectures of the supported boards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Arm,
    Arm64,
    Mips,
}

impl Arch {
    const ALL: [Arch; 3] = [Arch::Arm, Arch::Arm64, Arch::Mips];

    /// The `ih_arch` byte of a legacy header (U-Boot's `IH_ARCH_*`).
    pub fn code(self) -> u8 {
        match self {
            Arch::Arm => 2,
            Arch::Mips => 5,
            Arch::Arm64 => 22,
        }
    }

    /// The `arch` string of a FIT image node.
    pub fn fit_name(self) -> &'static str {
        match self {
            Arch::Arm => "arm",
            Arch::Mips => "mips",
            Arch::Arm64 => "arm64",
        }
    }
}

/// What the payload is, which decides what `bootm` and `source` do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    Kernel,
    Ramdisk,
    Script,
    FlatDt,
}

impl Payload {
    const ALL: [Payload; 4] = [
        Payload::Kernel,
        Payload::Ramdisk,
        Payload::Script,
        Payload::FlatDt,
    ];

    /// The `ih_type` byte of a legacy header (U-Boot's `IH_TYPE_*`).
    pub fn code(self) -> u8 {
        match self {
            Payload::Kernel => 2,
            Payload::Ramdisk => 3,
            Payload::Script => 6,
            Payload::FlatDt => 8,
        }
    }

    /// The `type` string of a FIT image node.
    pub fn fit_name(self) -> &'static str {
        match self {
            Payload::Kernel => "kernel",
            Payload::Ramdisk => "ramdisk",
            Payload::Script => "script",
            Payload::FlatDt => "flat_dt",
        }
    }
}

/// How the payload bytes are compressed; U-Boot decompresses to the load address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Lzma,
}

impl Compression {
    const ALL: [Compression; 3] = [Compression::None, Compression::Gzip, Compression::Lzma];

    /// The `ih_comp` byte of a legacy header (U-Boot's `IH_COMP_*`).
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Lzma => 3,
        }
    }

    /// The `compression` string of a FIT image node.
    pub fn fit_name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Lzma => "lzma",
        }
    }
}

/// The operating system field: every payload the packer writes is for Linux (`IH_OS_LINUX`).
pub const OS_LINUX: u8 = 5;

/// A header or FIT field could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("SOURCE_DATE_EPOCH={value:?} is not a count of seconds that fits 32 bits")]
    Epoch { value: String },
    #[error("image name {name:?} is {len} bytes; a uImage header holds at most 31")]
    NameTooLong { name: String, len: usize },
    #[error("{what} is {len} bytes; a uImage holds at most 4 GiB - 1")]
    TooLarge { what: &'static str, len: usize },
    #[error("compressing the payload with {method}: {source}")]
    Compress {
        method: &'static str,
        source: std::io::Error,
    },
    #[error("not a uImage: {why}")]
    NotUimage { why: String },
    #[error("uImage {field} code {code} is not one the packer knows")]
    UnknownCode { field: &'static str, code: u8 },
    #[error("writing the FIT's device tree: {0}")]
    Fdt(#[from] vm_fdt::Error),
}

/// The time written into headers: `SOURCE_DATE_EPOCH` when set (reproducible builds), else
/// now, as mkimage does.
pub fn timestamp() -> Result<u32, ImageError> {
    timestamp_from(std::env::var("SOURCE_DATE_EPOCH").ok())
}

/// [`timestamp`] given the variable's value, so that callers and tests need not touch the
/// process environment.
pub fn timestamp_from(epoch: Option<String>) -> Result<u32, ImageError> {
    match epoch {
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| ImageError::Epoch { value }),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            // Past 2106 the field cannot hold the time: say so rather than wrap.
            u32::try_from(now).map_err(|_| ImageError::Epoch {
                value: now.to_string(),
            })
        }
    }
}

/// The value among `all` whose legacy code is `code`.
fn from_code<T: Copy>(
    all: &[T],
    code: u8,
    field: &'static str,
    code_of: fn(T) -> u8,
) -> Result<T, ImageError> {
    all.iter()
        .copied()
        .find(|v| code_of(*v) == code)
        .ok_or(ImageError::UnknownCode { field, code })
}

/// A length as the 32-bit big-endian field both formats store.
fn len32(what: &'static str, len: usize) -> Result<u32, ImageError> {
    u32::try_from(len).map_err(|_| ImageError::TooLarge { what, len })
}
