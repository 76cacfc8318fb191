//! Payload compressors. lzma is what the MIPS boards' U-Boot boots; gzip the others'.
//!
//! Crates: `liblzma` is the maintained binding to xz-utils' liblzma (the reference LZMA
//! implementation, the one the `lzma` command uses); its "lzma_alone" encoder writes the 13-byte
//! `.lzma` header (properties, dictionary size, unknown size with an end marker) that U-Boot's
//! LZMA SDK decoder reads. `flate2` is the usual gzip writer; with no file name and mtime 0 its
//! header carries nothing that varies between builds.

use std::io::Write;

use super::{Compression, ImageError};

/// xz's default level: an 8 MiB dictionary covers a router kernel whole, and the encoder needs
/// about 94 MiB, where level 9 would need 674 MiB.
const LZMA_PRESET: u32 = 6;

/// `data` compressed the way `compression` names (unchanged for `None`).
pub fn compress(data: &[u8], compression: Compression) -> Result<Vec<u8>, ImageError> {
    match compression {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => gzip(data).map_err(|source| ImageError::Compress {
            method: "gzip",
            source,
        }),
        Compression::Lzma => lzma(data).map_err(|source| ImageError::Compress {
            method: "lzma",
            source,
        }),
    }
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    enc.finish()
}

fn lzma(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let options = liblzma::stream::LzmaOptions::new_preset(LZMA_PRESET)?;
    let stream = liblzma::stream::Stream::new_lzma_encoder(&options)?;
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    enc.write_all(data)?;
    enc.finish()
}
