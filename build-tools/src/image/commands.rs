//! The U-Boot command scripts the image outputs carry, as text a user can read before running
//! (and paste at a serial console): `flash.scr` (fetch an image over TFTP, erase, write) and
//! `boot.scr` of the tftpboot output (fetch kernel, root and DTB into RAM and boot them).

/// Where TFTP fetches from; `None` keeps what the U-Boot environment already has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tftp {
    pub serverip: Option<String>,
    pub ipaddr: Option<String>,
}

/// `flash.scr` of the mtdimage output: TFTP `file` to `load_address`, erase the partition
/// mapped at `flash_address` (all `partition_size` bytes), copy `${filesize}` bytes there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtdFlash {
    pub tftp: Tftp,
    pub file: String,
    pub load_address: u64,
    pub flash_address: u64,
    pub partition_size: u64,
    /// Echoed at the end, as Liminix does, so the console log shows what was flashed.
    pub command_line: String,
}

/// The script text of `flash.scr` for a raw (NOR) partition.
pub fn flash_scr_mtd(f: &MtdFlash) -> String {
    todo!("issue 12 skeleton: {f:?}")
}

/// `flash.scr` of the ubimage output: TFTP `file` to `load_address`, `ubi write` it into
/// `volume` of the UBI device U-Boot has attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UbiFlash {
    pub tftp: Tftp,
    pub file: String,
    pub load_address: u64,
    pub volume: String,
}

/// The script text of `flash.scr` for a UBI volume.
pub fn flash_scr_ubi(f: &UbiFlash) -> String {
    todo!("issue 12 skeleton: {f:?}")
}
