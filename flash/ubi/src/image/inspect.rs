//! Reads a UBI image back: every header checked (magic, CRC, one geometry and
//! one image sequence number throughout), the volume table decoded and each
//! volume's LEBs counted. What an `inspect` command prints about a UBI image.

use std::collections::BTreeMap;

use super::headers::{ubi_crc, HDR_SIZE, LAYOUT_VOLUME_ID, MAX_VOLUMES, VTBL_RECORD_SIZE};
use crate::VolumeKind;

/// An image that is not the UBI image it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The length is not a whole number of PEBs.
    #[error("UBI image of {len} bytes is not whole PEBs of {peb_size} bytes")]
    Size { len: usize, peb_size: u32 },
    /// A header is damaged or disagrees with the first PEB's.
    #[error("UBI image PEB {peb}: {why}")]
    Peb { peb: usize, why: String },
    /// No layout volume LEB 0, or a damaged table record.
    #[error("UBI volume table: {0}")]
    VolumeTable(String),
}

/// What the EC headers of an image say, and the volumes in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub pebs: usize,
    pub vid_hdr_offset: u32,
    pub data_offset: u32,
    pub image_seq: u32,
    pub volumes: Vec<VolumeSummary>,
}

/// One volume-table record, with the LEBs the image holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSummary {
    pub id: u32,
    pub name: String,
    pub kind: VolumeKind,
    pub reserved_pebs: u32,
    pub alignment: u32,
    pub autoresize: bool,
    /// PEBs of the image that carry a LEB of this volume.
    pub lebs: u32,
    /// Sum of the static LEBs' data sizes; 0 for dynamic volumes.
    pub static_bytes: u64,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn sealed(rec: &[u8]) -> bool {
    let end = rec.len() - 4;
    ubi_crc(&rec[..end]) == be32(rec, end)
}

/// Geometry fields of one EC header: VID offset, data offset, image sequence.
fn ec_fields(peb: &[u8]) -> Result<(u32, u32, u32), String> {
    let ec = &peb[..HDR_SIZE];
    if &ec[..4] != b"UBI#" || !sealed(ec) {
        return Err("no valid EC header".into());
    }
    Ok((be32(ec, 16), be32(ec, 20), be32(ec, 24)))
}

/// Per-volume tally of the LEBs found: count and static data bytes.
type Tally = BTreeMap<u32, (u32, u64)>;

/// Checks one PEB's VID header (and static data CRC), adds it to `tally`,
/// and returns the PEB's data when it is the layout volume's LEB 0.
fn scan_leb<'a>(
    peb: &'a [u8],
    (vid_at, data_at): (usize, usize),
    tally: &mut Tally,
) -> Result<Option<&'a [u8]>, String> {
    let vid = &peb[vid_at..vid_at + HDR_SIZE];
    if vid.iter().all(|&b| b == 0xFF) {
        return Ok(None);
    }
    if &vid[..4] != b"UBI!" || !sealed(vid) {
        return Err("damaged VID header".into());
    }
    let (vol_id, lnum, data) = (be32(vid, 8), be32(vid, 12), &peb[data_at..]);
    if vol_id == LAYOUT_VOLUME_ID {
        return Ok((lnum == 0).then_some(data));
    }
    let entry = tally.entry(vol_id).or_default();
    entry.0 += 1;
    if vid[5] == 2 {
        let size = be32(vid, 20) as usize;
        let payload = data.get(..size).ok_or("static data size beyond the PEB")?;
        if ubi_crc(payload) != be32(vid, 32) {
            return Err(format!("volume {vol_id} LEB {lnum}: data CRC mismatch"));
        }
        entry.1 += size as u64;
    }
    Ok(None)
}

fn decode_record(id: u32, rec: &[u8], tally: &Tally) -> Result<Option<VolumeSummary>, String> {
    if !sealed(rec) {
        return Err(format!("record {id}: CRC mismatch"));
    }
    let reserved_pebs = be32(rec, 0);
    if reserved_pebs == 0 {
        return Ok(None);
    }
    let name_len = usize::from(u16::from_be_bytes([rec[14], rec[15]])).min(127);
    let kind = match rec[12] {
        1 => VolumeKind::Dynamic,
        2 => VolumeKind::Static,
        other => return Err(format!("record {id}: volume type {other}")),
    };
    let (lebs, static_bytes) = tally.get(&id).copied().unwrap_or_default();
    Ok(Some(VolumeSummary {
        id,
        name: String::from_utf8_lossy(&rec[16..16 + name_len]).into_owned(),
        kind,
        reserved_pebs,
        alignment: be32(rec, 4),
        autoresize: rec[144] & 0x01 != 0,
        lebs,
        static_bytes,
    }))
}

fn decode_table(table: &[u8], tally: &Tally) -> Result<Vec<VolumeSummary>, InspectError> {
    let records = (table.len() / VTBL_RECORD_SIZE).min(MAX_VOLUMES);
    let mut volumes = Vec::new();
    for (id, rec) in table
        .chunks_exact(VTBL_RECORD_SIZE)
        .take(records)
        .enumerate()
    {
        if let Some(v) = decode_record(id as u32, rec, tally).map_err(InspectError::VolumeTable)? {
            volumes.push(v);
        }
    }
    Ok(volumes)
}

/// Reads the image `img` made for erase blocks of `peb_size` bytes (which no
/// header records). Erased PEBs (all 0xFF) are allowed and skipped.
pub fn inspect(img: &[u8], peb_size: u32) -> Result<ImageInfo, InspectError> {
    let size = peb_size as usize;
    if size == 0 || !img.len().is_multiple_of(size) {
        return Err(InspectError::Size {
            len: img.len(),
            peb_size,
        });
    }
    let mut first: Option<(u32, u32, u32)> = None;
    let mut table = None;
    let mut tally = Tally::new();
    for (n, peb) in img.chunks_exact(size).enumerate() {
        let bad = |why: String| InspectError::Peb { peb: n, why };
        if peb.iter().all(|&b| b == 0xFF) {
            continue;
        }
        let fields = ec_fields(peb).map_err(bad)?;
        let expected = *first.get_or_insert(fields);
        if fields != expected {
            return Err(bad(format!(
                "EC header (VID offset, data offset, image sequence) {fields:?}, earlier PEBs {expected:?}"
            )));
        }
        let (vid, data, _) = fields;
        if (vid as usize) + HDR_SIZE > size || data as usize >= size {
            return Err(bad("offsets beyond the PEB".into()));
        }
        let lnum0 = scan_leb(peb, (vid as usize, data as usize), &mut tally).map_err(bad)?;
        table = table.or(lnum0);
    }
    let (vid_hdr_offset, data_offset, image_seq) =
        first.ok_or_else(|| InspectError::VolumeTable("image holds no UBI PEB".into()))?;
    let table = table.ok_or_else(|| InspectError::VolumeTable("no layout volume LEB 0".into()))?;
    Ok(ImageInfo {
        pebs: img.len() / size,
        vid_hdr_offset,
        data_offset,
        image_seq,
        volumes: decode_table(table, &tally)?,
    })
}
