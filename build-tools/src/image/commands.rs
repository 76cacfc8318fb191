//! The U-Boot command scripts the image outputs carry, as text a user can read before running
//! (and paste at a serial console): `flash.scr` (fetch an image over TFTP, erase, write) and
//! `boot.scr` of the tftpboot output (fetch kernel, root and DTB into RAM and boot them).
//!
//! Every line is one command U-Boot's shell runs as it stands; `${filesize}` is left for U-Boot
//! to expand, after `tftp` has set it to the size of the file it fetched.

/// Where TFTP fetches from; `None` keeps what the U-Boot environment already has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tftp {
    pub serverip: Option<String>,
    pub ipaddr: Option<String>,
}

impl Tftp {
    /// The `setenv` lines for the addresses that are given.
    pub fn setenv_lines(&self) -> String {
        let mut s = String::new();
        if let Some(ip) = &self.serverip {
            s.push_str(&format!("setenv serverip {ip}\n"));
        }
        if let Some(ip) = &self.ipaddr {
            s.push_str(&format!("setenv ipaddr {ip}\n"));
        }
        s
    }
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
    format!(
        "{setenv}tftp {load:#x} {file}\nerase {flash:#x} +{size:#x}\ncp.b {load:#x} {flash:#x} ${{filesize}}\necho command line was {cmdline}\n",
        setenv = f.tftp.setenv_lines(),
        load = f.load_address,
        file = quote(&f.file),
        flash = f.flash_address,
        size = f.partition_size,
        cmdline = quote(&f.command_line),
    )
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
    format!(
        "{setenv}tftpboot {load:#x} {file}\nubi write {load:#x} {volume} ${{filesize}}\n",
        setenv = f.tftp.setenv_lines(),
        load = f.load_address,
        file = quote(&f.file),
        volume = quote(&f.volume),
    )
}

/// `word` as one argument of U-Boot's shell: unchanged when it holds nothing the shell would
/// act on, else in single quotes (no `$` expansion, no `;` splitting), with each `'` closed,
/// escaped and reopened.
pub fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-=,:+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("result/firmware.bin"), "result/firmware.bin");
        assert_eq!(quote("a b;c"), "'a b;c'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
