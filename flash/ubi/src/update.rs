//! Volume content replacement through UBI_IOCVOLUP, and plain volume reads.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::{sys, volume_node, UbiError};

/// An update in progress: the kernel has marked the volume (upd_marker) and
/// expects exactly the announced number of bytes before it clears the mark.
///
/// Dropping it early leaves the volume damaged on purpose — that is what a
/// power cut would do, and the next update repairs it.
#[derive(Debug)]
pub struct VolumeWriter {
    file: File,
    path: PathBuf,
    announced: u64,
    written: u64,
}

/// Opens `/dev/ubiN_M` exclusively and announces `total_bytes` of new content.
pub fn start_update(
    root: &Path,
    ubi_num: u32,
    vol_id: u32,
    total_bytes: u64,
) -> Result<VolumeWriter, UbiError> {
    let path = volume_node(root, ubi_num, vol_id);
    let fd: OwnedFd = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|source| UbiError::Open {
            path: path.clone(),
            source,
        })?;
    sys::volup(&fd, total_bytes).map_err(|source| UbiError::Ioctl {
        op: "UBI_IOCVOLUP",
        path: path.clone(),
        what: format!("{total_bytes} bytes"),
        source,
    })?;
    Ok(VolumeWriter {
        file: File::from(fd),
        path,
        announced: total_bytes,
        written: 0,
    })
}

impl VolumeWriter {
    /// Bytes still expected by the kernel.
    pub fn remaining(&self) -> u64 {
        self.announced - self.written
    }

    /// Completes the update and makes it durable (`fsync` of a volume is
    /// `ubi_sync`, which syncs the MTD device below; block2mtd buffers writes
    /// until then); fails if fewer bytes than announced were written.
    pub fn finish(self) -> Result<(), UbiError> {
        if self.written != self.announced {
            return Err(UbiError::UpdateSize {
                path: self.path,
                announced: self.announced,
                written: self.written,
            });
        }
        self.file.sync_all().map_err(|source| UbiError::Write {
            path: self.path,
            source,
        })
    }
}

impl Write for VolumeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.remaining() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{}: more data than the {} bytes announced",
                    self.path.display(),
                    self.announced
                ),
            ));
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Opens `/dev/ubiN_M` for reading. Dynamic volumes read their whole reserved
/// size; static volumes read exactly their data.
pub fn open_volume_read(root: &Path, ubi_num: u32, vol_id: u32) -> Result<File, UbiError> {
    let path = volume_node(root, ubi_num, vol_id);
    let fd: OwnedFd = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|source| UbiError::Open { path, source })?;
    Ok(File::from(fd))
}

/// Writes all of `data` as the new content of a volume in one update.
pub fn write_volume(root: &Path, ubi_num: u32, vol_id: u32, data: &[u8]) -> Result<(), UbiError> {
    let mut w = start_update(root, ubi_num, vol_id, data.len() as u64)?;
    // Chunks of a LEB-ish size keep kernel buffering simple without a huge single write.
    for chunk in data.chunks(128 * 1024) {
        w.write_all(chunk).map_err(|source| UbiError::Write {
            path: w.path.clone(),
            source,
        })?;
    }
    w.finish()
}
