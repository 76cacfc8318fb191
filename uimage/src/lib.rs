//! U-Boot's legacy image: a 64-byte big-endian header in front of one payload. U-Boot checks
//! the header CRC before trusting any field, then the data CRC before it decompresses the
//! payload to the load address. The packer writes these (kernels, boot scripts); the agent
//! reads them (the kernel at the front of a NOR firmware partition, for kexec). The numeric
//! codes (OS, architecture, type, compression) stay numbers here: what each reader accepts is
//! its own business.

/// `IH_MAGIC`, the first four bytes of every legacy image.
pub const MAGIC: u32 = 0x2705_1956;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 64;
/// `IH_NMLEN`: the name field; one byte stays for the NUL that U-Boot prints up to.
pub const NAME_FIELD: usize = 32;
/// `IH_TYPE_KERNEL`.
pub const TYPE_KERNEL: u8 = 2;
/// `IH_OS_LINUX`.
pub const OS_LINUX: u8 = 5;

/// Every header field but the lengths and CRCs, which follow from the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Up to 31 bytes; read up to the first NUL.
    pub name: String,
    pub os: u8,
    pub arch: u8,
    /// `ih_type`: kernel, script, ramdisk…
    pub kind: u8,
    /// What the payload bytes are already compressed with.
    pub compression: u8,
    pub load: u32,
    pub entry: u32,
    /// Seconds since 1970.
    pub time: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UimageError {
    #[error("not a uImage: {0}")]
    Invalid(String),
    #[error("uImage name {name:?} is {len} bytes; the header holds at most 31")]
    NameTooLong { name: String, len: usize },
    #[error("uImage payload of {0} bytes does not fit the header's 32-bit size")]
    TooLarge(usize),
}

/// Whether `data` starts with the uImage magic.
pub fn is_uimage(data: &[u8]) -> bool {
    data.get(..4) == Some(&MAGIC.to_be_bytes()[..])
}

/// The image: the header for `data`, then `data` as given.
pub fn write(header: &Header, data: &[u8]) -> Result<Vec<u8>, UimageError> {
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    out.extend_from_slice(&header_bytes(header, data)?);
    out.extend_from_slice(data);
    Ok(out)
}

fn header_bytes(h: &Header, data: &[u8]) -> Result<[u8; HEADER_LEN], UimageError> {
    let size = u32::try_from(data.len()).map_err(|_| UimageError::TooLarge(data.len()))?;
    let mut b = [0u8; HEADER_LEN];
    b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    // 4..8 is the header CRC, computed over the header with this field zero.
    b[8..12].copy_from_slice(&h.time.to_be_bytes());
    b[12..16].copy_from_slice(&size.to_be_bytes());
    b[16..20].copy_from_slice(&h.load.to_be_bytes());
    b[20..24].copy_from_slice(&h.entry.to_be_bytes());
    b[24..28].copy_from_slice(&crc32fast::hash(data).to_be_bytes());
    b[28] = h.os;
    b[29] = h.arch;
    b[30] = h.kind;
    b[31] = h.compression;
    b[32..].copy_from_slice(&name_field(&h.name)?);
    let hcrc = crc32fast::hash(&b);
    b[4..8].copy_from_slice(&hcrc.to_be_bytes());
    Ok(b)
}

fn name_field(name: &str) -> Result<[u8; NAME_FIELD], UimageError> {
    let bytes = name.as_bytes();
    if bytes.len() >= NAME_FIELD {
        return Err(UimageError::NameTooLong {
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
pub fn read(image: &[u8]) -> Result<(Header, &[u8]), UimageError> {
    let not = |why: String| UimageError::Invalid(why);
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
        .get(HEADER_LEN..)
        .and_then(|rest| rest.get(..size))
        .ok_or_else(|| not(format!("payload of {size} bytes runs past the end")))?;
    if crc32fast::hash(data) != be32(head, 24) {
        return Err(not("data CRC mismatch".into()));
    }
    let name = &head[32..];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let header = Header {
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
        os: head[28],
        arch: head[29],
        kind: head[30],
        compression: head[31],
        load: be32(head, 16),
        entry: be32(head, 20),
        time: be32(head, 8),
    };
    Ok((header, data))
}

fn be32(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> Header {
        Header {
            name: "Linux".into(),
            os: OS_LINUX,
            arch: 5,
            kind: TYPE_KERNEL,
            compression: 0,
            load: 0x8006_0000,
            entry: 0x8006_0400,
            time: 1_700_000_000,
        }
    }

    #[test]
    fn what_is_written_reads_back() {
        let image = write(&kernel(), b"payload").unwrap();
        let mut padded = image.clone();
        padded.extend_from_slice(&[0xff; 100]);
        assert!(is_uimage(&padded));
        assert_eq!(read(&padded).unwrap(), (kernel(), &b"payload"[..]));
    }

    #[test]
    fn damage_is_named() {
        let image = write(&kernel(), b"payload").unwrap();
        let err = |image: &[u8]| read(image).unwrap_err().to_string();
        assert!(err(&image[..10]).contains("shorter than the header"));
        assert!(err(&image[..HEADER_LEN + 3]).contains("runs past the end"));
        let mut bad = image.clone();
        bad[HEADER_LEN] ^= 1;
        assert!(err(&bad).contains("data CRC"));
        bad = image.clone();
        bad[20] ^= 1;
        assert!(err(&bad).contains("header CRC"));
        bad[0] = 0;
        assert!(err(&bad).contains("magic"));
        let long = Header {
            name: "x".repeat(32),
            ..kernel()
        };
        assert!(matches!(
            write(&long, b""),
            Err(UimageError::NameTooLong { len: 32, .. })
        ));
    }
}
