//! Linux `_IOC` request-code encoding for both encodings the project targets.
//!
//! The generic encoding (x86, ARM, arm64, RISC-V) and the MIPS one differ in the
//! width of the size field and in the direction bits, so an ioctl number computed
//! for the build host is wrong on a MIPS router. The encoder takes the encoding as
//! a parameter so both tables can be unit-tested on any host; [`TARGET`] picks the
//! one the crate is compiled for.

/// How a kernel architecture lays out ioctl request codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IocEncoding {
    /// asm-generic: 2 direction bits at 30, 14 size bits.
    Generic,
    /// MIPS (all ABIs): 3 direction bits at 29, 13 size bits.
    Mips,
}

/// Data direction of an ioctl, seen from user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IocDir {
    /// `_IO`: no data.
    None,
    /// `_IOW`: user space writes data to the kernel.
    Write,
    /// `_IOR`: user space reads data from the kernel.
    Read,
    /// `_IOWR`: both.
    ReadWrite,
}

/// The encoding of the architecture this crate is compiled for.
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
pub const TARGET: IocEncoding = IocEncoding::Mips;
/// The encoding of the architecture this crate is compiled for.
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
pub const TARGET: IocEncoding = IocEncoding::Generic;

/// Computes `_IOC(dir, ty, nr, size)` for `enc`.
///
/// Panics (at compile time when used in a const) if `size` does not fit the
/// encoding's size field.
pub const fn ioc(enc: IocEncoding, dir: IocDir, ty: u8, nr: u8, size: usize) -> u32 {
    let (dir_shift, size_bits, dir_bits) = match enc {
        IocEncoding::Generic => (
            30,
            14,
            match dir {
                IocDir::None => 0,
                IocDir::Write => 1,
                IocDir::Read => 2,
                IocDir::ReadWrite => 3,
            },
        ),
        IocEncoding::Mips => (
            29,
            13,
            match dir {
                IocDir::None => 1,
                IocDir::Write => 4,
                IocDir::Read => 2,
                IocDir::ReadWrite => 6,
            },
        ),
    };
    assert!(size < (1 << size_bits), "ioctl argument too large");
    (dir_bits << dir_shift) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}

/// `_IOW` for the compile target.
pub const fn iow(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(TARGET, IocDir::Write, ty, nr, size)
}

/// `_IOR` for the compile target.
pub const fn ior(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(TARGET, IocDir::Read, ty, nr, size)
}

/// `_IOWR` for the compile target.
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(TARGET, IocDir::ReadWrite, ty, nr, size)
}

/// `_IO` for the compile target.
pub const fn io(ty: u8, nr: u8) -> u32 {
    ioc(TARGET, IocDir::None, ty, nr, 0)
}

#[cfg(test)]
mod tests {
    use super::IocDir::*;
    use super::IocEncoding::*;
    use super::*;

    const M: u8 = b'M';

    /// (dir, nr, size, generic code, MIPS code) from docs/formats/mtd.md.
    const MTD_TABLE: &[(IocDir, u8, usize, u32, u32)] = &[
        (Read, 1, 32, 0x80204D01, 0x40204D01),         // MEMGETINFO
        (Write, 2, 8, 0x40084D02, 0x80084D02),         // MEMERASE
        (Write, 0x14, 16, 0x40104D14, 0x80104D14),     // MEMERASE64
        (Write, 0x0B, 8, 0x40084D0B, 0x80084D0B),      // MEMGETBADBLOCK
        (Write, 0x0C, 8, 0x40084D0C, 0x80084D0C),      // MEMSETBADBLOCK
        (ReadWrite, 0x18, 48, 0xC0304D18, 0xC0304D18), // MEMWRITE
        (ReadWrite, 0x1A, 64, 0xC0404D1A, 0xC0404D1A), // MEMREAD
        (Read, 0x12, 16, 0x80104D12, 0x40104D12),      // ECCGETSTATS
        (Write, 5, 8, 0x40084D05, 0x80084D05),         // MEMLOCK
        (Read, 0x17, 8, 0x80084D17, 0x40084D17),       // MEMISLOCKED
        (Read, 7, 4, 0x80044D07, 0x40044D07),          // MEMGETREGIONCOUNT
        (None, 0x13, 0, 0x00004D13, 0x20004D13),       // MTDFILEMODE
    ];

    /// (type, dir, nr, size, generic code, MIPS code) from docs/formats/ubi.md.
    const UBI_TABLE: &[(u8, IocDir, u8, usize, u32, u32)] = &[
        (b'o', Write, 64, 24, 0x40186F40, 0x80186F40), // UBI_IOCATT
        (b'o', Write, 65, 4, 0x40046F41, 0x80046F41),  // UBI_IOCDET
        (b'o', Write, 0, 152, 0x40986F00, 0x80986F00), // UBI_IOCMKVOL
        (b'o', Write, 1, 4, 0x40046F01, 0x80046F01),   // UBI_IOCRMVOL
        (b'o', Write, 2, 12, 0x400C6F02, 0x800C6F02),  // UBI_IOCRSVOL
        (b'o', Write, 3, 4368, 0x51106F03, 0x91106F03), // UBI_IOCRNVOL
        (b'O', Write, 0, 8, 0x40084F00, 0x80084F00),   // UBI_IOCVOLUP
        (b'O', Read, 5, 4, 0x80044F05, 0x40044F05),    // UBI_IOCEBISMAP
        (b'O', Write, 6, 16, 0x40104F06, 0x80104F06),  // UBI_IOCSETVOLPROP
        (b'O', None, 8, 0, 0x00004F08, 0x20004F08),    // UBI_IOCVOLRMBLK
    ];

    #[test]
    fn mtd_codes_match_both_tables() {
        for &(dir, nr, size, generic, mips) in MTD_TABLE {
            assert_eq!(
                ioc(Generic, dir, M, nr, size),
                generic,
                "generic nr {nr:#x}"
            );
            assert_eq!(ioc(Mips, dir, M, nr, size), mips, "mips nr {nr:#x}");
        }
    }

    #[test]
    fn ubi_codes_match_both_tables() {
        for &(ty, dir, nr, size, generic, mips) in UBI_TABLE {
            assert_eq!(ioc(Generic, dir, ty, nr, size), generic, "generic nr {nr}");
            assert_eq!(ioc(Mips, dir, ty, nr, size), mips, "mips nr {nr}");
        }
    }

    #[test]
    fn target_helpers_use_target_encoding() {
        assert_eq!(ior(M, 1, 32), ioc(TARGET, Read, M, 1, 32));
        assert_eq!(io(M, 0x13), ioc(TARGET, None, M, 0x13, 0));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(iow(M, 0x14, 16), 0x40104D14);
    }

    #[test]
    #[should_panic(expected = "too large")]
    fn oversized_argument_is_rejected() {
        let _ = ioc(Mips, Write, M, 0, 1 << 13);
    }
}
