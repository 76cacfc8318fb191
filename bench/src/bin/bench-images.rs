//! Image build benchmark: the packer's writers against the Liminix pipeline on the same
//! inputs, in one run. Inputs: a generated root tree (text, binaries, small files; `--root-mib`)
//! and a kernel blob (`--kernel-mib`). Steps: squashfs, lzma uImage, `firmware.bin` (each part
//! padded to the erase block), UBIFS, UBI volume image, Zyxel firmware FIT. Prints one Markdown
//! table: wall time of each side, their ratio, output sizes and whether the bytes are equal.
//! Asserts nothing. Run by `bench/images.sh`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use liminix_build_tools::image::build;
use liminix_build_tools::image::squashfs::{self, SquashfsSpec};
use liminix_build_tools::image::ubifs::{self, UbifsSpec};
use liminix_build_tools::image::zyxel::{self, ZyxelFitSpec, NWA50AX_COMPAT_MODELS};
use liminix_build_tools::image::{self, uimage, Arch, Compression, Payload};
use liminix_testdata::pattern;
use liminix_ubi::image::{write_image, Geometry, ImageParams, VolumeSpec};
use liminix_ubi::VolumeKind;

const EPOCH: u32 = 1_700_000_000;
const ERASE_BLOCK: usize = 64 << 10;
const LOAD: u32 = 0x8006_0000;
const LEB: u64 = 126_976;
const KERNEL_HALF: u64 = 8 << 20;

/// One row: a step done both ways.
struct Row {
    step: &'static str,
    ours_ms: f64,
    theirs_ms: f64,
    ours_len: u64,
    theirs_len: u64,
    equal: String,
}

fn ms(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1000.0
}

fn sh(script: &str, dir: &Path) {
    let st = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .status()
        .expect("run sh");
    assert!(st.success(), "{script} failed");
}

fn len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn same(a: &Path, b: &Path) -> String {
    let yes = fs::read(a).ok() == fs::read(b).ok();
    (if yes { "yes" } else { "no" }).to_string()
}

/// A root of roughly `mib` MiB: a third text, a third incompressible binaries, the rest many
/// small config-like files and zero-filled tables.
fn make_root(root: &Path, mib: usize) {
    let third = (mib << 20) / 3;
    for d in ["bin", "lib", "etc", "share/doc", "share/zero"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut seed = 100;
    let mut text_left = third;
    while text_left > 0 {
        let n = text_left.min(256 << 10);
        let t: String = (0..n / 32)
            .map(|i| format!("{seed:05} option value {i:012}\n"))
            .collect();
        fs::write(root.join(format!("share/doc/f{seed}.txt")), t).unwrap();
        text_left -= n;
        seed += 1;
    }
    let mut bin_left = third;
    while bin_left > 0 {
        let n = bin_left.min(1 << 20);
        fs::write(root.join(format!("bin/p{seed}")), pattern(seed as u64, n)).unwrap();
        bin_left -= n;
        seed += 1;
    }
    for i in 0..2000 {
        fs::write(
            root.join(format!("etc/c{i}.conf")),
            format!("key{i}=value{}\n", i * 7),
        )
        .unwrap();
    }
    fs::write(root.join("share/zero/table"), vec![0u8; third / 2]).unwrap();
}

/// A kernel stand-in that compresses about as well as one: text runs between noise.
fn make_kernel(mib: usize) -> Vec<u8> {
    let mut k = Vec::new();
    let mut i = 0;
    while k.len() < mib << 20 {
        k.extend_from_slice(&pattern(i, 2048));
        k.extend_from_slice(
            format!("printk format string {i} %s %d\n")
                .repeat(60)
                .as_bytes(),
        );
        i += 1;
    }
    k.truncate(mib << 20);
    k
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn pad_to(data: &mut Vec<u8>, block: usize) {
    data.resize(data.len().div_ceil(block) * block, 0);
}

struct Bench {
    dir: PathBuf,
    root: PathBuf,
    kernel: PathBuf,
    rows: Vec<Row>,
}

impl Bench {
    fn p(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn row(&mut self, step: &'static str, ours: (f64, &str), theirs: (f64, &str), equal: String) {
        let (o, t) = (self.p(ours.1), self.p(theirs.1));
        self.rows.push(Row {
            step,
            ours_ms: ours.0,
            theirs_ms: theirs.0,
            ours_len: len(&o),
            theirs_len: len(&t),
            equal,
        });
    }

    fn squashfs(&mut self) {
        let spec = SquashfsSpec {
            compression: squashfs::Compression::Xz,
            epoch: u64::from(EPOCH),
            block_size: None,
        };
        let ours = ms(|| squashfs::write(&self.root, &spec, &self.p("ours.sqfs")).unwrap());
        let theirs = ms(|| {
            sh(
                "mksquashfs root theirs.sqfs -noappend -comp xz -all-root -quiet -no-progress",
                &self.dir,
            )
        });
        let eq = same(&self.p("ours.sqfs"), &self.p("theirs.sqfs"));
        self.row(
            "squashfs (xz)",
            (ours, "ours.sqfs"),
            (theirs, "theirs.sqfs"),
            eq,
        );
    }

    fn uimage(&mut self) {
        let kernel = fs::read(&self.kernel).unwrap();
        let header = uimage::Header {
            name: "Liminix kernel".into(),
            arch: Arch::Mips,
            payload: Payload::Kernel,
            compression: Compression::Lzma,
            load: LOAD,
            entry: LOAD,
            time: EPOCH,
        };
        let ours = ms(|| {
            let packed = image::compress(&kernel, Compression::Lzma).unwrap();
            fs::write(
                self.p("ours.uimage"),
                uimage::write(&header, &packed).unwrap(),
            )
            .unwrap();
        });
        let theirs = ms(|| {
            sh(
                "lzma -z -c kernel > kernel.lzma && mkimage -A mips -O linux -T kernel -C lzma \
                 -a 0x80060000 -e 0x80060000 -n 'Liminix kernel' -d kernel.lzma theirs.uimage \
                 > /dev/null",
                &self.dir,
            )
        });
        let eq = same(&self.p("ours.uimage"), &self.p("theirs.uimage"));
        self.row(
            "uImage (lzma)",
            (ours, "ours.uimage"),
            (theirs, "theirs.uimage"),
            eq,
        );
    }

    /// The whole mtdimage of the GL-AR750 from the same tree and kernel: `liminix-pack image`'s
    /// library (squashfs, lzma uImage, firmware.bin, flash.scr) against the Liminix pipeline
    /// (mksquashfs, lzma, mkimage, two dd). Ours pads with 0xff (erased NOR), dd with zeros.
    fn mtdimage(&mut self) {
        let mut board = liminix_build_tools::liminix_boards::builtin("gl-ar750").unwrap();
        board.outputs.retain(|o| {
            matches!(
                o,
                liminix_build_tools::liminix_boards::Output::Mtdimage { .. }
            )
        });
        board.install = None;
        let kernel = fs::read(&self.kernel).unwrap();
        let out = self.p("ours.mtdimage");
        fs::create_dir_all(&out).unwrap();
        let ours = ms(|| {
            let req = build::Request {
                board: &board,
                kernel: &kernel,
                dtb: None,
                root: build::RootSource::Tree(self.root.clone()),
                command_line: None,
                tftp: image::commands::Tftp::default(),
                time: EPOCH,
                progress: &|_| {},
            };
            build::build(&req, &out).unwrap();
        });
        let theirs = ms(|| {
            sh(
                "mksquashfs root whole.sqfs -noappend -comp xz -all-root -quiet -no-progress && \
                 lzma -z -c kernel > whole.lzma && mkimage -A mips -O linux -T kernel -C lzma \
                 -a 0x80060000 -e 0x80060000 -n 'Liminix kernel' -d whole.lzma whole.uimage \
                 > /dev/null && dd if=whole.uimage bs=64k conv=sync status=none > theirs.whole && \
                 dd if=whole.sqfs bs=64k conv=sync status=none >> theirs.whole",
                &self.dir,
            )
        });
        self.row(
            "mtdimage, whole (gl-ar750)",
            (ours, "ours.mtdimage/mtdimage/firmware.bin"),
            (theirs, "theirs.whole"),
            "no (0xff padding)".into(),
        );
    }

    /// Both sides pad the same uImage and squashfs (ours), so the bytes compare the padding.
    fn firmware(&mut self) {
        let ours = ms(|| {
            let mut fw = fs::read(self.p("ours.uimage")).unwrap();
            pad_to(&mut fw, ERASE_BLOCK);
            let mut root = fs::read(self.p("ours.sqfs")).unwrap();
            pad_to(&mut root, ERASE_BLOCK);
            fw.extend_from_slice(&root);
            fs::write(self.p("ours.firmware"), fw).unwrap();
        });
        let theirs = ms(|| {
            sh(
                "dd if=ours.uimage bs=64k conv=sync status=none > theirs.firmware && \
                 dd if=ours.sqfs bs=64k conv=sync status=none >> theirs.firmware",
                &self.dir,
            )
        });
        let eq = same(&self.p("ours.firmware"), &self.p("theirs.firmware"));
        self.row(
            "firmware.bin (pad)",
            (ours, "ours.firmware"),
            (theirs, "theirs.firmware"),
            eq,
        );
    }

    fn ubifs(&mut self) {
        let spec = UbifsSpec {
            min_io: 2048,
            leb_size: LEB,
            max_leb_count: 1024,
            epoch: u64::from(EPOCH),
        };
        let ours = ms(|| ubifs::write(&self.root, &spec, &self.p("ours.ubifs")).unwrap());
        let theirs = ms(|| {
            sh(
                "mkfs.ubifs -x favor_lzo -c 1024 -m 2048 -e 126976 -y -r root --squash-uids \
                 -o theirs.ubifs",
                &self.dir,
            )
        });
        // Never equal: ours sets the times to the epoch and derives the UUID.
        let eq = format!(
            "{} (times, UUID)",
            same(&self.p("ours.ubifs"), &self.p("theirs.ubifs"))
        );
        self.row("UBIFS", (ours, "ours.ubifs"), (theirs, "theirs.ubifs"), eq);
    }

    /// Both sides wrap the same UBIFS (ours), so the bytes compare the UBI layer.
    fn ubivolume(&mut self) {
        let fs_img = fs::read(self.p("ours.ubifs")).unwrap();
        let geometry = Geometry {
            peb_size: 128 << 10,
            min_io: 2048,
            subpage: 2048,
            vid_hdr_offset: None,
        };
        let ours = ms(|| {
            let vol = VolumeSpec {
                autoresize: true,
                ..VolumeSpec::new(0, "rootfs", VolumeKind::Dynamic, &fs_img)
            };
            let params = ImageParams {
                image_seq: EPOCH,
                erase_counter: 0,
            };
            let mut out = Vec::new();
            write_image(&geometry, params, &[vol], &mut out).unwrap();
            fs::write(self.p("ours.ubi"), out).unwrap();
        });
        fs::write(
            self.p("ubinize.cfg"),
            "[rootfs]\nmode=ubi\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\n\
             vol_flags=autoresize\nimage=ours.ubifs\n",
        )
        .unwrap();
        let theirs = ms(|| {
            sh(
                "ubinize -Q \"$SOURCE_DATE_EPOCH\" -o theirs.ubi -p 128KiB -m 2048 ubinize.cfg \
                 >/dev/null 2>&1",
                &self.dir,
            )
        });
        let eq = same(&self.p("ours.ubi"), &self.p("theirs.ubi"));
        self.row(
            "UBI volume image",
            (ours, "ours.ubi"),
            (theirs, "theirs.ubi"),
            eq,
        );
    }

    /// Both sides wrap our uImage and UBI image; mkimage leaves dtc's spare space, so the
    /// decompiled trees are compared too.
    fn zyxel(&mut self) {
        let (kernel, ubi) = (
            fs::read(self.p("ours.uimage")).unwrap(),
            fs::read(self.p("ours.ubi")).unwrap(),
        );
        let ours = ms(|| {
            let blob = zyxel::firmware_fit(&ZyxelFitSpec {
                kernel: &kernel,
                kernel_half: KERNEL_HALF,
                ubi: &ubi,
                ubi_half: 120 << 20,
                compat_models: &NWA50AX_COMPAT_MODELS,
                description: zyxel::DESCRIPTION,
                time: EPOCH,
            })
            .unwrap();
            fs::write(self.p("ours.itb"), blob).unwrap();
        });
        fs::write(self.p("zyxel.its"), ITS).unwrap();
        let theirs = ms(|| {
            sh(
                "cp ours.uimage padded && dd if=/dev/zero of=padded bs=1 count=1 seek=8388607 \
                 status=none && cat padded ours.ubi > fwimage && mkimage -f zyxel.its \
                 theirs.itb > /dev/null 2>&1",
                &self.dir,
            )
        });
        let mut eq = same(&self.p("ours.itb"), &self.p("theirs.itb"));
        if eq == "no" {
            let dts = |f: &str| {
                Command::new("dtc")
                    .args(["-q", "-I", "dtb", "-O", "dts", f])
                    .current_dir(&self.dir)
                    .output()
                    .map(|o| o.stdout)
                    .ok()
            };
            if dts("ours.itb") == dts("theirs.itb") {
                eq = "no (same tree)".into();
            }
        }
        self.row(
            "Zyxel firmware FIT",
            (ours, "ours.itb"),
            (theirs, "theirs.itb"),
            eq,
        );
    }

    fn print(&self) {
        println!(
            "| step | ours ms | theirs ms | theirs/ours | ours bytes | theirs bytes | byte-equal |"
        );
        println!("|---|---:|---:|---:|---:|---:|---|");
        for r in &self.rows {
            println!(
                "| {} | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
                r.step,
                r.ours_ms,
                r.theirs_ms,
                r.theirs_ms / r.ours_ms.max(0.001),
                r.ours_len,
                r.theirs_len,
                r.equal
            );
        }
    }
}

/// OpenWrt's and Liminix's `.its` for the NWA50AX.
const ITS: &str = "/dts-v1/;\n/ {\n\tdescription = \"Zyxel FIT (Flattened Image Tree)\";\n\
    \tcompat-models = [6b e1 6f e1 ff ff ff ff ff ff];\n\t#address-cells = <1>;\n\
    \timages {\n\t\tfirmware {\n\t\t\tdata = /incbin/(\"fwimage\");\n\
    \t\t\ttype = \"firmware\";\n\t\t\tcompression = \"none\";\n\
    \t\t\thash@1 {\n\t\t\t\talgo = \"sha1\";\n\t\t\t};\n\t\t};\n\t};\n};\n";

fn main() {
    let (root_mib, kernel_mib) = (arg("--root-mib", 16), arg("--kernel-mib", 3));
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().to_owned();
    let root = dir.join("root");
    make_root(&root, root_mib);
    let kernel = dir.join("kernel");
    fs::write(&kernel, make_kernel(kernel_mib)).unwrap();
    println!("inputs: root tree ~{root_mib} MiB, kernel {kernel_mib} MiB; one run each\n");
    let mut b = Bench {
        dir,
        root,
        kernel,
        rows: Vec::new(),
    };
    b.squashfs();
    b.uimage();
    b.firmware();
    b.ubifs();
    b.ubivolume();
    b.zyxel();
    b.mtdimage();
    b.print();
}
