//! Builds a signed bundle from fuzz bytes: a manifest whose every number, name and count the
//! input chooses (real values, limits, limits plus one, `u64::MAX`…), signed with a fixed test
//! key so that the readers go past the signature, and a payload of real, truncated, padded or
//! arbitrary entries.

use std::io::Write;

use liminix_bundle::manifest::{Generation, ImageEntry, Manifest, PathEntry, FORMAT_VERSION};
use liminix_bundle::stream::{self, ChunkWriter, Encoding, EntryHeader, EntryKind};
use liminix_bundle::{SecretKey, Signature};
use sha2::{Digest, Sha256};

use super::fixture::{Fixture, StorePathFixture, BOARD, IMAGE};

/// Reads choices from the fuzz input; past its end every choice is the first option.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn byte(&mut self) -> u8 {
        let (&b, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        b
    }

    /// One of `n` equally likely answers, `0..n`.
    fn choice(&mut self, n: u8) -> u8 {
        self.byte() % n
    }

    /// True once in `n`.
    fn one_in(&mut self, n: u8) -> bool {
        self.choice(n) == 0
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |v, _| (v << 8) | u64::from(self.byte()))
    }

    fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[usize::from(self.byte()) % options.len()]
    }

    /// Up to `max` bytes of the input, as they are.
    fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.byte()).min(max).min(self.data.len());
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken
    }

    /// A number for a field whose true value is `real`: hostile ones are as likely as the truth.
    fn number(&mut self, real: u64) -> u64 {
        let limits = liminix_bundle::limits::LIMITS;
        match self.byte() % 12 {
            0..=3 => real,
            4 => 0,
            5 => real.wrapping_add(1),
            6 => real.saturating_sub(1),
            7 => limits.max_total_bytes,
            8 => limits.max_total_bytes + 1,
            9 => u64::MAX,
            10 => u64::MAX - real,
            _ => self.u64(),
        }
    }
}

/// The key every fuzz bundle is signed with (the device roots trust it).
pub fn test_key(fx: &Fixture) -> SecretKey {
    SecretKey::load(&fx.key_file).expect("the fixture's key file is valid")
}

fn path_entry(input: &mut Input, p: &StorePathFixture) -> PathEntry {
    PathEntry {
        path: p.path.to_owned(),
        nar_sha256: if input.one_in(8) {
            "00".repeat(32)
        } else {
            hex::encode(Sha256::digest(&p.nar))
        },
        nar_size: input.number(p.nar.len() as u64),
        entries: input.number(p.entries),
    }
}

/// Many made-up paths: the counts past the limits.
fn flood(input: &mut Input) -> Vec<PathEntry> {
    let n = usize::from(input.byte()) * 80;
    (0..n)
        .map(|i| PathEntry {
            path: format!("/nix/store/{}-flood-{i:06}", "f".repeat(32)),
            nar_sha256: "ab".repeat(32),
            nar_size: 1 << 30,
            entries: 1 << 20,
        })
        .collect()
}

fn manifest(input: &mut Input, fx: &Fixture) -> Manifest {
    let mut paths: Vec<PathEntry> = Vec::new();
    for p in &fx.paths {
        if !input.one_in(4) {
            paths.push(path_entry(input, p));
        }
    }
    if input.one_in(16) {
        paths.extend(flood(input));
    }
    paths.sort_by(|a, b| a.path.cmp(&b.path));
    let mut images = Vec::new();
    if input.one_in(2) {
        images.push(ImageEntry {
            name: IMAGE.into(),
            target: format!("mtd:{IMAGE}"),
            sha256: hex::encode(Sha256::digest(&fx.image)),
            size: input.number(fx.image.len() as u64),
            base: None,
        });
    }
    let toplevel = match input.byte() % 4 {
        0 if paths.is_empty() => String::new(),
        0 | 1 => fx.paths[1].path.to_owned(),
        2 => fx.paths[0].path.to_owned(),
        _ => String::new(),
    };
    Manifest {
        format: FORMAT_VERSION,
        board: input.pick(&[BOARD, BOARD, "other-board"]).to_owned(),
        generation: Generation {
            toplevel,
            build_time: input.number(1_700_000_000),
        },
        epoch: input.number(1),
        paths,
        images,
    }
}

/// The manifest bytes: a structured manifest, or (rarely) arbitrary bytes from the input.
fn manifest_bytes(input: &mut Input, fx: &Fixture) -> Vec<u8> {
    if input.one_in(16) {
        return input.bytes(255).to_vec();
    }
    serde_json::to_vec(&manifest(input, fx)).expect("manifests serialise")
}

fn signatures(input: &mut Input, key: &SecretKey, manifest: &[u8]) -> Vec<Signature> {
    let good = key.sign_manifest(manifest);
    match input.byte() % 8 {
        0 => Vec::new(),
        1 => {
            let mut bad = good.clone();
            bad.signature = "00".repeat(64);
            vec![bad]
        }
        _ => vec![good],
    }
}

/// One payload entry: a real body (of a path or the image), cut short, padded, or arbitrary.
fn entry(input: &mut Input, fx: &Fixture, out: &mut Vec<u8>) {
    let kind = input.pick(&[EntryKind::StorePath, EntryKind::StorePath, EntryKind::Image]);
    let index = u32::from(input.pick(&[0u8, 0, 1, 2, 255]));
    let body: &[u8] = match kind {
        EntryKind::StorePath => fx
            .paths
            .get(index as usize)
            .map_or(&[][..], |p| p.nar.as_slice()),
        EntryKind::Image => &fx.image,
    };
    let mut body = body.to_vec();
    match input.byte() % 8 {
        0 => body.truncate(usize::from(input.byte()) * 16),
        1 => body.extend_from_slice(input.bytes(64)),
        2 => body = input.bytes(255).to_vec(),
        _ => {}
    }
    let encoding = if input.byte() % 3 == 2 {
        Encoding::Zstd
    } else {
        Encoding::Raw
    };
    if input.one_in(32) {
        // An entry header the reader must refuse: unknown kind or encoding.
        out.extend_from_slice(&[input.pick(&[3u8, 255]), 0, 0, 0, 0, 7]);
        return;
    }
    let header = EntryHeader {
        kind,
        index,
        encoding: encoding.clone(),
    };
    header.write(out).expect("writing to memory");
    let mut framed = ChunkWriter::new(&mut *out);
    if encoding == Encoding::Zstd {
        body = zstd::encode_all(body.as_slice(), 1).expect("compressing in memory");
    }
    framed.write_all(&body).expect("writing to memory");
    framed.finish().expect("writing to memory");
}

/// A whole bundle stream built from `input`, signed with the fixture's key.
pub fn build(input: &mut Input, fx: &Fixture) -> Vec<u8> {
    let key = test_key(fx);
    let manifest_bytes = manifest_bytes(input, fx);
    let signatures = signatures(input, &key, &manifest_bytes);
    let mut out = Vec::new();
    write_header(&mut out, &manifest_bytes, &signatures);
    for _ in 0..input.byte() % 6 {
        entry(input, fx, &mut out);
    }
    match input.byte() % 8 {
        0 => {}
        1 => {
            stream::write_end(&mut out).expect("writing to memory");
            out.extend_from_slice(input.bytes(16));
        }
        _ => stream::write_end(&mut out).expect("writing to memory"),
    }
    if input.one_in(8) {
        let cut = usize::from(input.byte()) * out.len() / 256;
        out.truncate(cut);
    }
    out
}

/// The header as `Header::write` frames it, for manifest bytes that need not parse.
fn write_header(out: &mut Vec<u8>, manifest: &[u8], signatures: &[Signature]) {
    out.extend_from_slice(stream::MAGIC);
    out.extend_from_slice(&stream::STREAM_VERSION.to_le_bytes());
    let sigs = serde_json::to_vec(signatures).expect("signatures serialise");
    for block in [manifest, &sigs] {
        let len = u32::try_from(block.len()).expect("fuzz blocks are small");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(block);
    }
}
