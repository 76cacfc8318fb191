//! The Zyxel NWA50AX root as the packer builds it, checked by the real kernel: a UBIFS from
//! `image::ubifs::write` in an autoresize `rootfs` volume of a UBI image from
//! `liminix_ubi::image`, with the NWA50AX geometry (128 KiB PEBs, 2 KiB pages, no sub-pages,
//! 126976-byte LEBs), wrapped in the firmware FIT of `image::zyxel`. On the host, dumpimage
//! takes the firmware data back out of the FIT and ubi_reader reads its UBI half; in the
//! guest, that same UBI half is written to nandsim NAND, attached by UBI, mounted as UBIFS,
//! and every file, link and directory compared with the source tree.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use liminix_build_tools::image::fit::{self, Fit, Hash, Kernel};
use liminix_build_tools::image::ubifs::{self, UbifsSpec};
use liminix_build_tools::image::zyxel::{self, ZyxelFitSpec, NWA50AX_COMPAT_MODELS};
use liminix_build_tools::image::{Arch, Compression};
use liminix_tests::data::pattern;
use liminix_ubi::image::{write_image, Geometry, ImageParams, VolumeSpec};
use liminix_ubi::VolumeKind;
use liminix_vm::{VmBuilder, VmOutput};
use sha2::{Digest, Sha256};

/// nandsim as a 256 MiB NAND with 128 KiB erase blocks and 2 KiB pages.
const NANDSIM: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15";
const EPOCH: u32 = 1_700_000_000;
const KERNEL_HALF: u64 = 8 << 20;
const LEB: u64 = 126_976;
const MAX_LEBS: u64 = 1024;
const IMAGE_SEQ: u32 = 0x2A50;

/// The NWA50AX's NAND as UBI sees it: the VID header in the second page, not a sub-page.
fn geometry() -> Geometry {
    Geometry {
        peb_size: 128 << 10,
        min_io: 2048,
        subpage: 2048,
        vid_hdr_offset: Some(2048),
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A root with the shapes a real one has: text and binaries, nested directories, an empty
/// file, an executable, links (one dangling).
fn make_tree(root: &Path) {
    for d in ["bin", "etc/init.d", "lib/modules/6.6", "www"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("etc/hostname"), "nwa50ax\n").unwrap();
    fs::write(root.join("etc/empty"), "").unwrap();
    let text: String = (0..40_000).map(|i| format!("option {i} value\n")).collect();
    fs::write(root.join("www/index.txt"), text).unwrap();
    fs::write(root.join("bin/busybox"), pattern(61, 900_000)).unwrap();
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        root.join("lib/modules/6.6/mt7915e.ko"),
        pattern(62, 400_001),
    )
    .unwrap();
    std::os::unix::fs::symlink("../bin/busybox", root.join("etc/init.d/rcS")).unwrap();
    std::os::unix::fs::symlink("/run/missing", root.join("etc/resolv.conf")).unwrap();
}

/// "f PATH SHA256" per file, "l PATH TARGET" per link, "d PATH" per directory, by path.
fn listing(root: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(root.join(rel.trim_start_matches('/'))).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{rel}/{}", entry.file_name().to_string_lossy());
        let path = root.join(name.trim_start_matches('/'));
        let ty = entry.file_type().unwrap();
        let line = if ty.is_symlink() {
            format!("l {}", fs::read_link(&path).unwrap().display())
        } else if ty.is_dir() {
            listing(root, &name, out);
            "d".to_string()
        } else {
            format!(
                "f {}",
                hex::encode(Sha256::digest(fs::read(&path).unwrap()))
            )
        };
        out.insert(name, line);
    }
}

/// The guest's view of the mounted tree, in the same form, from the tagged lines.
const GUEST: &str = r#"
modprobe ubi
# ubifs asks the crypto API for every compressor it knows, zstd included.
modprobe zstd
modprobe ubifs
@NANDSIM@
flash_erase -q /dev/mtd0 0 0
nandwrite -q /dev/mtd0 /img/ubi-half.img
ubiattach -m 0 -O 2048 && echo "attach ok=1"
v=/sys/class/ubi/ubi0
echo "vol name=$(cat $v/ubi0_0/name) ebs=$(cat $v/ubi0_0/reserved_ebs) avail=$(cat $v/avail_eraseblocks) leb=$(cat $v/eraseblock_size)"
mkdir -p /mnt && mount -t ubifs ubi0:rootfs /mnt && echo "mount ok=1"
cd /mnt
find . -mindepth 1 -type d | while read p; do echo "entry ${p#.} d"; done
find . -type l | while read p; do echo "entry ${p#.} l $(readlink "$p")"; done
find . -type f | while read p; do echo "entry ${p#.} f $(sha256sum "$p" | cut -d' ' -f1)"; done
echo "rw probe" > /mnt/probe && sync && echo "write ok=1"
cd / && umount /mnt && echo "umount ok=1"
"#;

fn guest_listing(out: &VmOutput) -> BTreeMap<String, String> {
    out.lines_starting("entry ")
        .into_iter()
        .map(|l| {
            let rest = l.trim_start_matches("entry ").trim();
            let (path, what) = rest.split_once(' ').expect("entry PATH WHAT");
            (path.to_string(), what.to_string())
        })
        .collect()
}

fn kernel_fit() -> Vec<u8> {
    let (kernel, fdt) = (pattern(63, 2_000_000), pattern(64, 30_000));
    fit::write(&Fit {
        description: "Liminix kernel",
        arch: Arch::Mips,
        time: EPOCH,
        kernel: Kernel {
            data: &kernel,
            compression: Compression::Lzma,
            load: 0x8000_1000,
            entry: 0x8000_1000,
        },
        fdt: &fdt,
        hashes: &[Hash::Sha256],
    })
    .unwrap()
}

/// The UBIFS of `src` in the autoresize `rootfs` volume of a UBI image.
fn ubi_image(dir: &Path, src: &Path) -> Vec<u8> {
    let spec = UbifsSpec {
        min_io: 2048,
        leb_size: LEB,
        max_leb_count: MAX_LEBS,
        epoch: u64::from(EPOCH),
    };
    let fs_img = dir.join("root.ubifs");
    ubifs::write(src, &spec, &fs_img).unwrap();
    let fs_bytes = fs::read(&fs_img).unwrap();
    let vol = VolumeSpec {
        autoresize: true,
        ..VolumeSpec::new(0, "rootfs", VolumeKind::Dynamic, &fs_bytes)
    };
    let params = ImageParams {
        image_seq: IMAGE_SEQ,
        erase_counter: 0,
    };
    let mut img = Vec::new();
    write_image(&geometry(), params, &[vol], &mut img).unwrap();
    img
}

/// Builds the firmware FIT and returns the UBI half dumpimage extracts from it.
fn ubi_half_from_fit(dir: &Path, ubi: &[u8]) -> Vec<u8> {
    let kernel = kernel_fit();
    let blob = zyxel::firmware_fit(&ZyxelFitSpec {
        kernel: &kernel,
        kernel_half: KERNEL_HALF,
        ubi,
        ubi_half: 100 << 20,
        compat_models: &NWA50AX_COMPAT_MODELS,
        description: zyxel::DESCRIPTION,
        time: EPOCH,
    })
    .unwrap();
    let (itb, data) = (dir.join("zyxel.itb"), dir.join("firmware.bin"));
    fs::write(&itb, blob).unwrap();
    run(Command::new("dumpimage")
        .args(["-T", "flat_dt", "-p", "0", "-o"])
        .arg(&data)
        .arg(&itb));
    let data = fs::read(&data).unwrap();
    assert_eq!(data.len() as u64, KERNEL_HALF + ubi.len() as u64);
    assert!(data[..kernel.len()] == kernel[..], "kernel half");
    data[KERNEL_HALF as usize..].to_vec()
}

/// ubi_reader's reading of the UBI half: the volume and the files in it.
fn check_with_ubi_reader(dir: &Path, half: &Path, want: &BTreeMap<String, String>) {
    let info = run(Command::new("ubireader_display_info").arg(half));
    let has = |line: &str| info.lines().any(|l| l.trim() == line);
    assert!(
        has("Volume: rootfs"),
        "no rootfs volume in ubi_reader's listing"
    );
    assert!(
        has("flags: 'autoresize'"),
        "rootfs is not autoresize for ubi_reader"
    );
    let out = dir.join("extracted");
    run(Command::new("ubireader_extract_files")
        .arg("-k")
        .arg("-o")
        .arg(&out)
        .arg(half));
    // ubi_reader puts each volume's files under IMAGE_SEQ/VOLUME_NAME.
    let vol_root = out.join(format!("{IMAGE_SEQ}/rootfs"));
    let mut got = BTreeMap::new();
    listing(&vol_root, "", &mut got);
    assert_eq!(&got, want, "ubi_reader's extracted tree");
}

#[test]
fn zyxel_fit_ubi_half_attaches_and_mounts_as_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("root");
    make_tree(&src);
    let mut want = BTreeMap::new();
    listing(&src, "", &mut want);

    let ubi = ubi_image(dir.path(), &src);
    let half = ubi_half_from_fit(dir.path(), &ubi);
    assert!(half == ubi, "the FIT's UBI half is not the UBI image");
    let half_path = dir.path().join("ubi-half.img");
    fs::write(&half_path, &half).unwrap();
    check_with_ubi_reader(dir.path(), &half_path, &want);

    let out = VmBuilder::new()
        .file(&half_path, "/img/ubi-half.img")
        .module("nandsim")
        .module("ubi")
        .module("zstd")
        .module("ubifs")
        .host_tool("flash_erase")
        .host_tool("nandwrite")
        .host_tool("ubiattach")
        .timeout(400)
        .script(&GUEST.replace("@NANDSIM@", NANDSIM))
        .run()
        .unwrap();
    eprintln!("guest ran {:.1} s", out.elapsed.as_secs_f64());
    if std::env::var_os("LIMINIX_VM_SERIAL").is_some() {
        eprintln!("{}", out.serial);
    }
    out.assert_success();
    for step in ["attach", "mount", "write", "umount"] {
        assert_eq!(out.require_field(&format!("{step} "), "ok"), "1", "{step}");
    }
    assert_eq!(out.require_field("vol ", "name"), "rootfs");
    assert_eq!(out.require_field("vol ", "leb"), LEB.to_string());
    assert_eq!(
        out.require_field("vol ", "avail"),
        "0",
        "autoresize took every free PEB"
    );
    let ebs: u64 = out.require_field("vol ", "ebs").parse().unwrap();
    assert!(
        ebs > 1500,
        "rootfs did not grow over the 256 MiB NAND: {ebs} LEBs"
    );
    assert_eq!(guest_listing(&out), want, "the tree the kernel mounted");
}
