//! `SimUbi`: an in-memory UBI device with the kernel's user-visible semantics.
//!
//! * Volumes reserve whole LEBs from a pool; removal returns them.
//! * `rename_volumes` is one atomic volume-table write; a target name held by
//!   a volume that is not itself renamed deletes that volume (as `UBI_IOCRNVOL`).
//! * A volume update sets the update marker and unmaps every LEB (one
//!   volume-table operation), then writes LEB by LEB (one operation per mapped
//!   LEB; trailing 0xFF bytes are not written and all-0xFF LEBs stay unmapped),
//!   then clears the marker (one operation). While the marker is set the
//!   volume cannot be read; an update dropped early leaves it set.
//! * Operations counted on the power rail: make, remove, rename, update start,
//!   each LEB write, update finish, sync. A torn LEB write stores half the LEB.
//!   A torn volume-table write (make/remove/rename/marker) either does not take
//!   effect or takes full effect, chosen with [`VtblTear`] (UBI keeps two
//!   copies of the table, so both outcomes occur on real devices).
//! * Durability: what a cut does to the changes since the last [`Ubi::sync`] is
//!   the rail's [`Unsynced`](crate::power::Unsynced) setting (UBI on block2mtd
//!   loses them); the device takes them back at its first use after the cut.

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::cache::WriteCache;
use crate::power::{PowerRail, Tick};
use crate::ubi::{Ubi, UbiError, UbiVolume, VolKind, VolumeUpdate};

/// Outcome of a volume-table write interrupted by a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VtblTear {
    /// The old table survives: the torn operation did not happen.
    #[default]
    OldWins,
    /// The new table was complete: the operation happened, then power failed.
    NewWins,
}

#[derive(Debug, Clone)]
struct SimVol {
    name: String,
    kind: VolKind,
    /// Static volumes: bytes of the last completed update.
    data_len: u64,
    reserved_lebs: u64,
    lebs: Vec<Option<Vec<u8>>>,
    upd_marker: bool,
}

type Volumes = BTreeMap<u32, SimVol>;

/// One change of the device as it reached the flash, to replay after a cut.
#[derive(Debug, Clone)]
enum VolWrite {
    Make {
        id: u32,
        name: String,
        lebs: u64,
        kind: VolKind,
    },
    Remove {
        id: u32,
    },
    Rename(Vec<(u32, String)>),
    Start {
        id: u32,
    },
    Leb {
        id: u32,
        lnum: usize,
        data: Vec<u8>,
    },
    Finish {
        id: u32,
        total: u64,
    },
}

/// Apply one change; the caller checked it (a replay after a cut may meet a
/// volume whose making was lost, and then changes nothing).
fn apply(vols: &mut Volumes, w: &VolWrite) {
    match w {
        VolWrite::Make {
            id,
            name,
            lebs,
            kind,
        } => {
            let vol = SimVol {
                name: name.clone(),
                kind: *kind,
                data_len: 0,
                reserved_lebs: *lebs,
                lebs: vec![None; *lebs as usize],
                upd_marker: false,
            };
            vols.insert(*id, vol);
        }
        VolWrite::Remove { id } => {
            vols.remove(id);
        }
        VolWrite::Rename(renames) => {
            let _ = rename_in(vols, renames);
        }
        VolWrite::Start { id } => {
            if let Some(v) = vols.get_mut(id) {
                v.upd_marker = true;
                v.lebs.iter_mut().for_each(|l| *l = None);
            }
        }
        VolWrite::Leb { id, lnum, data } => {
            if let Some(leb) = vols.get_mut(id).and_then(|v| v.lebs.get_mut(*lnum)) {
                *leb = Some(data.clone());
            }
        }
        VolWrite::Finish { id, total } => {
            if let Some(v) = vols.get_mut(id) {
                v.upd_marker = false;
                v.data_len = *total;
            }
        }
    }
}

/// `UBI_IOCRNVOL` semantics on `vols`.
fn rename_in(vols: &mut Volumes, renames: &[(u32, String)]) -> Result<(), UbiError> {
    for (i, (id, name)) in renames.iter().enumerate() {
        if !vols.contains_key(id) {
            return Err(UbiError::NoVolume(*id));
        }
        let dup = renames[..i].iter().any(|(j, n)| j == id || n == name);
        if dup || name.is_empty() || name.len() > 127 {
            return Err(UbiError::Invalid(format!("rename of {id} to {name:?}")));
        }
    }
    let renamed: Vec<u32> = renames.iter().map(|r| r.0).collect();
    let victims: Vec<u32> = vols
        .iter()
        .filter(|(id, v)| !renamed.contains(id) && renames.iter().any(|r| r.1 == v.name))
        .map(|(id, _)| *id)
        .collect();
    for id in victims {
        vols.remove(&id);
    }
    for (id, name) in renames {
        if let Some(v) = vols.get_mut(id) {
            v.name = name.clone();
        }
    }
    Ok(())
}

/// In-memory UBI device.
#[derive(Debug)]
pub struct SimUbi {
    leb_size: u64,
    total_lebs: u64,
    vols: Volumes,
    rail: PowerRail,
    tear: VtblTear,
    leb_writes: u64,
    cache: WriteCache<Volumes, VolWrite>,
}

impl SimUbi {
    /// A device with `total_lebs` LEBs of `leb_size` usable bytes available for volumes.
    pub fn new(total_lebs: u64, leb_size: u64) -> Self {
        SimUbi {
            leb_size,
            total_lebs,
            vols: BTreeMap::new(),
            rail: PowerRail::new(),
            tear: VtblTear::default(),
            leb_writes: 0,
            cache: WriteCache::default(),
        }
    }

    /// Share `rail` with other simulated parts.
    pub fn with_rail(mut self, rail: PowerRail) -> Self {
        self.rail = rail;
        self
    }

    /// Choose what a torn volume-table write leaves behind.
    pub fn set_vtbl_tear(&mut self, tear: VtblTear) {
        self.tear = tear;
    }

    /// The power rail.
    pub fn rail(&self) -> &PowerRail {
        &self.rail
    }

    /// Number of completed LEB writes (for benches).
    pub fn leb_writes(&self) -> u64 {
        self.leb_writes
    }

    /// Create a dynamic volume holding `data`, without counting operations (factory image).
    pub fn load_volume(&mut self, name: &str, bytes: u64, data: &[u8]) -> u32 {
        self.load_volume_kind(name, bytes, VolKind::Dynamic, data)
    }

    /// Create a volume of `kind` holding `data`, without counting operations.
    pub fn load_volume_kind(&mut self, name: &str, bytes: u64, kind: VolKind, data: &[u8]) -> u32 {
        self.settle();
        let (id, lebs) = self
            .new_volume(name, bytes)
            .expect("factory volume must fit");
        let leb = self.leb_size as usize;
        let mut writes = vec![VolWrite::Make {
            id,
            name: name.to_string(),
            lebs,
            kind,
        }];
        for (lnum, chunk) in data.chunks(leb).enumerate() {
            let data = chunk.to_vec();
            writes.push(VolWrite::Leb { id, lnum, data });
        }
        let total = data.len() as u64;
        writes.push(VolWrite::Finish { id, total });
        for w in &writes {
            apply(&mut self.vols, w);
            if let Some(synced) = self.cache.synced_state() {
                apply(synced, w);
            }
        }
        id
    }

    fn used_lebs(&self) -> u64 {
        self.vols.values().map(|v| v.reserved_lebs).sum()
    }

    /// The id and size in LEBs a new volume would get, or why it cannot be made.
    fn new_volume(&self, name: &str, bytes: u64) -> Result<(u32, u64), UbiError> {
        if name.is_empty() || name.len() > 127 {
            return Err(UbiError::Invalid(format!("bad volume name {name:?}")));
        }
        if self.vols.values().any(|v| v.name == name) {
            return Err(UbiError::NameExists(name.to_string()));
        }
        let lebs = bytes.div_ceil(self.leb_size).max(1);
        let avail = self.total_lebs - self.used_lebs();
        if lebs > avail {
            return Err(UbiError::NoSpace {
                need: lebs * self.leb_size,
                avail: avail * self.leb_size,
            });
        }
        let id = (0..)
            .find(|i| !self.vols.contains_key(i))
            .expect("ids are plentiful");
        Ok((id, lebs))
    }

    /// After a cut this device has not seen: back to the synced volumes plus the
    /// changes the rail says survive.
    fn settle(&mut self) {
        if let Some((vols, writes)) = self.cache.after_cut(&self.rail) {
            self.vols = vols;
            writes.iter().for_each(|w| apply(&mut self.vols, w));
        }
    }

    fn commit(&mut self, w: VolWrite) {
        let vols = &self.vols;
        self.cache.note(&self.rail, || vols.clone(), w.clone());
        apply(&mut self.vols, &w);
    }

    /// Run a checked volume-table change under the power rail.
    fn vtbl_op(&mut self, op: &'static str, w: VolWrite) -> Result<(), UbiError> {
        match self.rail.tick() {
            Tick::Run => {
                self.commit(w);
                Ok(())
            }
            Tick::Dead => Err(UbiError::PowerCut { op }),
            Tick::Tear => {
                if self.tear == VtblTear::NewWins {
                    self.commit(w);
                }
                Err(UbiError::PowerCut { op })
            }
        }
    }

    fn vol_mut(&mut self, id: u32) -> Result<&mut SimVol, UbiError> {
        self.vols.get_mut(&id).ok_or(UbiError::NoVolume(id))
    }

    fn write_leb(&mut self, id: u32, lnum: usize, data: &[u8]) -> Result<(), UbiError> {
        self.settle();
        // Only dynamic volumes drop trailing 0xFF; static LEBs carry a data CRC.
        let keep = match self.vol_mut(id)?.kind {
            VolKind::Dynamic => data.iter().rposition(|&b| b != 0xFF).map_or(0, |p| p + 1),
            VolKind::Static => data.len(),
        };
        if keep == 0 {
            return Ok(());
        }
        let tick = self.rail.tick();
        let stored = match tick {
            Tick::Dead => return Err(UbiError::PowerCut { op: "LEB write" }),
            Tick::Tear => &data[..keep / 2],
            Tick::Run => &data[..keep],
        };
        let data = stored.to_vec();
        self.commit(VolWrite::Leb { id, lnum, data });
        if tick == Tick::Tear {
            return Err(UbiError::PowerCut { op: "LEB write" });
        }
        self.leb_writes += 1;
        Ok(())
    }
}

impl Ubi for SimUbi {
    fn leb_size(&mut self) -> Result<u64, UbiError> {
        Ok(self.leb_size)
    }

    fn avail_bytes(&mut self) -> Result<u64, UbiError> {
        self.settle();
        Ok((self.total_lebs - self.used_lebs()) * self.leb_size)
    }

    fn volumes(&mut self) -> Result<Vec<UbiVolume>, UbiError> {
        self.settle();
        let leb = self.leb_size;
        Ok(self
            .vols
            .iter()
            .map(|(id, v)| UbiVolume {
                id: *id,
                name: v.name.clone(),
                kind: v.kind,
                reserved_bytes: v.reserved_lebs * leb,
                corrupted: v.upd_marker,
            })
            .collect())
    }

    fn make_volume(&mut self, name: &str, bytes: u64, kind: VolKind) -> Result<u32, UbiError> {
        self.settle();
        // Checked before the operation so a refused request costs no op.
        let (id, lebs) = self.new_volume(name, bytes)?;
        let name = name.to_string();
        let w = VolWrite::Make {
            id,
            name,
            lebs,
            kind,
        };
        self.vtbl_op("make volume", w).map(|()| id)
    }

    fn remove_volume(&mut self, id: u32) -> Result<(), UbiError> {
        self.settle();
        self.vol_mut(id)?;
        self.vtbl_op("remove volume", VolWrite::Remove { id })
    }

    fn rename_volumes(&mut self, renames: &[(u32, &str)]) -> Result<(), UbiError> {
        self.settle();
        let renames: Vec<(u32, String)> =
            renames.iter().map(|(i, n)| (*i, n.to_string())).collect();
        rename_in(&mut self.vols.clone(), &renames)?;
        self.vtbl_op("rename volumes", VolWrite::Rename(renames))
    }

    fn start_update(
        &mut self,
        id: u32,
        total: u64,
    ) -> Result<Box<dyn VolumeUpdate + '_>, UbiError> {
        self.settle();
        let max = self.vol_mut(id)?.reserved_lebs * self.leb_size;
        if total > max {
            return Err(UbiError::TooLarge {
                id,
                len: total,
                max,
            });
        }
        self.vtbl_op("start volume update", VolWrite::Start { id })?;
        Ok(Box::new(SimUpdate {
            ubi: self,
            id,
            total,
            written: 0,
            buf: Vec::new(),
        }))
    }

    fn open_read(&mut self, id: u32) -> Result<Box<dyn Read + '_>, UbiError> {
        self.settle();
        let leb = self.leb_size as usize;
        let v = self.vols.get(&id).ok_or(UbiError::NoVolume(id))?;
        if v.upd_marker {
            return Err(UbiError::Corrupted(id));
        }
        let mut data = Vec::with_capacity(v.lebs.len() * leb);
        for l in &v.lebs {
            let start = data.len();
            data.extend_from_slice(l.as_deref().unwrap_or(&[]));
            data.resize(start + leb, 0xFF);
        }
        if v.kind == VolKind::Static {
            data.truncate(v.data_len as usize);
        }
        Ok(Box::new(io::Cursor::new(data)))
    }

    fn sync(&mut self) -> Result<(), UbiError> {
        self.settle();
        match self.rail.tick() {
            Tick::Run => {
                self.cache.synced();
                Ok(())
            }
            Tick::Tear | Tick::Dead => Err(UbiError::PowerCut { op: "sync" }),
        }
    }
}

struct SimUpdate<'a> {
    ubi: &'a mut SimUbi,
    id: u32,
    total: u64,
    written: u64,
    buf: Vec<u8>,
}

impl SimUpdate<'_> {
    fn flush_leb(&mut self, len: usize) -> Result<(), UbiError> {
        let lnum = ((self.written - self.buf.len() as u64) / self.ubi.leb_size) as usize;
        let chunk: Vec<u8> = self.buf.drain(..len).collect();
        self.ubi.write_leb(self.id, lnum, &chunk)
    }
}

impl VolumeUpdate for SimUpdate<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), UbiError> {
        if self.written + data.len() as u64 > self.total {
            return Err(UbiError::ShortUpdate {
                id: self.id,
                written: self.written + data.len() as u64,
                total: self.total,
            });
        }
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        let leb = self.ubi.leb_size as usize;
        while self.buf.len() >= leb {
            self.flush_leb(leb)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), UbiError> {
        if self.written != self.total {
            return Err(UbiError::ShortUpdate {
                id: self.id,
                written: self.written,
                total: self.total,
            });
        }
        if !self.buf.is_empty() {
            let n = self.buf.len();
            self.flush_leb(n)?;
        }
        let (id, total) = (self.id, self.total);
        self.ubi.settle();
        self.ubi
            .vtbl_op("finish volume update", VolWrite::Finish { id, total })
    }
}

#[cfg(test)]
mod tests;
