//! The legacy uImage: a 64-byte big-endian header in front of one payload. U-Boot checks the
//! header CRC before trusting any field, then the data CRC before decompressing the payload to
//! the load address.

use super::{len32, Arch, Compression, ImageError, Payload, OS_LINUX};

/// `IH_MAGIC`, the first four bytes of every legacy image.
pub const MAGIC: u32 = 0x2705_1956;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 64;
/// `IH_NMLEN`: the name field; one byte stays for the NUL that U-Boot prints up to.
const NAME_FIELD: usize = 32;

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
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    out.extend_from_slice(&header_bytes(header, data)?);
    out.extend_from_slice(data);
    Ok(out)
}

fn header_bytes(h: &Header, data: &[u8]) -> Result<[u8; HEADER_LEN], ImageError> {
    let name = name_field(&h.name)?;
    let mut b = [0u8; HEADER_LEN];
    b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    // 4..8 is the header CRC, computed over the header with this field zero.
    b[8..12].copy_from_slice(&h.time.to_be_bytes());
    b[12..16].copy_from_slice(&len32("payload", data.len())?.to_be_bytes());
    b[16..20].copy_from_slice(&h.load.to_be_bytes());
    b[20..24].copy_from_slice(&h.entry.to_be_bytes());
    b[24..28].copy_from_slice(&crc32fast::hash(data).to_be_bytes());
    b[28] = OS_LINUX;
    b[29] = h.arch.code();
    b[30] = h.payload.code();
    b[31] = h.compression.code();
    b[32..].copy_from_slice(&name);
    let hcrc = crc32fast::hash(&b);
    b[4..8].copy_from_slice(&hcrc.to_be_bytes());
    Ok(b)
}

fn name_field(name: &str) -> Result<[u8; NAME_FIELD], ImageError> {
    let bytes = name.as_bytes();
    if bytes.len() >= NAME_FIELD {
        return Err(ImageError::NameTooLong {
            name: name.to_owned(),
            len: bytes.len(),
        });
    }
    let mut field = [0u8; NAME_FIELD];
    field[..bytes.len()].copy_from_slice(bytes);
    Ok(field)
}
