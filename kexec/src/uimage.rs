//! The legacy U-Boot image header (64 bytes, big-endian) and its single payload. A small
//! reader of our own: the build side's uImage code writes these and lives in the build tools,
//! which the device does not carry.

use std::io::Read;

use crate::KexecError;

pub const MAGIC: u32 = 0x2705_1956;
const HEADER_LEN: usize = 64;
const TYPE_KERNEL: u8 = 2;
/// Larger payloads are refused rather than decompressed without end.
const MAX_PAYLOAD: u64 = 128 << 20;

#[derive(Debug)]
pub struct UImage<'a> {
    pub load: u32,
    pub entry: u32,
    pub compression: u8,
    pub data: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn is_uimage(kernel: &[u8]) -> bool {
    kernel.len() >= 4 && be32(kernel, 0) == MAGIC
}

/// Checks header and data checksums and that this is a kernel image.
pub fn parse(image: &[u8]) -> Result<UImage<'_>, KexecError> {
    let bad = |m: String| KexecError::Malformed(format!("uImage: {m}"));
    let header = image
        .get(..HEADER_LEN)
        .ok_or_else(|| bad(format!("{} bytes, shorter than its header", image.len())))?;
    let mut zeroed = header.to_vec();
    zeroed[4..8].fill(0);
    if crc32(&zeroed) != be32(header, 4) {
        return Err(bad("header checksum mismatch".into()));
    }
    let size = be32(header, 12) as usize;
    let data = image
        .get(HEADER_LEN..)
        .and_then(|d| d.get(..size))
        .ok_or_else(|| bad(format!("payload of {size} bytes runs past the end")))?;
    if crc32(data) != be32(header, 24) {
        return Err(bad("payload checksum mismatch".into()));
    }
    if header[30] != TYPE_KERNEL {
        return Err(bad(format!(
            "image type {} is not a kernel (2)",
            header[30]
        )));
    }
    Ok(UImage {
        load: be32(header, 16),
        entry: be32(header, 20),
        compression: header[31],
        data,
    })
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

impl UImage<'_> {
    /// The payload, decompressed: none, gzip or lzma (the `lzma_alone` format mkimage's users
    /// feed it), at most 128 MiB.
    pub fn payload(&self) -> Result<Vec<u8>, KexecError> {
        let (name, reader): (&'static str, Box<dyn Read + '_>) = match self.compression {
            0 => return Ok(self.data.to_vec()),
            1 => ("gzip", Box::new(flate2::read::GzDecoder::new(self.data))),
            3 => return lzma(self.data),
            c => {
                return Err(KexecError::Malformed(format!(
                    "uImage: compression {c} (only none, gzip, lzma)"
                )))
            }
        };
        let mut out = Vec::new();
        reader
            .take(MAX_PAYLOAD + 1)
            .read_to_end(&mut out)
            .map_err(|source| KexecError::Decompress {
                compression: name,
                source,
            })?;
        if out.len() as u64 > MAX_PAYLOAD {
            return Err(KexecError::TooBig {
                what: "the decompressed uImage payload".into(),
                size: out.len() as u64,
                limit: format!("{MAX_PAYLOAD} bytes"),
            });
        }
        Ok(out)
    }
}

/// The `lzma_alone` payload, refused once it passes [`MAX_PAYLOAD`] rather than after.
fn lzma(data: &[u8]) -> Result<Vec<u8>, KexecError> {
    let mut out = Capped::default();
    let mut input = std::io::BufReader::new(data);
    // The dictionary is bounded too: a header may claim up to 4 GiB of it.
    let options = lzma_rs::decompress::Options {
        memlimit: Some(MAX_PAYLOAD as usize),
        ..Default::default()
    };
    let result = lzma_rs::lzma_decompress_with_options(&mut input, &mut out, &options);
    if out.overflowed {
        return Err(KexecError::TooBig {
            what: "the decompressed uImage payload".into(),
            size: MAX_PAYLOAD + 1,
            limit: format!("{MAX_PAYLOAD} bytes"),
        });
    }
    result.map_err(|e| KexecError::Decompress {
        compression: "lzma",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })?;
    Ok(out.bytes)
}

/// A sink that fails past [`MAX_PAYLOAD`] bytes and remembers that it did.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.bytes.len() + buf.len()) as u64 > MAX_PAYLOAD {
            self.overflowed = true;
            return Err(std::io::Error::other("decompressed payload too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
