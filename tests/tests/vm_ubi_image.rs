//! UBI images from `liminix_ubi::image` attached by the real kernel: written
//! raw to nandsim NAND (2 KiB pages, 512-byte sub-pages) and to mtdram NOR,
//! attached with ubiattach, every volume read back; the autoresize volume
//! must have grown over all free PEBs. One boot for both flashes.

use liminix_tests::data::pattern;
use liminix_ubi::image::{write_image, Geometry, ImageParams, VolumeSpec};
use liminix_ubi::VolumeKind;
use liminix_vm::{VmBuilder, VmOutput};

/// nandsim as a 256 MiB NAND, 128 KiB erase blocks, 2 KiB pages.
const NANDSIM: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15";

const KERNEL_LEN: usize = 300_001;
const ROOT_LEN: usize = 200_000;

fn volumes<'a>(kernel: &'a [u8], root: &'a [u8]) -> Vec<VolumeSpec<'a>> {
    vec![
        VolumeSpec::new(0, "kernel", VolumeKind::Static, kernel),
        VolumeSpec {
            size: Some(1 << 20),
            ..VolumeSpec::new(1, "rootfs", VolumeKind::Dynamic, root)
        },
        VolumeSpec {
            size: Some(256 << 10),
            autoresize: true,
            ..VolumeSpec::new(5, "data", VolumeKind::Dynamic, &[])
        },
    ]
}

fn image(geometry: Geometry, volumes: &[VolumeSpec]) -> Vec<u8> {
    let params = ImageParams {
        image_seq: 0x5EED,
        erase_counter: 0,
    };
    let mut img = Vec::new();
    write_image(&geometry, params, volumes, &mut img).unwrap();
    img
}

/// Attach MTD `$MTD` as UBI `$UBI` and print what the kernel made of the image.
const READ_BACK: &str = r#"
ubiattach -m @MTD@ -d @UBI@ && echo "@TAG@-attach ok=1"
v=/sys/class/ubi/ubi@UBI@
echo "@TAG@-dev avail=$(cat $v/avail_eraseblocks) vols=$(cat $v/volumes_count)"
for id in 0 1 5; do
  echo "@TAG@-vol$id name=$(cat $v/ubi@UBI@_$id/name) type=$(cat $v/ubi@UBI@_$id/type) bytes=$(cat $v/ubi@UBI@_$id/data_bytes) ebs=$(cat $v/ubi@UBI@_$id/reserved_ebs)"
done
echo "@TAG@-kernel-len len=$(wc -c < /dev/ubi@UBI@_0)"
same @KERNEL_LEN@ /dev/ubi@UBI@_0 /img/kernel.bin @TAG@-kernel
same @ROOT_LEN@ /dev/ubi@UBI@_1 /img/root.bin @TAG@-root
"#;

fn read_back(mtd: u32, ubi: u32, tag: &str) -> String {
    READ_BACK
        .replace("@MTD@", &mtd.to_string())
        .replace("@UBI@", &ubi.to_string())
        .replace("@TAG@", tag)
        .replace("@KERNEL_LEN@", &KERNEL_LEN.to_string())
        .replace("@ROOT_LEN@", &ROOT_LEN.to_string())
}

fn script() -> String {
    format!(
        "modprobe ubi\n{NANDSIM}\nflash_erase -q /dev/mtd0 0 0\n\
         nandwrite -q /dev/mtd0 /img/nand.img\n{}\n\
         modprobe mtdram total_size=4096 erase_size=64\n\
         flashcp /img/nor.img /dev/mtd1\n{}",
        read_back(0, 0, "nand"),
        read_back(1, 1, "nor")
    )
}

/// `leb_size`: the LEB size the kernel must have derived from the flash.
fn check(out: &VmOutput, tag: &str, leb_size: u64) {
    let field = |prefix: &str, key| out.require_field(&format!("{tag}-{prefix} "), key);
    assert_eq!(field("attach", "ok"), "1");
    assert_eq!(field("dev", "vols"), "3");
    assert_eq!(
        field("dev", "avail"),
        "0",
        "{tag}: autoresize took every free PEB"
    );
    assert_eq!(field("vol0", "name"), "kernel");
    assert_eq!(field("vol0", "type"), "static");
    assert_eq!(field("vol0", "bytes"), KERNEL_LEN.to_string());
    assert_eq!(field("kernel-len", "len"), KERNEL_LEN.to_string());
    assert_eq!(field("vol1", "name"), "rootfs");
    assert_eq!(field("vol1", "type"), "dynamic");
    let root_ebs = (1u64 << 20).div_ceil(leb_size);
    assert_eq!(
        field("vol1", "ebs"),
        root_ebs.to_string(),
        "{tag}: 1 MiB reserved"
    );
    assert_eq!(field("vol5", "name"), "data");
    let grown: u64 = field("vol5", "ebs").parse().unwrap();
    assert!(grown > 10, "{tag}: autoresize volume still {grown} LEBs");
    assert_eq!(field("kernel", "equal"), "1");
    assert_eq!(field("root", "equal"), "1");
}

#[test]
fn kernel_attaches_written_ubi_images() {
    let (kernel, root) = (pattern(41, KERNEL_LEN), pattern(42, ROOT_LEN));
    let vols = volumes(&kernel, &root);
    let nand = Geometry {
        peb_size: 128 << 10,
        min_io: 2048,
        subpage: 512,
        vid_hdr_offset: None,
    };
    let nor = Geometry {
        peb_size: 64 << 10,
        min_io: 1,
        subpage: 1,
        vid_hdr_offset: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("nand.img", image(nand, &vols)),
        ("nor.img", image(nor, &vols)),
        ("kernel.bin", kernel.clone()),
        ("root.bin", root.clone()),
    ];
    let mut vm = VmBuilder::new().timeout(300);
    for (name, data) in &files {
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        vm = vm.file(&path, &format!("/img/{name}"));
    }
    let out = vm
        .module("nandsim")
        .module("mtdram")
        .module("ubi")
        .host_tool("flash_erase")
        .host_tool("nandwrite")
        .host_tool("flashcp")
        .host_tool("ubiattach")
        .script(&script())
        .run()
        .unwrap();
    eprintln!("guest ran {:.1} s", out.elapsed.as_secs_f64());
    if std::env::var_os("LIMINIX_VM_SERIAL").is_some() {
        eprintln!("{}", out.serial);
    }
    out.assert_success();
    check(&out, "nand", 129_024);
    check(&out, "nor", 65_408);
}

/// The one config the writer refuses although `ubinize` accepts it: aligned
/// data filling more LEBs than ubinize reserves. nandsim's LEB is 129024;
/// alignment 8192 leaves 122880 per LEB, so 250000 bytes fill 3 LEBs while
/// ceil(250000 / 129024) = 2 are reserved. The kernel must refuse ubinize's image.
#[test]
fn kernel_refuses_what_the_writer_refuses() {
    let blob = pattern(43, 250_000);
    let spec = VolumeSpec {
        id: 0,
        name: "aligned".into(),
        kind: VolumeKind::Static,
        size: None,
        autoresize: false,
        alignment: 8192,
        data: &blob,
    };
    let nand = Geometry {
        peb_size: 128 << 10,
        min_io: 2048,
        subpage: 512,
        vid_hdr_offset: None,
    };
    let params = ImageParams {
        image_seq: 1,
        erase_counter: 0,
    };
    let refused = write_image(&nand, params, std::slice::from_ref(&spec), Vec::new());
    assert!(refused.is_err(), "the writer accepted {spec:?}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("aligned.bin");
    std::fs::write(&data, &blob).unwrap();
    let cfg = dir.path().join("ubinize.cfg");
    std::fs::write(
        &cfg,
        format!(
            "[aligned]\nmode=ubi\nvol_id=0\nvol_type=static\nvol_name=aligned\n\
             vol_alignment=8192\nimage={}\n",
            data.display()
        ),
    )
    .unwrap();
    let img = dir.path().join("ubinize.img");
    let status = std::process::Command::new("ubinize")
        .args(["-p", "128KiB", "-m", "2048", "-s", "512", "-Q", "1", "-o"])
        .arg(&img)
        .arg(&cfg)
        .status()
        .expect("ubinize (mtd-utils) is required");
    assert!(status.success(), "ubinize refused the config");

    let script = format!(
        "modprobe ubi\n{NANDSIM}\nflash_erase -q /dev/mtd0 0 0\n\
         nandwrite -q /dev/mtd0 /img/ubinize.img\n\
         rc=0; ubiattach -m 0 -d 0 || rc=$?\necho \"attach rc=$rc\"\n\
         dmesg | grep -q 'bad attaching information' && echo \"dmesg bad=1\"\n"
    );
    let out = VmBuilder::new()
        .timeout(300)
        .file(&img, "/img/ubinize.img")
        .module("nandsim")
        .module("ubi")
        .host_tool("flash_erase")
        .host_tool("nandwrite")
        .host_tool("ubiattach")
        .script(&script)
        .run()
        .unwrap();
    out.assert_success();
    assert_ne!(out.require_field("attach ", "rc"), "0", "{}", out.serial);
    assert_eq!(out.require_field("dmesg ", "bad"), "1", "{}", out.serial);
}
