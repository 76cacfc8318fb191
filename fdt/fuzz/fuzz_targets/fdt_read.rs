//! An untrusted blob (the running kernel's, a board file's): reading never panics, and what
//! reads as a tree writes back to a blob that reads as the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = liminix_fdt::read(data) else {
        return;
    };
    if let Ok(blob) = liminix_fdt::write(&tree) {
        assert_eq!(liminix_fdt::read(&blob).ok().as_ref(), Some(&tree));
    }
});
