//! The physical RAM the running kernel manages: the top-level `System RAM` ranges of
//! `/proc/iomem` (nested lines are parts of them, like the kernel's own code).

use crate::KexecError;

/// One range of RAM, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ram {
    pub start: u64,
    pub end: u64,
}

/// The top-level System RAM ranges of an iomem listing, in address order. Lines that are not
/// `START-END : NAME` are refused with the line.
pub fn system_ram(iomem: &str) -> Result<Vec<Ram>, KexecError> {
    let mut v = Vec::new();
    for line in iomem.lines() {
        if line.starts_with(' ') || line.trim().is_empty() {
            continue;
        }
        let bad = || KexecError::Malformed(format!("/proc/iomem line {line:?}"));
        let (range, name) = line.split_once(" : ").ok_or_else(bad)?;
        if name.trim() != "System RAM" {
            continue;
        }
        let (start, last) = range.trim().split_once('-').ok_or_else(bad)?;
        let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| bad());
        let (start, last) = (hex(start)?, hex(last)?);
        // Unprivileged readers see every range as 0-0.
        if last == 0 {
            continue;
        }
        let end = last.checked_add(1).ok_or_else(bad)?;
        v.push(Ram { start, end });
    }
    if v.is_empty() {
        return Err(KexecError::NoRam);
    }
    v.sort_by_key(|r| r.start);
    Ok(v)
}

/// The listing as `START-END, …` for messages.
pub fn describe(ram: &[Ram]) -> String {
    let v: Vec<String> = ram
        .iter()
        .map(|r| format!("{:#x}..{:#x}", r.start, r.end))
        .collect();
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARM_VIRT: &str = "00000000-03ffffff : 0.flash flash@0\n\
09000000-09000fff : pl011@9000000\n\
  09000000-09000fff : 9000000.pl011 pl011@9000000\n\
40000000-5fffffff : System RAM\n\
  40008000-40cfffff : Kernel code\n\
  40e00000-4105c6ff : Kernel data\n";

    #[test]
    fn only_top_level_system_ram_counts() {
        let r = system_ram(ARM_VIRT).unwrap();
        assert_eq!(
            r,
            [Ram {
                start: 0x4000_0000,
                end: 0x6000_0000
            }]
        );
    }

    #[test]
    fn an_unprivileged_listing_is_refused() {
        let e = system_ram("00000000-00000000 : System RAM\n").unwrap_err();
        assert!(e.to_string().contains("needs root"), "{e}");
        assert!(system_ram("garbage\n").is_err());
    }
}
