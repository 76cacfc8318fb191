//! One line per transaction step into the kernel's logs, so that the steps before a crash
//! outlive it: `ROOT/dev/pmsg0` (pstore's message log, kept in RAM across a reset) when it is
//! a character device, else `ROOT/dev/kmsg`, which pstore keeps when the kernel panics or
//! oopses. `liminix-agent boot-log` and `status` read them back ([`crate::pstore`]).
//!
//! Logging never fails a transaction: a log that cannot be opened or written is skipped.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;

use crate::root::DeviceRoot;

/// How the agent's lines start, in pmsg and in the kernel log alike.
pub const TAG: &str = "liminix-agent: ";
/// kmsg priority: notice, shown by `dmesg` but not on a quiet console.
const KMSG_LEVEL: &str = "<5>";
/// A line longer than this is cut: kmsg takes at most about 1 KiB per write.
const MAX_LINE: usize = 900;

/// Logs `step` as one line (best effort, see the module docs).
pub fn log(root: &DeviceRoot, step: &str) {
    let mut text: String = step.replace('\n', " ");
    if text.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let pmsg = root.join("/dev/pmsg0");
    let is_char = std::fs::metadata(&pmsg).is_ok_and(|m| m.file_type().is_char_device());
    let (path, line) = match is_char {
        true => (pmsg, format!("{TAG}{text}\n")),
        false => (root.join("/dev/kmsg"), format!("{KMSG_LEVEL}{TAG}{text}\n")),
    };
    // Never created: a root without the device gets no log, not a stray file.
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) {
        // One write(2): kmsg takes each write as one record.
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_without_pmsg_and_nothing_without_either() {
        let t = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(t.path());
        log(&root, "nowhere to go");
        assert!(!t.path().join("dev").exists());
        std::fs::create_dir(t.path().join("dev")).unwrap();
        std::fs::write(t.path().join("dev/kmsg"), "").unwrap();
        // A regular file named pmsg0 is not pstore's device.
        std::fs::write(t.path().join("dev/pmsg0"), "").unwrap();
        log(&root, "apply: firmware to mtd:firmware: write\nverified");
        log(&root, &"é".repeat(600));
        let kmsg = std::fs::read_to_string(t.path().join("dev/kmsg")).unwrap();
        let lines: Vec<&str> = kmsg.lines().collect();
        assert_eq!(
            lines[0],
            "<5>liminix-agent: apply: firmware to mtd:firmware: write verified"
        );
        assert_eq!(lines.len(), 2);
        assert!(lines[1].len() <= MAX_LINE + KMSG_LEVEL.len() + TAG.len());
        assert_eq!(std::fs::read(t.path().join("dev/pmsg0")).unwrap(), b"");
    }
}
