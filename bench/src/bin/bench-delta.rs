//! What `update.sh` and `liminix-pack bundle --delta-base` send for one path or image, and the
//! device's decoding of it, with the encoders and decoders they use. Run by `bench/delta.sh`:
//!
//! ```text
//! bench-delta encode BASE NEW OUT   the smallest of: the whole NAR or image as one zstd -19 frame
//!                                   (a bundle entry), an LXD1 delta (zstd -9; store paths with a
//!                                   base NAR up to 8 MiB) and an LXP1 patch; writes its payload, prints "BYTES KIND"
//! bench-delta decode BASE PATCH OUT decodes an LXP1 payload as the agent does (a store path's NAR
//!                                   streamed by a thread, or an image file read front to back)
//!                                   and restores the NAR at OUT (or writes the image), printing
//!                                   the seconds it took
//! ```
//! bench-delta nar DIR OUT          writes the NAR of a store path (for the zstd tool)
//! BASE and NEW are store path directories (their NARs are compared) or image files.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use liminix_bundle::delta_patch::{self, PatchHeader, PatchReader, SequentialBase};
use liminix_bundle::nar::{self, RestoreOptions};
use liminix_bundle::{delta, stream::ChunkWriter};

fn bytes_of(p: &Path) -> Vec<u8> {
    if p.is_dir() {
        let mut out = Vec::new();
        nar::dump(p, &mut out).expect("serialise the store path");
        out
    } else {
        std::fs::read(p).expect("read the image")
    }
}

/// Payload bytes plus the chunk framing an entry adds (4 bytes per MiB and the terminator).
fn framed(payload: &[u8]) -> usize {
    let mut w = ChunkWriter::new(Vec::new());
    w.write_all(payload).unwrap();
    w.finish().unwrap().len()
}

fn encode(base: &Path, new: &Path, out: &Path) {
    let (b, n) = (bytes_of(base), bytes_of(new));
    let whole = zstd::bulk::compress(&n, 19).unwrap();
    let mut best = (framed(&whole), "whole", whole);
    // LXD1 exists for store paths only (bases up to 8 MiB); images are whole or LXP1.
    if base.is_dir() && b.len() <= 8 << 20 {
        let ops = zstd::bulk::compress(&delta::encode(&b, &n), 9).unwrap();
        if framed(&ops) < best.0 {
            best = (framed(&ops), "lxd1", ops);
        }
    }
    let patch = delta_patch::encode(&b, &n, 19).unwrap();
    if framed(&patch) < best.0 {
        best = (framed(&patch), "lxp1", patch);
    }
    std::fs::write(out, &best.2).unwrap();
    // The entry header: kind, index, encoding, and for a store path delta the base's name.
    let name = base.file_name().map_or(0, |n| n.len());
    let header = if best.1 == "whole" || !base.is_dir() {
        6
    } else {
        8 + name
    };
    println!("{} {}", best.0 + header, best.1);
}

fn decode(base: &Path, patch: &Path, out: &Path) {
    let start = Instant::now();
    let mut input = io::BufReader::new(File::open(patch).unwrap());
    if base.is_dir() {
        let mut r = liminix_agent::closure::patch::reader(base, &mut input).unwrap();
        let opts = RestoreOptions { max_size: None };
        nar::restore(&mut r, out, &opts).unwrap();
    } else {
        let header = PatchHeader::read(&mut input).unwrap();
        delta_patch::check_base(&header, &mut File::open(base).unwrap()).unwrap();
        let seq = SequentialBase::new(io::BufReader::new(File::open(base).unwrap()));
        let mut r = PatchReader::new(header, input, seq).unwrap();
        io::copy(&mut r, &mut File::create(out).unwrap()).unwrap();
    }
    println!("{:.3}", start.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let a: Vec<&Path> = args.iter().skip(2).map(Path::new).collect();
    match (args.get(1).map(String::as_str), a.as_slice()) {
        (Some("encode"), [base, new, out]) => encode(base, new, out),
        (Some("decode"), [base, patch, out]) => decode(base, patch, out),
        (Some("nar"), [dir, out]) => std::fs::write(out, bytes_of(dir)).unwrap(),
        _ => {
            eprintln!(
                "usage: bench-delta encode BASE NEW OUT | decode BASE PATCH OUT | nar DIR OUT"
            );
            std::process::exit(2);
        }
    }
}
