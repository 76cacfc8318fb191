//! Encoders of UBI's on-flash records: the erase-counter header, the
//! volume-identifier header and one volume-table record (layouts in
//! docs/formats/ubi.md). Pure byte building; nothing here touches a device.

use crate::VolumeKind;

/// Bytes of an EC or VID header.
pub const HDR_SIZE: usize = 64;
/// Bytes of one volume-table record.
pub const VTBL_RECORD_SIZE: usize = 172;
/// Most volumes a UBI device can hold, whatever the LEB size.
pub const MAX_VOLUMES: usize = 128;
/// Id of the internal volume that holds the two volume-table copies.
pub const LAYOUT_VOLUME_ID: u32 = 0x7FFF_EFFF;
/// "Reject": a kernel that does not know the layout volume must not attach.
const LAYOUT_VOLUME_COMPAT: u8 = 5;
const EC_MAGIC: &[u8; 4] = b"UBI#";
const VID_MAGIC: &[u8; 4] = b"UBI!";
const UBI_VERSION: u8 = 1;
const AUTORESIZE_FLAG: u8 = 0x01;

/// UBI's CRC: the zlib polynomial and start value but no final inversion,
/// i.e. the bitwise complement of the zlib CRC.
pub fn ubi_crc(data: &[u8]) -> u32 {
    !crc32fast::hash(data)
}

/// Table and VID-header code of a volume type (the same numbers in both).
fn type_code(kind: VolumeKind) -> u8 {
    match kind {
        VolumeKind::Dynamic => 1,
        VolumeKind::Static => 2,
    }
}

/// Fields of the EC header that are the same on every PEB of one image.
#[derive(Debug, Clone, Copy)]
pub struct EcHeader {
    pub erase_counter: u64,
    pub vid_hdr_offset: u32,
    pub data_offset: u32,
    pub image_seq: u32,
}

impl EcHeader {
    pub fn encode(&self) -> [u8; HDR_SIZE] {
        let mut h = [0u8; HDR_SIZE];
        h[0..4].copy_from_slice(EC_MAGIC);
        h[4] = UBI_VERSION;
        h[8..16].copy_from_slice(&self.erase_counter.to_be_bytes());
        h[16..20].copy_from_slice(&self.vid_hdr_offset.to_be_bytes());
        h[20..24].copy_from_slice(&self.data_offset.to_be_bytes());
        h[24..28].copy_from_slice(&self.image_seq.to_be_bytes());
        seal(&mut h);
        h
    }
}

/// Which volume and LEB a PEB holds. `static_data` is the LEB's payload for
/// static volumes, whose header records its size and CRC; dynamic volumes
/// leave those fields zero.
#[derive(Debug, Clone, Copy)]
pub struct VidHeader<'a> {
    pub kind: VolumeKind,
    pub vol_id: u32,
    pub lnum: u32,
    pub data_pad: u32,
    pub used_ebs: u32,
    pub static_data: &'a [u8],
}

impl VidHeader<'_> {
    pub fn encode(&self) -> [u8; HDR_SIZE] {
        let mut h = [0u8; HDR_SIZE];
        h[0..4].copy_from_slice(VID_MAGIC);
        h[4] = UBI_VERSION;
        h[5] = type_code(self.kind);
        if self.vol_id == LAYOUT_VOLUME_ID {
            h[7] = LAYOUT_VOLUME_COMPAT;
        }
        h[8..12].copy_from_slice(&self.vol_id.to_be_bytes());
        h[12..16].copy_from_slice(&self.lnum.to_be_bytes());
        if self.kind == VolumeKind::Static {
            let size = self.static_data.len() as u32;
            h[20..24].copy_from_slice(&size.to_be_bytes());
            h[24..28].copy_from_slice(&self.used_ebs.to_be_bytes());
            h[32..36].copy_from_slice(&ubi_crc(self.static_data).to_be_bytes());
        }
        h[28..32].copy_from_slice(&self.data_pad.to_be_bytes());
        seal(&mut h);
        h
    }
}

/// One used record of the volume table.
#[derive(Debug, Clone, Copy)]
pub struct VtblRecord<'a> {
    pub reserved_pebs: u32,
    pub alignment: u32,
    pub data_pad: u32,
    pub kind: VolumeKind,
    pub name: &'a str,
    pub autoresize: bool,
}

impl VtblRecord<'_> {
    pub fn encode(&self) -> [u8; VTBL_RECORD_SIZE] {
        let mut r = [0u8; VTBL_RECORD_SIZE];
        r[0..4].copy_from_slice(&self.reserved_pebs.to_be_bytes());
        r[4..8].copy_from_slice(&self.alignment.to_be_bytes());
        r[8..12].copy_from_slice(&self.data_pad.to_be_bytes());
        r[12] = type_code(self.kind);
        r[14..16].copy_from_slice(&(self.name.len() as u16).to_be_bytes());
        r[16..16 + self.name.len()].copy_from_slice(self.name.as_bytes());
        if self.autoresize {
            r[144] = AUTORESIZE_FLAG;
        }
        seal(&mut r);
        r
    }

    /// An unused record: all zero but for its CRC.
    pub fn empty() -> [u8; VTBL_RECORD_SIZE] {
        let mut r = [0u8; VTBL_RECORD_SIZE];
        seal(&mut r);
        r
    }
}

/// Every UBI record ends in the CRC of all its bytes before it.
fn seal(rec: &mut [u8]) {
    let end = rec.len() - 4;
    let crc = ubi_crc(&rec[..end]);
    rec[end..].copy_from_slice(&crc.to_be_bytes());
}
