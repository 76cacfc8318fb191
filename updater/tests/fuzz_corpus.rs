//! The `signed_bundle` fuzz target's properties (`liminix_agent::fuzzing`) over the fixed corpus
//! in `tests/fuzz-corpus/signed_bundle/` and a pseudo-random one, so every `cargo test` runs
//! them. Inputs named `hostile-*` (huge sizes and counts, sums past the limits, truncated and
//! padded payloads, bad signatures) must be refused by `verify`, `receive` and `apply`, and none
//! may allocate more than a fixed bound while being read; `valid-*` inputs must be accepted.

use std::path::PathBuf;

use liminix_agent::fuzzing::{signed_bundle, Outcome};
use peak_alloc::PeakAlloc;

/// Counts live heap bytes and their peak, so the test sees what one input allocated.
#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Heap a hostile bundle may cost all three readers together, its own bytes included: the
/// largest manifest (4 MiB) is read and parsed once per reader, the NOR simulator is 4 MiB.
const HEAP_BOUND: usize = 48 << 20;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus/signed_bundle")
}

/// Runs one input, returning its outcome and the heap it took above what was live before.
fn run(data: &[u8]) -> (Outcome, usize) {
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let outcome = signed_bundle(data);
    (outcome, HEAP.peak_usage().saturating_sub(before))
}

/// One test, so that no other test's allocations run in parallel with the peak measurement.
#[test]
fn corpus_inputs_keep_the_properties() {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus is in the repository");
    let mut hostile = 0;
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let (o, heap) = run(&std::fs::read(file).unwrap());
        println!(
            "{name}: {} bytes, peak heap {} KiB",
            o.bundle_len,
            heap >> 10
        );
        assert!(heap < HEAP_BOUND, "{name} took {heap} bytes of heap: {o:?}");
        if name.starts_with("hostile-") {
            hostile += 1;
            let refused = o.verify.is_err() && o.receive.is_err() && o.apply.is_err();
            assert!(refused, "{name} must be refused by every reader: {o:?}");
        }
        if name.starts_with("valid-") {
            assert!(o.verify.is_ok(), "{name}: {o:?}");
            assert!(o.receive.is_ok() || o.apply.is_ok(), "{name}: {o:?}");
        }
    }
    assert!(hostile >= 20);
    pseudo_random_inputs();
}

/// Valid seeds with bytes flipped by a fixed generator: reaches the paths between "all good"
/// and "refused at the first byte".
fn pseudo_random_inputs() {
    let seeds: Vec<Vec<u8>> = ["valid-closure", "valid-image"]
        .iter()
        .map(|n| std::fs::read(corpus_dir().join(n)).unwrap())
        .collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..200 {
        let mut data = seeds[i % 2].clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % data.len() as u64) as usize;
            data[at] = next() as u8;
        }
        let (o, heap) = run(&data);
        assert!(heap < HEAP_BOUND, "{data:?} took {heap} bytes: {o:?}");
    }
}
