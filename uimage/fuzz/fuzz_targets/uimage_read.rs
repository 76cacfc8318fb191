//! An untrusted image (the front of a firmware partition, a file given to the packer): reading
//! never panics, and what reads as an image writes back to the same header and payload.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((header, payload)) = liminix_uimage::read(data) else {
        return;
    };
    // A name read up to its NUL may be lossily decoded; only names that survive round-trip.
    if let Ok(image) = liminix_uimage::write(&header, payload) {
        let (again, bytes) = liminix_uimage::read(&image).expect("a written image reads");
        assert_eq!((again, bytes), (header, payload));
    }
});
