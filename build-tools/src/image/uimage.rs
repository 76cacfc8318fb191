//! The legacy uImage: a 64-byte big-endian header in front of one payload. U-Boot checks the
//! header CRC before trusting any field, then the data CRC before decompressing the payload to
//! the load address.

use super::{from_code, len32, Arch, Compression, ImageError, Payload, OS_LINUX};

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

/// The header and payload of a uImage, after checking the magic and both CRCs as U-Boot does.
/// Bytes past the payload (flash padding) are ignored.
pub fn read(image: &[u8]) -> Result<(Header, &[u8]), ImageError> {
    let not = |why: String| ImageError::NotUimage { why };
    let head: &[u8; HEADER_LEN] = image
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| not(format!("{} bytes, shorter than the header", image.len())))?;
    if be32(head, 0) != MAGIC {
        return Err(not(format!("magic {:08x}", be32(head, 0))));
    }
    let mut zeroed = *head;
    zeroed[4..8].fill(0);
    if crc32fast::hash(&zeroed) != be32(head, 4) {
        return Err(not("header CRC mismatch".into()));
    }
    let size = be32(head, 12) as usize;
    let data = image
        .get(HEADER_LEN..HEADER_LEN + size)
        .ok_or_else(|| not(format!("payload of {size} bytes runs past the end")))?;
    if crc32fast::hash(data) != be32(head, 24) {
        return Err(not("data CRC mismatch".into()));
    }
    Ok((parse_header(head)?, data))
}

fn parse_header(head: &[u8; HEADER_LEN]) -> Result<Header, ImageError> {
    if head[28] != OS_LINUX {
        return Err(ImageError::UnknownCode {
            field: "OS",
            code: head[28],
        });
    }
    let name = &head[32..];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(Header {
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
        arch: from_code(&Arch::ALL, head[29], "arch", Arch::code)?,
        payload: from_code(&Payload::ALL, head[30], "type", Payload::code)?,
        compression: from_code(
            &Compression::ALL,
            head[31],
            "compression",
            Compression::code,
        )?,
        load: be32(head, 16),
        entry: be32(head, 20),
        time: be32(head, 8),
    })
}

fn be32(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
