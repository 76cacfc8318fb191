//! `receive`: read a bundle stream, store what the device lacks, install the generation.
//!
//! Order of checks, all before the first write: stream header and manifest syntax, a trusted
//! signature, the board, the security epoch, free space. Then entries are restored into staging,
//! each verified against the manifest's NAR hash and size before it is renamed into the store,
//! and the new generation's record is read and checked before any generation is written.
//!
//! A refusal leaves the device as it was: the store directories made for the transfer, the
//! staging directory and the store paths this transfer added are removed again. The one
//! exception is a cut transfer (the stream ended early or broke): the paths it verified stay,
//! complete and named by no generation, so that the retry sends only the rest.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;

use liminix_bundle::delta;
use liminix_bundle::nar::{self, RestoreOptions};
use liminix_bundle::storepath::StorePath;
use liminix_bundle::stream::{ChunkReader, Encoding, EntryHeader, EntryKind, Header};
use liminix_bundle::wire::{AgentEvent, DeltaBase};
use liminix_bundle::Manifest;

use crate::closure::generations::{GenerationInfo, Generations, NewGeneration, Record};
use crate::closure::store::Store;
use crate::closure::{bases, patch};
use crate::error::{truncation_or, AgentError, ErrorKind, PayloadError, Result, UsageError};
use crate::root::DeviceRoot;
use crate::staging::free_space;

/// Staged paths are committed in batches so an interrupted transfer keeps most of its work.
const BATCH_BYTES: u64 = 4 << 20;
/// Room for generation records and directory growth on top of the payload.
const SPACE_MARGIN: u64 = 1 << 20;
/// Largest base NAR an `LXD1` delta (encoding 2) may use: the decoder holds all of it in
/// memory. `LXP1` patches (encoding 3) read any base in bounded windows.
pub const LXD1_BASE_MAX: u64 = 8 << 20;

pub struct Received {
    pub manifest: Manifest,
    pub generation: u32,
    pub changed: bool,
}

/// Sends protocol events to the client (stdout) and progress words to a human (stderr).
pub struct Events<'a> {
    pub out: &'a mut dyn Write,
}

impl Events<'_> {
    pub fn send(&mut self, e: &AgentEvent) -> Result<()> {
        let line = e.to_line();
        self.out
            .write_all(line.as_bytes())
            .and_then(|_| self.out.flush())
            .map_err(AgentError::io("writing to", "stdout"))
    }
}

pub struct ReceiveOptions {
    pub now: u64,
    /// Offer delta bases up to this size (`Some(0)`: never; `None`: any size).
    pub delta_max: Option<u64>,
}

pub fn receive(
    root: &DeviceRoot,
    input: &mut dyn Read,
    events: &mut Events,
    o: &ReceiveOptions,
) -> Result<Received> {
    receive_or_plan(root, input, events, o, Mode::Install)
}

/// [`receive`] for `--try`: the generation is installed and recorded but not made current; the
/// caller boots it once ([`crate::trial::generation`]).
pub fn receive_for_trial(
    root: &DeviceRoot,
    input: &mut dyn Read,
    events: &mut Events,
    o: &ReceiveOptions,
) -> Result<Received> {
    receive_or_plan(root, input, events, o, Mode::Trial)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Install,
    Plan,
    Trial,
}

/// `receive --dry-run`: every check of [`receive`] and its `want` answer, then an `unchanged`
/// event if the bundle's generation is the current one. It stops before the first payload byte
/// and writes nothing (not even the tidying `receive` does first). In the result, `changed`
/// says whether `receive` would install a generation, and `generation` is the current one.
pub fn dry_run(
    root: &DeviceRoot,
    input: &mut dyn Read,
    events: &mut Events,
    o: &ReceiveOptions,
) -> Result<Received> {
    receive_or_plan(root, input, events, o, Mode::Plan)
}

fn receive_or_plan(
    root: &DeviceRoot,
    input: &mut dyn Read,
    events: &mut Events,
    o: &ReceiveOptions,
    mode: Mode,
) -> Result<Received> {
    let dry_run = mode == Mode::Plan;
    let now = o.now;
    let store = Store::open_locked(root)?;
    let gens = Generations::new(root);
    if !dry_run {
        gens.tidy()?;
        store.empty_trash()?;
    }
    let cut = Cell::new(false);
    let mut input = std::io::BufReader::with_capacity(128 << 10, Watched { input, cut: &cut });
    crate::steplog::log(root, "receive: start");
    let header = Header::read(&mut input)?;
    crate::verify::check_trust(root, &header)?;
    let m = &header.manifest;
    crate::steplog::log(
        root,
        &format!("receive: signature ok, {}", m.generation.toplevel),
    );
    if !m.has_closure() {
        return Err(UsageError::ImagesOnly.into());
    }
    crate::verify::check_board(root, m)?;
    let installed = gens.highest_epoch()?;
    if m.epoch < installed {
        return Err(AgentError::Epoch {
            bundle: m.epoch,
            installed,
        });
    }
    // The manifest was validated against the format's limits when it was read (`Header::read`):
    // its path count fits a `u32` and its sizes and counts sum without overflow.
    let want: Vec<u32> = (0u32..)
        .zip(&m.paths)
        .filter(|(_, p)| !store.has(&p.store_path()))
        .map(|(i, _)| i)
        .collect();
    check_space(&store, m, &want)?;
    let bytes = want.iter().fold(0u64, |sum, &i| {
        sum.saturating_add(m.paths[i as usize].nar_size)
    });
    let bases = delta_bases(root, &store, &gens, m, &want, o.delta_max)?;
    events.send(&AgentEvent::Want {
        paths: want.clone(),
        bytes,
        bases: bases.clone(),
    })?;
    if dry_run {
        return plan_only(&gens, m, events);
    }
    let mut added = Added::default();
    let fetched = fetch(&store, &gens, m, &want, &bases, &mut input, &mut added);
    let (copied, record) = match fetched {
        Ok(f) => f,
        Err(e) => {
            // The stream is read to its end (to refuse trailing data) before the record is
            // checked, so an end of input alone does not make a cut: the failure must be the
            // stream's own.
            let broke = matches!(
                e.kind(),
                ErrorKind::Corrupt | ErrorKind::Incomplete | ErrorKind::Io
            );
            added.undo(&store, cut.get() && broke);
            return Err(e);
        }
    };
    store.remove_staging()?;
    crate::steplog::log(root, &format!("receive: stored {} path(s)", copied.0));
    let switch = mode != Mode::Trial;
    let r = install(
        &store,
        &gens,
        m,
        Finish { now, switch },
        copied,
        &record,
        events,
    )?;
    let done = if switch {
        "switched to"
    } else {
        "installed, not current:"
    };
    crate::steplog::log(
        root,
        &format!("receive: {done} generation {}", r.generation),
    );
    Ok(r)
}

/// The end of a dry run: whether the bundle's generation is already current.
fn plan_only(gens: &Generations, m: &Manifest, events: &mut Events) -> Result<Received> {
    let top = &m.generation.toplevel;
    let current = gens.current();
    let same = current
        .filter(|&c| gens.check(c).ok().and_then(|i| i.toplevel).as_deref() == Some(top.as_str()));
    if let Some(generation) = same {
        events.send(&AgentEvent::Unchanged {
            generation,
            toplevel: top.clone(),
        })?;
    }
    Ok(Received {
        manifest: m.clone(),
        generation: current.unwrap_or(0),
        changed: same.is_none(),
    })
}

/// What a transfer added to the device, so that a refused one can take it back.
#[derive(Default)]
struct Added {
    /// Directories made for the store, deepest first.
    dirs: Vec<PathBuf>,
    /// Store paths renamed into the store.
    paths: Vec<StorePath>,
}

impl Added {
    /// Removes what the transfer added. Store paths verified before a cut transfer stay, so that
    /// the retry sends only the rest: each is complete and signed, and no generation names it.
    fn undo(&self, store: &Store, cut: bool) {
        let _ = store.remove_staging();
        if cut && !self.paths.is_empty() {
            return;
        }
        for p in self.paths.iter().rev() {
            let _ = store.delete(p);
        }
        let _ = store.empty_trash();
        crate::staging::remove_made(&self.dirs);
    }
}

/// The bundle stream, noting whether it ended early or broke (a cut transfer) rather than
/// carrying something the agent refuses.
struct Watched<'a> {
    input: &'a mut dyn Read,
    cut: &'a Cell<bool>,
}

impl Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = self.input.read(buf);
        match &r {
            Ok(0) if !buf.is_empty() => self.cut.set(true),
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted => self.cut.set(true),
            _ => {}
        }
        r
    }
}

/// Receives the wanted paths and reads the new generation's record: everything that can refuse
/// the bundle, before a generation is touched.
fn fetch(
    store: &Store,
    gens: &Generations,
    m: &Manifest,
    want: &[u32],
    bases: &[DeltaBase],
    input: &mut impl Read,
    added: &mut Added,
) -> Result<((u32, u64), Record)> {
    let copied = receive_entries(store, m, want, bases, input, added)?;
    for e in &m.paths {
        if !store.has(&e.store_path()) {
            return Err(AgentError::Incomplete {
                missing: 1,
                example: e.path.clone(),
            });
        }
    }
    Ok((copied, gens.prepare(&m.generation.toplevel)?))
}

fn check_space(store: &Store, m: &Manifest, want: &[u32]) -> Result<()> {
    let (available, block, inodes) = free_space(store.space_dir())?;
    let (needed, entries) = space_needed(m, want, block);
    if needed > available || inodes.is_some_and(|free| free < entries.saturating_add(64)) {
        return Err(AgentError::NoSpace {
            dir: store.dir().to_owned(),
            needed,
            available,
        });
    }
    Ok(())
}

/// Bytes (each entry rounded up to a block, plus the margin) and inodes the wanted paths take.
/// The limits keep these sums far below `u64::MAX` for any block size up to 4 GiB; a larger
/// block or an unvalidated manifest saturates, which no filesystem has room for.
fn space_needed(m: &Manifest, want: &[u32], block: u64) -> (u64, u64) {
    want.iter()
        .map(|&i| &m.paths[i as usize])
        .fold((SPACE_MARGIN, 0u64), |(bytes, entries), p| {
            let path_bytes = p.entries.saturating_mul(block).saturating_add(p.nar_size);
            (
                bytes.saturating_add(path_bytes),
                entries.saturating_add(p.entries),
            )
        })
}

/// For each wanted path, an older build of the same package that is here
/// ([`crate::closure::bases`]), within `--delta-max` when one is given.
fn delta_bases(
    root: &DeviceRoot,
    store: &Store,
    gens: &Generations,
    m: &Manifest,
    want: &[u32],
    delta_max: Option<u64>,
) -> Result<Vec<DeltaBase>> {
    if delta_max == Some(0) || want.is_empty() {
        return Ok(Vec::new());
    }
    let present = store.list()?;
    let ctx = bases::Context::load(root, gens);
    Ok(want
        .iter()
        .filter_map(|&i| {
            let sp = m.paths[i as usize].store_path();
            let base = bases::choose(&ctx, &sp, &present)?;
            let fits = delta_max
                .is_none_or(|max| crate::closure::gc::disk_usage(&store.path_of(base)) <= max);
            fits.then(|| DeltaBase {
                index: i,
                base: base.base_name(),
            })
        })
        .collect())
}

fn receive_entries(
    store: &Store,
    m: &Manifest,
    want: &[u32],
    bases: &[DeltaBase],
    input: &mut impl Read,
    added: &mut Added,
) -> Result<(u32, u64)> {
    if !want.is_empty() {
        added.dirs = store.create_dirs()?;
        store.reset_staging()?;
    }
    let staging = store.staging();
    let mut pending: BTreeSet<u32> = want.iter().copied().collect();
    let mut batch: Vec<StorePath> = Vec::new();
    let mut batch_bytes = 0u64;
    let mut copied = (0u32, 0u64);
    while let Some(entry) = EntryHeader::read(input, m)? {
        let mut chunks = ChunkReader::new(input);
        // Image entries belong to `apply`; their indices are into `images`, not `paths`.
        if entry.kind != EntryKind::StorePath || !pending.remove(&entry.index) {
            chunks.drain().map_err(|e| AgentError::Stream(e.into()))?;
            continue;
        }
        let pe = &m.paths[entry.index as usize];
        let sp = pe.store_path();
        let dest = staging.join(sp.base_name());
        let offered = bases
            .iter()
            .find(|b| b.index == entry.index)
            .map(|b| b.base.as_str());
        if let Err(e) = restore_entry(store, offered, &entry.encoding, &mut chunks, &dest, pe) {
            let _ = nar::remove_tree(&dest);
            return Err(truncation_or(&chunks, e));
        }
        // Bounded: each index is received once, and the manifest's counts and sizes are limited.
        copied.0 += 1;
        copied.1 += pe.nar_size;
        batch_bytes += pe.nar_size;
        batch.push(sp);
        if batch_bytes >= BATCH_BYTES {
            store.commit_staged(&batch)?;
            added.paths.append(&mut batch);
            batch_bytes = 0;
        }
    }
    store.commit_staged(&batch)?;
    added.paths.append(&mut batch);
    if let Some(first) = pending.first() {
        return Err(AgentError::Incomplete {
            missing: pending.len(),
            example: m.paths[*first as usize].path.clone(),
        });
    }
    Ok(copied)
}

fn restore_entry(
    store: &Store,
    offered: Option<&str>,
    enc: &Encoding,
    chunks: &mut ChunkReader<'_, impl Read>,
    dest: &std::path::Path,
    pe: &liminix_bundle::PathEntry,
) -> Result<()> {
    let opts = RestoreOptions {
        max_size: Some(pe.nar_size),
    };
    let bad = |source: PayloadError| AgentError::Payload {
        path: pe.path.clone(),
        source: Box::new(source),
    };
    let got = match enc {
        Encoding::Raw => {
            let h = nar::restore(chunks, dest, &opts).map_err(|e| bad(e.into()))?;
            expect_end(chunks).map_err(bad)?;
            h
        }
        Encoding::Zstd => {
            let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut *chunks)
                .map_err(|e| bad(PayloadError::Zstd(e)))?;
            let h = nar::restore(&mut dec, dest, &opts).map_err(|e| bad(e.into()))?;
            expect_end(&mut dec).map_err(bad)?;
            drop(dec);
            expect_end(chunks).map_err(bad)?;
            h
        }
        Encoding::ZstdDelta { base } => {
            let base_path = offered_base(store, offered, base).map_err(&bad)?;
            let base_nar = load_small_nar(&base_path, base).map_err(&bad)?;
            let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut *chunks)
                .map_err(|e| bad(PayloadError::Zstd(e)))?;
            let h = {
                let mut delta = delta::DeltaReader::new(&base_nar, &mut dec)
                    .map_err(|e| bad(PayloadError::Delta(e)))?;
                let h = nar::restore(&mut delta, dest, &opts).map_err(|e| bad(e.into()))?;
                expect_end(&mut delta).map_err(&bad)?;
                h
            };
            expect_end(&mut dec).map_err(&bad)?;
            drop(dec);
            expect_end(chunks).map_err(bad)?;
            h
        }
        Encoding::Patch { base } => {
            let base_path = offered_base(store, offered, base).map_err(&bad)?;
            let h = {
                let mut patched = patch::reader(&base_path, &mut *chunks)
                    .map_err(|e| bad(PayloadError::Delta(e)))?;
                let h = nar::restore(&mut patched, dest, &opts).map_err(|e| bad(e.into()))?;
                expect_end(&mut patched).map_err(&bad)?;
                h
            };
            expect_end(chunks).map_err(bad)?;
            h
        }
        // The stream refuses image patches in store path entries when it reads the header.
        Encoding::ImagePatch => return Err(bad(PayloadError::ImageDelta)),
    };
    if got.sha256 != pe.sha256() || got.size != pe.nar_size {
        return Err(bad(PayloadError::NarMismatch {
            got_sha256: got.sha256,
            got_size: got.size,
            want_sha256: pe.nar_sha256.clone(),
            want_size: pe.nar_size,
        }));
    }
    Ok(())
}

/// The store path of the base a delta names, which must be the one offered for its index.
fn offered_base(
    store: &Store,
    offered: Option<&str>,
    base: &str,
) -> std::result::Result<PathBuf, PayloadError> {
    if offered != Some(base) {
        return Err(PayloadError::NotOffered(base.to_owned()));
    }
    Ok(store.path_of(&StorePath::from_base_name(base)?))
}

/// The base NAR of an `LXD1` delta, which its decoder holds whole: refused over
/// [`LXD1_BASE_MAX`] before it is read into memory.
fn load_small_nar(
    path: &std::path::Path,
    base: &str,
) -> std::result::Result<Vec<u8>, PayloadError> {
    let failed = |source| PayloadError::Base {
        base: base.to_owned(),
        source,
    };
    let size = nar::hash_path(path).map_err(failed)?.size;
    if size > LXD1_BASE_MAX {
        return Err(PayloadError::Delta(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("an LXD1 delta against a base NAR of {size} bytes, over the {LXD1_BASE_MAX}-byte limit of that encoding"),
        )));
    }
    let mut nar = Vec::new();
    nar::dump(path, &mut nar).map_err(failed)?;
    Ok(nar)
}

/// The entry must hold exactly one NAR: trailing bytes mean a corrupt or crafted stream.
fn expect_end(r: &mut impl Read) -> std::result::Result<(), PayloadError> {
    let mut probe = [0u8; 1];
    loop {
        match r.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(PayloadError::Trailing),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PayloadError::Read(e)),
        }
    }
}

/// When the install happens, and whether it makes the generation current (not for `--try`).
struct Finish {
    now: u64,
    switch: bool,
}

fn install(
    store: &Store,
    gens: &Generations,
    m: &Manifest,
    Finish { now, switch }: Finish,
    copied: (u32, u64),
    record: &Record,
    events: &mut Events,
) -> Result<Received> {
    let present: Vec<String> = store.list()?.iter().map(|p| p.to_string()).collect();
    gens.adopt_existing(now, &present)?;
    let top = &m.generation.toplevel;
    if let Some(cur) = gens.current() {
        // A damaged current record is replaced, not a reason to refuse.
        if gens.check(cur).ok().and_then(|i| i.toplevel).as_deref() == Some(top.as_str()) {
            events.send(&AgentEvent::Unchanged {
                generation: cur,
                toplevel: top.clone(),
            })?;
            return Ok(Received {
                manifest: m.clone(),
                generation: cur,
                changed: false,
            });
        }
    }
    if !switch {
        // Trying again what an earlier trial installed: the record is there already.
        let earlier = gens
            .list()?
            .into_iter()
            .rev()
            .find(|g| g.toplevel.as_ref() == Some(top));
        if let Some(g) = earlier {
            return installed(m, g, copied, events);
        }
    }
    let n = gens.create_from(
        &NewGeneration {
            toplevel: top,
            board: &m.board,
            epoch: m.epoch,
            build_time: m.generation.build_time,
            now,
        },
        record,
    )?;
    if switch {
        gens.switch_to(n)?;
    }
    installed(m, gens.info(n)?, copied, events)
}

fn installed(
    m: &Manifest,
    info: GenerationInfo,
    copied: (u32, u64),
    events: &mut Events,
) -> Result<Received> {
    events.send(&AgentEvent::Installed {
        generation: info.number,
        toplevel: m.generation.toplevel.clone(),
        link: info.link.unwrap_or_default(),
        copied_paths: copied.0,
        copied_bytes: copied.1,
    })?;
    Ok(Received {
        manifest: m.clone(),
        generation: info.number,
        changed: true,
    })
}
