//! The syscall table against the kernel's own headers, as Debian's cross toolchains install
//! them (linux-libc-dev and its -cross variants).

use liminix_kexec::syscalls::{numbers, Abi};

/// The number `#define __NR_<name> …` gives in `header`, with its base (`__NR_Linux`,
/// `__NR_SYSCALL_BASE`) as `base`.
fn define(header: &str, name: &str, base: i64) -> Option<i64> {
    let text = std::fs::read_to_string(header).unwrap_or_else(|e| {
        panic!("{header}: {e} (install the cross toolchains of scripts/setup.sh)")
    });
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&format!("__NR_{name}")))?;
    let value = line.split_once(&format!("__NR_{name}")).unwrap().1.trim();
    let digits: String = value.chars().filter(|c| c.is_ascii_digit()).collect();
    let n: i64 = digits.parse().unwrap();
    Some(if value.contains('+') { base + n } else { n })
}

#[test]
fn numbers_match_the_kernel_headers() {
    let cases = [
        (
            Abi::X86_64,
            "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
            0,
        ),
        (
            Abi::Arm,
            "/usr/arm-linux-gnueabihf/include/asm/unistd-eabi.h",
            0,
        ),
        (
            Abi::MipsO32,
            "/usr/mipsel-linux-gnu/include/asm/unistd_o32.h",
            4000,
        ),
        (
            Abi::MipsO32,
            "/usr/mips-linux-gnu/include/asm/unistd_o32.h",
            4000,
        ),
    ];
    for (abi, header, base) in cases {
        let n = numbers(abi);
        assert_eq!(
            Some(n.kexec_load),
            define(header, "kexec_load", base),
            "{abi:?}"
        );
        assert_eq!(
            n.kexec_file_load,
            define(header, "kexec_file_load", base),
            "{abi:?}"
        );
    }
}
