//! Header, manifest and entry framing of an untrusted bundle stream: never panics, never allocates
//! past the documented limits.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use liminix_bundle::stream::{ChunkReader, EntryHeader, Header};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    let Ok(h) = Header::read(&mut r) else { return };
    while let Ok(Some(_)) = EntryHeader::read(&mut r, &h.manifest) {
        let mut sink = Vec::new();
        if ChunkReader::new(&mut r).read_to_end(&mut sink).is_err() {
            return;
        }
    }
});
