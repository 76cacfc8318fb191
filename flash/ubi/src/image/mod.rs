//! Writes raw UBI images the way `ubinize` (mtd-utils) does, byte for byte:
//! the two volume-table PEBs first, then each volume's LEBs in the order
//! given, every PEB a full erase block with its EC and VID header.
//!
//! This is format code, not device code, so it lives beside the UBI ioctls
//! (which define the same volume kinds and name limits) but uses none of them:
//! the packer runs it on the build host and the agent never links it in
//! unless it calls it.

mod headers;
mod inspect;
#[cfg(test)]
mod tests;

use std::io::Write;

use crate::VolumeKind;
pub use headers::ubi_crc;
use headers::{
    EcHeader, VidHeader, VtblRecord, HDR_SIZE, LAYOUT_VOLUME_ID, MAX_VOLUMES, VTBL_RECORD_SIZE,
};
pub use inspect::{inspect, ImageInfo, InspectError, VolumeSummary};

/// Longest volume name UBI stores.
const MAX_NAME: usize = 127;

/// Errors from planning or writing a UBI image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The flash geometry is not one UBI can use.
    #[error("UBI geometry (PEB {peb_size}, min I/O {min_io}, sub-page {subpage}): {why}")]
    Geometry {
        peb_size: u32,
        min_io: u32,
        subpage: u32,
        why: &'static str,
    },
    /// A volume's description cannot be stored or is inconsistent.
    #[error("UBI volume {id} ({name:?}): {why}")]
    Volume { id: u32, name: String, why: String },
    /// More than one volume asks to grow at first attach.
    #[error("UBI volumes {0} and {1} are both autoresize; at most one may be")]
    TwoAutoresize(u32, u32),
    /// Writing the image failed.
    #[error("write UBI image: {0}")]
    Write(#[from] std::io::Error),
}

/// The flash a UBI image is for. `vid_hdr_offset` `None` places the VID
/// header at the first sub-page after the EC header, as ubinize and the kernel do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub peb_size: u32,
    pub min_io: u32,
    pub subpage: u32,
    pub vid_hdr_offset: Option<u32>,
}

/// Offsets and sizes derived from a [`Geometry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub peb_size: u32,
    pub vid_hdr_offset: u32,
    pub data_offset: u32,
    pub leb_size: u32,
    pub min_io: u32,
    /// Records in the volume table (and so the highest volume id + 1).
    pub max_volumes: u32,
}

impl Geometry {
    /// Computes the layout, refusing what ubinize refuses.
    pub fn layout(&self) -> Result<Layout, ImageError> {
        let refuse = |why| ImageError::Geometry {
            peb_size: self.peb_size,
            min_io: self.min_io,
            subpage: self.subpage,
            why,
        };
        let pow2 = |v: u32| v.is_power_of_two();
        if !pow2(self.peb_size) || !pow2(self.min_io) || !pow2(self.subpage) {
            return Err(refuse(
                "PEB, min I/O and sub-page sizes must be powers of two",
            ));
        }
        if self.subpage > self.min_io || self.min_io > self.peb_size {
            return Err(refuse("need sub-page <= min I/O <= PEB"));
        }
        let hdr = HDR_SIZE as u32;
        let vid = match self.vid_hdr_offset {
            Some(off) if off < hdr || !off.is_multiple_of(8) => {
                return Err(refuse(
                    "VID header offset must be a multiple of 8 past the EC header",
                ))
            }
            Some(off) => off,
            None => hdr.div_ceil(self.subpage) * self.subpage,
        };
        let data_offset = (vid + hdr).div_ceil(self.min_io) * self.min_io;
        if data_offset >= self.peb_size {
            return Err(refuse("headers leave no room for data in a PEB"));
        }
        let leb_size = self.peb_size - data_offset;
        Ok(Layout {
            peb_size: self.peb_size,
            vid_hdr_offset: vid,
            data_offset,
            leb_size,
            min_io: self.min_io,
            max_volumes: (leb_size as usize / VTBL_RECORD_SIZE).min(MAX_VOLUMES) as u32,
        })
    }
}

/// Values the EC header repeats on every PEB. ubinize picks a random
/// `image_seq` unless given `-Q`; fixing it here is what makes images reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageParams {
    pub image_seq: u32,
    pub erase_counter: u64,
}

/// One volume of the image (one ubinize config section).
#[derive(Debug, Clone)]
pub struct VolumeSpec<'a> {
    pub id: u32,
    pub name: String,
    pub kind: VolumeKind,
    /// Bytes to reserve; `None` reserves just what `data` needs.
    pub size: Option<u64>,
    /// Set the flag that makes the kernel grow this volume over all free
    /// PEBs at first attach.
    pub autoresize: bool,
    /// LEB alignment; the last `leb_size % alignment` bytes of each LEB stay unused.
    pub alignment: u32,
    /// Initial contents (may be empty for a volume the device fills later).
    pub data: &'a [u8],
}

impl<'a> VolumeSpec<'a> {
    /// A volume holding `data`, sized to it, unaligned, not autoresized: what `ubinize` makes of
    /// a section that gives only an id, a name, a type and an image.
    pub fn new(id: u32, name: &str, kind: VolumeKind, data: &'a [u8]) -> VolumeSpec<'a> {
        VolumeSpec {
            id,
            name: name.into(),
            kind,
            size: None,
            autoresize: false,
            alignment: 1,
            data,
        }
    }
}

/// A volume checked against the layout, with its derived sizes.
struct Planned<'s, 'a> {
    spec: &'s VolumeSpec<'a>,
    bytes: u64,
    usable_leb: u32,
    data_pad: u32,
}

impl Planned<'_, '_> {
    /// ubinize reserves whole LEBs of the full LEB size, not the aligned one;
    /// kept so that its images and ours agree.
    fn reserved_pebs(&self, layout: &Layout) -> u32 {
        self.bytes.div_ceil(u64::from(layout.leb_size)) as u32
    }

    fn record(&self, layout: &Layout) -> [u8; VTBL_RECORD_SIZE] {
        VtblRecord {
            reserved_pebs: self.reserved_pebs(layout),
            alignment: self.spec.alignment,
            data_pad: self.data_pad,
            kind: self.spec.kind,
            name: &self.spec.name,
            autoresize: self.spec.autoresize,
        }
        .encode()
    }

    fn used_ebs(&self) -> u32 {
        self.spec.data.len().div_ceil(self.usable_leb as usize) as u32
    }
}

fn plan<'s, 'a>(layout: &Layout, spec: &'s VolumeSpec<'a>) -> Result<Planned<'s, 'a>, ImageError> {
    let refuse = |why: String| ImageError::Volume {
        id: spec.id,
        name: spec.name.clone(),
        why,
    };
    check_spec(layout, spec).map_err(refuse)?;
    let bytes = spec.size.unwrap_or(spec.data.len() as u64);
    let data_pad = layout.leb_size % spec.alignment;
    let planned = Planned {
        spec,
        bytes,
        usable_leb: layout.leb_size - data_pad,
        data_pad,
    };
    // ubinize writes such an image, but the kernel refuses to attach a volume
    // with a LEB at or beyond its reservation (reachable with alignment > 1).
    let reserved = planned.reserved_pebs(layout);
    if planned.used_ebs() > reserved {
        return Err(refuse(format!(
            "data fills {} aligned LEBs but the size reserves {reserved}; raise the size",
            planned.used_ebs()
        )));
    }
    Ok(planned)
}

/// What the volume table and the kernel cannot hold, in the kernel's terms.
fn check_spec(layout: &Layout, spec: &VolumeSpec) -> Result<(), String> {
    if spec.id >= layout.max_volumes {
        return Err(format!(
            "id beyond the table's {} records",
            layout.max_volumes
        ));
    }
    if spec.name.is_empty() || spec.name.len() > MAX_NAME || spec.name.contains('\0') {
        return Err(format!("name must be 1..={MAX_NAME} bytes without NUL"));
    }
    let a = spec.alignment;
    if a == 0 || a >= layout.leb_size || (a != 1 && !a.is_multiple_of(layout.min_io)) {
        return Err(format!(
            "alignment must be 1 or a multiple of min I/O {} below the LEB size {}",
            layout.min_io, layout.leb_size
        ));
    }
    let data_len = spec.data.len() as u64;
    match spec.size.unwrap_or(data_len) {
        0 => Err("size 0: give a size or data".into()),
        size if size < data_len => Err(format!("{data_len} bytes of data exceed its size {size}")),
        _ => Ok(()),
    }
}

fn check_unique(planned: &[Planned]) -> Result<(), ImageError> {
    for (i, a) in planned.iter().enumerate() {
        for b in &planned[..i] {
            let clash = if a.spec.id == b.spec.id {
                "id"
            } else if a.spec.name == b.spec.name {
                "name"
            } else {
                continue;
            };
            return Err(ImageError::Volume {
                id: a.spec.id,
                name: a.spec.name.clone(),
                why: format!("same {clash} as volume {} ({:?})", b.spec.id, b.spec.name),
            });
        }
    }
    let mut auto = planned.iter().filter(|p| p.spec.autoresize);
    if let (Some(a), Some(b)) = (auto.next(), auto.next()) {
        return Err(ImageError::TwoAutoresize(a.spec.id, b.spec.id));
    }
    Ok(())
}

/// Writes the UBI image of `volumes` to `out` and returns its size in bytes.
pub fn write_image<W: Write>(
    geometry: &Geometry,
    params: ImageParams,
    volumes: &[VolumeSpec],
    mut out: W,
) -> Result<u64, ImageError> {
    let layout = geometry.layout()?;
    let planned = volumes
        .iter()
        .map(|v| plan(&layout, v))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(&planned)?;
    let mut peb = PebWriter::new(&layout, params);
    let vtbl = volume_table(&layout, &planned);
    for lnum in 0..2 {
        let vid = VidHeader {
            kind: VolumeKind::Dynamic,
            vol_id: LAYOUT_VOLUME_ID,
            lnum,
            data_pad: 0,
            used_ebs: 0,
            static_data: &[],
        };
        peb.write(&mut out, &vid, &vtbl)?;
    }
    for p in &planned {
        write_volume(&mut peb, &mut out, p)?;
    }
    Ok(peb.written)
}

fn volume_table(layout: &Layout, planned: &[Planned]) -> Vec<u8> {
    let mut records = vec![VtblRecord::empty(); layout.max_volumes as usize];
    for p in planned {
        records[p.spec.id as usize] = p.record(layout);
    }
    records.concat()
}

fn write_volume<W: Write>(peb: &mut PebWriter, out: &mut W, p: &Planned) -> Result<(), ImageError> {
    let used_ebs = p.used_ebs();
    for (lnum, chunk) in p.spec.data.chunks(p.usable_leb as usize).enumerate() {
        let vid = VidHeader {
            kind: p.spec.kind,
            vol_id: p.spec.id,
            lnum: lnum as u32,
            data_pad: p.data_pad,
            used_ebs,
            static_data: chunk,
        };
        peb.write(out, &vid, chunk)?;
    }
    Ok(())
}

/// Assembles whole erase blocks: EC header, VID header, data, the rest 0xFF
/// (erased flash), so that writing the image never programs a byte twice.
struct PebWriter {
    buf: Vec<u8>,
    vid_at: usize,
    data_at: usize,
    written: u64,
}

impl PebWriter {
    fn new(layout: &Layout, params: ImageParams) -> Self {
        let mut buf = vec![0xFF; layout.peb_size as usize];
        let ec = EcHeader {
            erase_counter: params.erase_counter,
            vid_hdr_offset: layout.vid_hdr_offset,
            data_offset: layout.data_offset,
            image_seq: params.image_seq,
        };
        buf[..HDR_SIZE].copy_from_slice(&ec.encode());
        PebWriter {
            buf,
            vid_at: layout.vid_hdr_offset as usize,
            data_at: layout.data_offset as usize,
            written: 0,
        }
    }

    fn write<W: Write>(
        &mut self,
        out: &mut W,
        vid: &VidHeader,
        data: &[u8],
    ) -> Result<(), ImageError> {
        self.buf[self.vid_at..self.vid_at + HDR_SIZE].copy_from_slice(&vid.encode());
        let (head, tail) = self.buf[self.data_at..].split_at_mut(data.len());
        head.copy_from_slice(data);
        tail.fill(0xFF);
        out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        Ok(())
    }
}
