//! Syscall numbers of the kexec calls per CPU, from the kernel's tables (`asm/unistd*.h`). MIPS
//! o32 numbers start at 4000. Only `kexec_load` exists everywhere; `kexec_file_load` only where
//! the kernel implements it.

/// A CPU family with its syscall ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    X86_64,
    I386,
    /// 32-bit ARM EABI.
    Arm,
    Aarch64,
    /// 32-bit MIPS (o32), either endian.
    MipsO32,
    Riscv64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbers {
    pub kexec_load: i64,
    pub kexec_file_load: Option<i64>,
}

pub const fn numbers(abi: Abi) -> Numbers {
    let (kexec_load, kexec_file_load) = match abi {
        Abi::X86_64 => (246, Some(320)),
        Abi::I386 => (283, None),
        // 401 is in 32-bit ARM's table, but arch/arm cannot build KEXEC_FILE, so the call
        // answers ENOSYS there: file_load_native() never picks it.
        Abi::Arm => (347, Some(401)),
        Abi::Aarch64 | Abi::Riscv64 => (104, Some(294)),
        Abi::MipsO32 => (4000 + 311, None),
    };
    Numbers {
        kexec_load,
        kexec_file_load,
    }
}

/// The ABI this program was built for.
pub const fn native() -> Option<Abi> {
    if cfg!(target_arch = "x86_64") {
        Some(Abi::X86_64)
    } else if cfg!(target_arch = "x86") {
        Some(Abi::I386)
    } else if cfg!(target_arch = "arm") {
        Some(Abi::Arm)
    } else if cfg!(target_arch = "aarch64") {
        Some(Abi::Aarch64)
    } else if cfg!(target_arch = "mips") {
        Some(Abi::MipsO32)
    } else if cfg!(target_arch = "riscv64") {
        Some(Abi::Riscv64)
    } else {
        None
    }
}

/// Whether `kexec_file_load` is the call to use: only where the kernel lays out the image
/// itself for the kernels we boot (x86_64 bzImage).
pub const fn file_load_native() -> bool {
    cfg!(target_arch = "x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_numbers_are_libcs() {
        let n = numbers(native().expect("a supported CPU"));
        // c_long is i32 on 32-bit CPUs, where the conversion is not useless.
        #[allow(clippy::useless_conversion)]
        let libc = i64::from(libc::SYS_kexec_load);
        assert_eq!(n.kexec_load, libc);
    }
}
