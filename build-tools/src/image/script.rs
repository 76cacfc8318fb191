//! U-Boot script images (`flash.scr`, `boot.scr`): a legacy uImage of type script whose
//! payload is a table of lengths ended by a zero, then the script text; `source ADDR` runs
//! the first (here the only) entry.

use super::uimage::{self, Header};
use super::{len32, Arch, Compression, ImageError, Payload};

/// The script image for `text`. Scripts do not run from a load address: both are zero, as
/// mkimage writes them.
pub fn write(name: &str, arch: Arch, time: u32, text: &str) -> Result<Vec<u8>, ImageError> {
    let header = Header {
        name: name.to_owned(),
        arch,
        payload: Payload::Script,
        compression: Compression::None,
        load: 0,
        entry: 0,
        time,
    };
    uimage::write(&header, &payload(text)?)
}

fn payload(text: &str) -> Result<Vec<u8>, ImageError> {
    let mut data = Vec::with_capacity(8 + text.len());
    data.extend_from_slice(&len32("script", text.len())?.to_be_bytes());
    data.extend_from_slice(&0u32.to_be_bytes());
    data.extend_from_slice(text.as_bytes());
    Ok(data)
}
