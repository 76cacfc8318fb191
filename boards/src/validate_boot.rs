//! Rules across `[boot]`, `[[output]]` and `[install]`: every output names parts of the board
//! that exist and has the boot facts it needs, so `liminix-pack image` never finds out half way.

use std::collections::BTreeSet;

use crate::boot::{Boot, KernelCompression, KernelFormat, Output, RootFs};
use crate::schema::{Board, ChipKind};
use crate::target::TargetRef;
use crate::validate::invalid;
use crate::{BoardError, Cpu};

pub fn check(b: &Board) -> Result<(), BoardError> {
    let Some(boot) = &b.boot else {
        if let Some(o) = b.outputs.first() {
            return Err(invalid(
                b,
                format!("output {} needs a [boot] section", o.name()),
            ));
        }
        if b.install.is_some() {
            return Err(invalid(b, "[install] needs [[output]]s to name".into()));
        }
        return Ok(());
    };
    check_boot(b, boot)?;
    let mut seen = BTreeSet::new();
    for o in &b.outputs {
        if !seen.insert(o.name()) {
            return Err(invalid(b, format!("output {} is declared twice", o.name())));
        }
        check_output(b, boot, o)
            .map_err(|msg| invalid(b, format!("output {}: {msg}", o.name())))?;
    }
    if let Some(i) = &b.install {
        if !seen.contains(i.output.as_str()) {
            return Err(invalid(
                b,
                format!(
                    "[install] output {:?} is not one of the board's outputs {seen:?}",
                    i.output
                ),
            ));
        }
    }
    Ok(())
}

fn check_boot(b: &Board, boot: &Boot) -> Result<(), BoardError> {
    let fits_cpu = match (boot.kernel_format, b.cpu) {
        (_, None) => true,
        (_, Some(Cpu::X86_64)) => false,
        (KernelFormat::Zimage, Some(cpu)) => cpu == Cpu::Armv7,
        (KernelFormat::Image, Some(cpu)) => cpu == Cpu::Aarch64,
        (KernelFormat::Uimage | KernelFormat::Fit, Some(_)) => true,
    };
    if !fits_cpu {
        return Err(invalid(
            b,
            format!(
                "[boot] kernel_format {:?} cannot boot on cpu {}",
                boot.kernel_format,
                b.cpu.map_or("?", Cpu::name)
            ),
        ));
    }
    let as_is = matches!(
        boot.kernel_format,
        KernelFormat::Zimage | KernelFormat::Image
    );
    if as_is && boot.compression != KernelCompression::None {
        return Err(invalid(
            b,
            "[boot] a zimage or image kernel is booted as built: compression must be none".into(),
        ));
    }
    for (what, v) in [
        ("load_address", Some(boot.load_address)),
        ("entry_point", Some(boot.entry_point)),
        ("flash_address", boot.flash_address),
        ("tftp_load_address", boot.tftp_load_address),
    ] {
        if v.is_some_and(|v| v > u64::from(u32::MAX)) {
            return Err(invalid(
                b,
                format!("[boot] {what} does not fit the 32 bits U-Boot images hold"),
            ));
        }
    }
    if boot.root_device.trim().is_empty() {
        return Err(invalid(b, "[boot] root_device is empty".into()));
    }
    Ok(())
}

fn need(v: Option<u64>, what: &str) -> Result<u64, String> {
    v.ok_or_else(|| format!("needs [boot] {what}"))
}

fn check_output(b: &Board, boot: &Boot, o: &Output) -> Result<(), String> {
    match o {
        Output::Kernel | Output::Extlinux => Ok(()),
        Output::FitBoot => match boot.kernel_format {
            KernelFormat::Fit => Ok(()),
            f => Err(format!("/boot/fit needs kernel_format fit, not {f:?}")),
        },
        Output::Mtdimage { partition } => mtdimage(b, boot, partition),
        Output::Ubimage { volume } => {
            need(boot.tftp_load_address, "tftp_load_address")?;
            root_is(boot, RootFs::Ubifs)?;
            let u = b.ubi.as_ref().ok_or("needs the board's [ubi] section")?;
            match u.volumes.iter().any(|v| &v.name == volume) {
                true => Ok(()),
                false => Err(format!("volume {volume:?} is not a volume of [ubi]")),
            }
        }
        Output::Ubivolume {
            partition, volume, ..
        } => {
            b.ubi.as_ref().ok_or("needs the board's [ubi] section")?;
            crate::validate::plain_name(volume)
                .then_some(())
                .ok_or(format!("volume name {volume:?} is not plain"))?;
            b.partition(partition)
                .map(|_| ())
                .ok_or(format!("partition {partition:?} is not on the board"))
        }
        Output::ZyxelNwaFit {
            compat_models,
            slot,
        } => zyxel(b, boot, compat_models, slot),
        Output::Mbrimage { disk_size, .. } => match disk_size % 512 {
            0 if *disk_size > 0 => Ok(()),
            _ => Err(format!(
                "disk_size {disk_size} is not a whole number of 512-byte sectors"
            )),
        },
        Output::Tftpboot { erase_size, .. } => {
            need(boot.tftp_load_address, "tftp_load_address")?;
            if boot.root_fs == RootFs::Ubifs {
                return Err("a ubifs root needs UBI, which the phram device of tftpboot is not; build the board with root_fs squashfs to try it over TFTP".into());
            }
            match erase_size.is_power_of_two() {
                true => Ok(()),
                false => Err(format!("erase_size {erase_size} is not a power of two")),
            }
        }
    }
}

fn root_is(boot: &Boot, fs: RootFs) -> Result<(), String> {
    match boot.root_fs == fs {
        true => Ok(()),
        false => Err(format!(
            "needs root_fs {}, the board has {}",
            fs.as_str(),
            boot.root_fs.as_str()
        )),
    }
}

fn mtdimage(b: &Board, boot: &Boot, partition: &str) -> Result<(), String> {
    need(boot.flash_address, "flash_address")?;
    need(boot.tftp_load_address, "tftp_load_address")?;
    root_is(boot, RootFs::Squashfs)?;
    if boot.kernel_format != KernelFormat::Uimage {
        return Err(
            "firmware.bin starts with a uImage the kernel splits off: kernel_format must be uimage"
                .into(),
        );
    }
    let (chip, p) = b
        .partition(partition)
        .ok_or(format!("partition {partition:?} is not on the board"))?;
    if chip.kind != ChipKind::Nor || p.read_only {
        return Err(format!(
            "partition {partition} must be a writable NOR partition"
        ));
    }
    Ok(())
}

fn zyxel(b: &Board, boot: &Boot, compat: &str, slot: &str) -> Result<(), String> {
    if boot.kernel_format != KernelFormat::Fit {
        return Err("the kernel half holds a FIT: kernel_format must be fit".into());
    }
    root_is(boot, RootFs::Ubifs)?;
    crate::boot::parse_hex(compat).ok_or(format!("compat_models {compat:?} is not hex bytes"))?;
    let s = b
        .slots
        .iter()
        .find(|s| s.name == slot)
        .ok_or(format!("slot {slot:?} is not a slot of the board"))?;
    s.ubi
        .as_ref()
        .ok_or(format!("slot {slot} has no UBI partition"))?;
    let raw = s
        .targets
        .values()
        .any(|t| matches!(TargetRef::parse(t), Ok(TargetRef::Raw(_))));
    match raw {
        true => Ok(()),
        false => Err(format!("slot {slot} has no raw kernel target")),
    }
}
