//! The Zyxel NWA50AX firmware FIT against U-Boot's and dtc's own tools: `mkimage -l` lists the
//! one firmware image and its sha1, `dumpimage` extracts data equal to the padded kernel
//! followed by the UBI image, `fdtget` reads compat-models, `sha1sum` checks the hash, and
//! mkimage's build of OpenWrt's `.its` for the device decompiles (dtc) to the same tree.

use std::path::{Path, PathBuf};
use std::process::Command;

use liminix_build_tools::image::fit::{self, Fit, Hash, Kernel};
use liminix_build_tools::image::zyxel::{self, ZyxelError, ZyxelFitSpec, NWA50AX_COMPAT_MODELS};
use liminix_build_tools::image::{Arch, Compression};

const EPOCH: u32 = 1_700_000_000;
/// The NWA50AX kernel half of a slot.
const KERNEL_HALF: u64 = 8 << 20;
const UBI_HALF: u64 = 30 << 20;

/// Runs a tool; a missing tool or a failure fails the test with the tool's own words.
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
    String::from_utf8(out.stdout).expect("tool output is UTF-8")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A bootable kernel FIT as the slot's kernel half holds it.
fn kernel_fit() -> Vec<u8> {
    let kernel = liminix_testdata::pattern(7, 1_500_000);
    let fdt = liminix_testdata::pattern(8, 20_000);
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

fn spec<'a>(kernel: &'a [u8], ubi: &'a [u8]) -> ZyxelFitSpec<'a> {
    ZyxelFitSpec {
        kernel,
        kernel_half: KERNEL_HALF,
        ubi,
        ubi_half: UBI_HALF,
        compat_models: &NWA50AX_COMPAT_MODELS,
        description: zyxel::DESCRIPTION,
        time: EPOCH,
    }
}

/// The data the FIT must carry: the kernel, zeros to 8 MiB, the UBI image.
fn expected_data(kernel: &[u8], ubi: &[u8]) -> Vec<u8> {
    let mut data = kernel.to_vec();
    data.resize(KERNEL_HALF as usize, 0);
    data.extend_from_slice(ubi);
    data
}

struct Built {
    dir: tempfile::TempDir,
    itb: PathBuf,
    data: Vec<u8>,
}

fn build() -> Built {
    let kernel = kernel_fit();
    let ubi = liminix_testdata::pattern(9, 3 * 131_072);
    let blob = zyxel::firmware_fit(&spec(&kernel, &ubi)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let itb = write(dir.path(), "zyxel.itb", &blob);
    Built {
        data: expected_data(&kernel, &ubi),
        dir,
        itb,
    }
}

fn field<'a>(listing: &'a str, name: &str) -> &'a str {
    listing
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name:?} in:\n{listing}"))
        .trim()
}

#[test]
fn mkimage_lists_one_firmware_image_with_its_sha1() {
    let b = build();
    let listing = run(Command::new("mkimage").arg("-l").arg(&b.itb));
    assert_eq!(
        field(&listing, "FIT description:"),
        "Zyxel FIT (Flattened Image Tree)"
    );
    assert!(listing.contains(" Image 0 (firmware)"), "{listing}");
    assert!(!listing.contains(" Image 1 "), "{listing}");
    assert_eq!(field(&listing, "Type:"), "Firmware");
    assert_eq!(field(&listing, "Compression:"), "uncompressed");
    assert!(
        field(&listing, "Data Size:").starts_with(&format!("{} Bytes", b.data.len())),
        "{listing}"
    );
    assert_eq!(field(&listing, "Hash algo:"), "sha1");
    let data = write(b.dir.path(), "expected.bin", &b.data);
    let sum = run(Command::new("sha1sum").arg(&data));
    assert_eq!(field(&listing, "Hash value:"), &sum[..40]);
}

#[test]
fn dumpimage_extracts_the_padded_kernel_then_the_ubi_image() {
    let b = build();
    let out = b.dir.path().join("firmware.bin");
    run(Command::new("dumpimage")
        .args(["-T", "flat_dt", "-p", "0", "-o"])
        .arg(&out)
        .arg(&b.itb));
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), b.data.len());
    assert!(got == b.data, "extracted firmware data differs");
}

#[test]
fn fdtget_reads_compat_models_and_the_image_type() {
    let b = build();
    let get = |node: &str, prop: &str, ty: &str| {
        run(Command::new("fdtget")
            .args(["-t", ty])
            .arg(&b.itb)
            .args([node, prop]))
        .trim()
        .to_string()
    };
    assert_eq!(
        get("/", "compat-models", "bx"),
        "6b e1 6f e1 ff ff ff ff ff ff"
    );
    assert_eq!(get("/images/firmware", "type", "s"), "firmware");
    assert_eq!(get("/images/firmware/hash@1", "algo", "s"), "sha1");
    assert_eq!(get("/", "timestamp", "u"), EPOCH.to_string());
}

/// OpenWrt's ramips `.its` for the NWA50AX (the one Liminix writes too), data included.
fn openwrt_its(data: &Path) -> String {
    format!(
        "/dts-v1/;\n/ {{\n\tdescription = \"Zyxel FIT (Flattened Image Tree)\";\n\
         \tcompat-models = [6b e1 6f e1 ff ff ff ff ff ff];\n\t#address-cells = <1>;\n\
         \timages {{\n\t\tfirmware {{\n\t\t\tdata = /incbin/(\"{}\");\n\
         \t\t\ttype = \"firmware\";\n\t\t\tcompression = \"none\";\n\
         \t\t\thash@1 {{\n\t\t\t\talgo = \"sha1\";\n\t\t\t}};\n\t\t}};\n\t}};\n}};\n",
        data.display()
    )
}

fn decompile(dtb: &Path) -> String {
    run(Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(dtb))
}

/// mkimage's blob keeps dtc's spare space and string order, so the bytes differ; the tree
/// (every node and property, in order) must not.
#[test]
fn decompiles_to_the_tree_mkimage_builds_from_the_openwrt_its() {
    let b = build();
    let data = write(b.dir.path(), "firmware.bin", &b.data);
    let its = write(b.dir.path(), "image.its", openwrt_its(&data).as_bytes());
    let theirs = b.dir.path().join("theirs.itb");
    run(Command::new("mkimage")
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .arg("-f")
        .arg(&its)
        .arg(&theirs));
    let (ours, theirs) = (decompile(&b.itb), decompile(&theirs));
    assert!(ours == theirs, "decompiled trees differ");
}

#[test]
fn same_inputs_give_same_bytes() {
    let kernel = kernel_fit();
    let ubi = liminix_testdata::pattern(9, 131_072);
    let one = zyxel::firmware_fit(&spec(&kernel, &ubi)).unwrap();
    let two = zyxel::firmware_fit(&spec(&kernel, &ubi)).unwrap();
    assert!(one == two);
}

#[test]
fn kernel_over_the_half_is_refused_with_the_numbers() {
    let kernel = vec![0x55; KERNEL_HALF as usize + 1];
    let err = zyxel::firmware_fit(&spec(&kernel, &[1, 2, 3])).unwrap_err();
    assert!(
        matches!(err, ZyxelError::KernelTooBig { over: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("8388609 bytes") && msg.contains("8388608-byte"),
        "{msg}"
    );
}

#[test]
fn kernel_exactly_the_half_fits() {
    let kernel = vec![0x55; KERNEL_HALF as usize];
    let blob = zyxel::firmware_fit(&spec(&kernel, &[1, 2, 3])).unwrap();
    assert!(blob.len() > KERNEL_HALF as usize + 3);
}

#[test]
fn ubi_over_the_half_is_refused_with_the_numbers() {
    let ubi = vec![0xff; UBI_HALF as usize + 4096];
    let err = zyxel::firmware_fit(&spec(&kernel_fit(), &ubi)).unwrap_err();
    assert!(
        matches!(err, ZyxelError::UbiTooBig { over: 4096, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("31461376 bytes"), "{err}");
}

#[test]
fn empty_compat_models_are_refused() {
    let kernel = kernel_fit();
    let s = ZyxelFitSpec {
        compat_models: &[],
        ..spec(&kernel, &[1])
    };
    assert!(matches!(
        zyxel::firmware_fit(&s),
        Err(ZyxelError::NoCompatModels)
    ));
}
