//! Real U-Boot (Debian's qemu_arm build, 2023.01) reads environments written by this
//! crate from the second pflash bank (CONFIG_ENV_ADDR=0x4000000, CONFIG_ENV_SIZE=0x40000,
//! single copy: Debian builds it without CONFIG_SYS_REDUNDAND_ENVIRONMENT). The redundant
//! layout is proven in `uboot_qemu_redundant.rs` on U-Boot built from Debian's source with
//! it enabled (`uboot/build-qemu-arm.sh redundant`). Each boot takes about a second under TCG.

mod common;

use std::ffi::OsString;
use std::path::Path;

use common::env;
use liminix_bootenv::storage::{CopyDevice, FileCopy};
use liminix_bootenv::{Endian, EnvStore, Layout};
use liminix_vm::arm::assets::UBOOT_QEMU_ARM;
use liminix_vm::arm::{PflashBed as Bed, ENV_SIZE};

/// Debian's qemu_arm U-Boot in a fresh bed; a missing QEMU or U-Boot fails the test.
fn bed() -> Bed {
    Bed::new(Path::new(UBOOT_QEMU_ARM)).unwrap_or_else(|e| panic!("{e}"))
}

fn store(bed: &Bed, endian: Endian) -> EnvStore {
    let layout = Layout::new(ENV_SIZE, false, endian).unwrap();
    let copies: Vec<Box<dyn CopyDevice>> = vec![Box::new(FileCopy::new(&bed.env, 0))];
    EnvStore::new(layout, copies).unwrap()
}

#[test]
fn uboot_loads_our_environment_and_our_edits() {
    let bed = bed();
    let mut st = store(&bed, Endian::Little);
    st.save(&env(
        "bootdelay=0\nslot=a b=c\nbootcmd=echo MARK-${slot}-END; poweroff\n",
    ))
    .unwrap();
    let con = bed.boot("poweroff");
    assert!(
        con.contains("Loading Environment from Flash... OK"),
        "{con}"
    );
    assert!(con.contains("MARK-a b=c-END"), "{con}");

    // edit with the drop-in fw_setenv: U-Boot must see the new value
    let cfg = bed.env.with_extension("config");
    std::fs::write(&cfg, format!("{} 0x0 0x40000 0x40000\n", bed.env.display())).unwrap();
    let args: Vec<OsString> = ["-c", cfg.to_str().unwrap(), "slot", "second try"]
        .iter()
        .map(OsString::from)
        .collect();
    let (mut o, mut e) = (Vec::new(), Vec::new());
    assert_eq!(liminix_bootenv::fw_setenv_main(&args, &mut o, &mut e), 0);
    let con = bed.boot("poweroff");
    assert!(
        con.contains("Loading Environment from Flash... OK"),
        "{con}"
    );
    assert!(con.contains("MARK-second try-END"), "{con}");
}

#[test]
fn uboot_rejects_torn_and_wrong_endian_copies_like_we_do() {
    let bed = bed();
    let e = env("bootdelay=0\nbootcmd=echo SHOULD-NOT-RUN; poweroff\n");
    // wrong byte order: valid for a big-endian target, not for this ARM U-Boot
    store(&bed, Endian::Big).save(&e).unwrap();
    assert!(store(&bed, Endian::Little).load().is_err());
    let con = bed.boot("using default environment");
    assert!(con.contains("bad CRC, using default environment"), "{con}");
    assert!(!con.contains("SHOULD-NOT-RUN"), "{con}");

    // torn single copy (what a power cut during an in-place rewrite leaves)
    store(&bed, Endian::Little).save(&e).unwrap();
    let mut img = std::fs::read(&bed.env).unwrap();
    img[0x20..0x40].fill(0xFF);
    std::fs::write(&bed.env, &img).unwrap();
    assert!(store(&bed, Endian::Little).load().is_err());
    let con = bed.boot("using default environment");
    assert!(con.contains("bad CRC, using default environment"), "{con}");
}
