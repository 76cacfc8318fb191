//! The legacy uImage as the packer sees it: the header's numeric codes as the packer's own
//! architecture, payload and compression names. The bytes and CRCs are `liminix_uimage`'s,
//! the one reader and writer the agent shares.

use liminix_uimage as raw;

use super::{from_code, Arch, Compression, ImageError, Payload, OS_LINUX};

pub use raw::{HEADER_LEN, MAGIC};

/// Every header field but the lengths and CRCs, which follow from the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub arch: Arch,
    pub payload: Payload,
    /// What the payload bytes are already compressed with (see `image::compress`).
    pub compression: Compression,
    pub load: u32,
    pub entry: u32,
    /// Seconds since 1970 (`image::timestamp`).
    pub time: u32,
}

/// The image: the header for `data`, then `data` as given.
pub fn write(header: &Header, data: &[u8]) -> Result<Vec<u8>, ImageError> {
    let h = raw::Header {
        name: header.name.clone(),
        os: OS_LINUX,
        arch: header.arch.code(),
        kind: header.payload.code(),
        compression: header.compression.code(),
        load: header.load,
        entry: header.entry,
        time: header.time,
    };
    raw::write(&h, data).map_err(from_raw)
}

/// The header and payload of a uImage, after checking the magic and both CRCs as U-Boot does.
/// Bytes past the payload (flash padding) are ignored.
pub fn read(image: &[u8]) -> Result<(Header, &[u8]), ImageError> {
    let (h, data) = raw::read(image).map_err(from_raw)?;
    if h.os != OS_LINUX {
        return Err(ImageError::UnknownCode {
            field: "OS",
            code: h.os,
        });
    }
    let header = Header {
        name: h.name,
        arch: from_code(&Arch::ALL, h.arch, "arch", Arch::code)?,
        payload: from_code(&Payload::ALL, h.kind, "type", Payload::code)?,
        compression: from_code(
            &Compression::ALL,
            h.compression,
            "compression",
            Compression::code,
        )?,
        load: h.load,
        entry: h.entry,
        time: h.time,
    };
    Ok((header, data))
}

fn from_raw(e: raw::UimageError) -> ImageError {
    match e {
        raw::UimageError::Invalid(why) => ImageError::NotUimage { why },
        raw::UimageError::NameTooLong { name, len } => ImageError::NameTooLong { name, len },
        raw::UimageError::TooLarge(len) => ImageError::TooLarge {
            what: "payload",
            len,
        },
    }
}
