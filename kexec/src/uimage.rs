//! The kernel payload of a legacy U-Boot image, for kexec: the header and its CRCs are
//! `liminix_uimage`'s (the packer writes with the same crate); this module accepts kernels
//! only and decompresses their payload within a bound.

use std::io::Read;

use liminix_uimage::TYPE_KERNEL;
pub use liminix_uimage::{is_uimage, MAGIC};

use crate::KexecError;

/// Larger payloads are refused rather than decompressed without end.
const MAX_PAYLOAD: u64 = 128 << 20;

#[derive(Debug)]
pub struct UImage<'a> {
    pub load: u32,
    pub entry: u32,
    pub compression: u8,
    pub data: &'a [u8],
}

/// Checks header and data checksums and that this is a kernel image.
pub fn parse(image: &[u8]) -> Result<UImage<'_>, KexecError> {
    let bad = |m: String| KexecError::Malformed(format!("uImage: {m}"));
    let (header, data) = liminix_uimage::read(image).map_err(|e| bad(e.to_string()))?;
    if header.kind != TYPE_KERNEL {
        return Err(bad(format!(
            "image type {} is not a kernel ({TYPE_KERNEL})",
            header.kind
        )));
    }
    Ok(UImage {
        load: header.load,
        entry: header.entry,
        compression: header.compression,
        data,
    })
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
