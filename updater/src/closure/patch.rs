//! Decoding an `LXP1` patch of a store path (encoding 3) against the NAR of an older build on
//! the device, with memory bounded by the patch's window and segment limits whatever the size
//! of the base: the base NAR is checked in one streaming pass and then read once more, front to
//! back, by a thread that serialises it into a bounded channel.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use liminix_bundle::delta_patch::{PatchHeader, PatchReader, SequentialBase};
use liminix_bundle::nar;

/// Chunks in flight between the serialising thread and the decoder (64 KiB each).
const IN_FLIGHT: usize = 4;

/// The NAR of a store path as a reader, made by a thread.
pub struct NarStream {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

struct Sender(SyncSender<io::Result<Vec<u8>>>);

impl Write for Sender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The reader hung up (it failed or finished): stop serialising.
        self.0
            .send(Ok(buf.to_vec()))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl NarStream {
    pub fn spawn(path: PathBuf) -> NarStream {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        std::thread::spawn(move || {
            let mut out = io::BufWriter::with_capacity(64 << 10, Sender(tx.clone()));
            let done = nar::dump(&path, &mut out)
                .map(|_| ())
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|()| out.flush());
            if let Err(e) = done {
                let _ = tx.send(Err(e));
            }
        });
        NarStream {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for NarStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.at = 0;
                }
                // The thread finished: the NAR is complete.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Checks that the store path at `base` is the patch's base (length and sha256 of its NAR),
/// then returns the reader of the patched NAR.
pub fn reader<R: Read>(
    base: &Path,
    mut patch: R,
) -> io::Result<PatchReader<R, SequentialBase<NarStream>>> {
    let header = PatchHeader::read(&mut patch)?;
    check_nar(base, &header)?;
    let stream = SequentialBase::new(NarStream::spawn(base.to_owned()));
    PatchReader::new(header, patch, stream)
}

fn check_nar(base: &Path, header: &PatchHeader) -> io::Result<()> {
    let got = nar::hash_path(base).map_err(|e| io::Error::other(e.to_string()))?;
    if got.size != header.base_len || got.sha256 != header.base_sha256 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "patch: made against a different base than the one on this device",
        ));
    }
    Ok(())
}
