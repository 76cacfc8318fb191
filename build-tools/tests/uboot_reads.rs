//! Real U-Boot (Debian's qemu_arm64 build, in QEMU) reads what the image writers make: the
//! legacy header checksums, the FIT hashes, and the lzma payload through U-Boot's own LZMA
//! decoder, whose output must have the raw kernel's CRC; `source` runs a script image.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use liminix_build_tools::image::{self, fit, script, uimage, Arch, Compression, Payload};

const UBOOT: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
const LEGACY_AT: u32 = 0x4800_0000;
const FIT_AT: u32 = 0x4900_0000;
const UNPACK_AT: u32 = 0x4a00_0000;
const SCRIPT_AT: u32 = 0x4b00_0000;
/// The kernels' load and entry address.
const LOAD: u32 = 0x4008_0000;

/// U-Boot on a serial console: commands in, lines out.
struct Console {
    qemu: Child,
    input: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Console {
    fn start(loads: &[(&Path, u32)]) -> Console {
        assert!(
            Path::new(UBOOT).exists(),
            "no {UBOOT}: scripts/setup.sh installs u-boot-qemu"
        );
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args([
            "-M",
            "virt",
            "-cpu",
            "cortex-a57",
            "-m",
            "512",
            "-nographic",
        ])
        .args(["-bios", UBOOT, "-nic", "none"]);
        for (file, addr) in loads {
            let arg = format!("loader,file={},addr={addr:#x},force-raw=on", file.display());
            cmd.args(["-device", &arg]);
        }
        let mut qemu = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-aarch64 runs (scripts/setup.sh installs qemu-system-arm)");
        let input = qemu.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let out = qemu.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        Console {
            qemu,
            input,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads until a line satisfies `done`; panics with the whole transcript after `secs`.
    fn until(&mut self, secs: u64, done: impl Fn(&str) -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = done(&line);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!("U-Boot stalled; console:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Stops autoboot, runs `commands`, and returns everything printed after them.
    fn run(mut self, commands: &[String]) -> String {
        // The countdown line has no newline until it ends, so the key goes in right after the
        // line before it ("Net:"); autoboot takes that one key and the echo reaches the shell.
        self.until(120, |l| l.starts_with("Net:"));
        self.input
            .write_all(b"\necho READY-FOR-COMMANDS\n")
            .unwrap();
        self.until(120, |l| l.trim_end() == "READY-FOR-COMMANDS");
        let mut script = commands.join("\n");
        script.push_str("\necho END-OF-COMMANDS\n");
        self.input.write_all(script.as_bytes()).unwrap();
        let from = self.seen.len();
        self.until(120, |l| l.trim_end() == "END-OF-COMMANDS");
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        self.seen[from..].join("\n")
    }
}

fn kernel_bytes() -> Vec<u8> {
    let mut k = Vec::new();
    for i in 0..64u64 {
        k.extend_from_slice(&liminix_testdata::pattern(i, 1024));
        k.extend_from_slice(&[b'L'; 3000]);
    }
    k
}

/// A real device tree blob, from dtc: `bootm` checks the FIT's fdt image too.
fn dtb() -> Vec<u8> {
    let dts = "/dts-v1/;\n/ { model = \"liminix-test\"; #address-cells = <1>; #size-cells = <1>;\n\
               memory@40000000 { device_type = \"memory\"; reg = <0x40000000 0x20000000>; }; };\n";
    let mut dtc = Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dtc runs (scripts/setup.sh installs device-tree-compiler)");
    dtc.stdin.take().unwrap().write_all(dts.as_bytes()).unwrap();
    let out = dtc.wait_with_output().unwrap();
    assert!(out.status.success(), "dtc failed");
    out.stdout
}

fn legacy_image(packed: &[u8]) -> Vec<u8> {
    let header = uimage::Header {
        name: "Liminix kernel".into(),
        arch: Arch::Arm64,
        payload: Payload::Kernel,
        compression: Compression::Lzma,
        load: LOAD,
        entry: LOAD,
        time: 1_700_000_000,
    };
    uimage::write(&header, packed).unwrap()
}

fn fit_image(packed: &[u8]) -> Vec<u8> {
    fit::write(&fit::Fit {
        description: "Liminix",
        arch: Arch::Arm64,
        time: 1_700_000_000,
        kernel: fit::Kernel {
            data: packed,
            compression: Compression::Lzma,
            load: LOAD,
            entry: LOAD,
        },
        fdt: &dtb(),
        hashes: &[fit::Hash::Sha256, fit::Hash::Crc32],
    })
    .unwrap()
}

#[test]
fn uboot_checks_headers_hashes_and_unpacks_lzma() {
    let dir = tempfile::tempdir().unwrap();
    let raw = kernel_bytes();
    let packed = image::compress(&raw, Compression::Lzma).unwrap();
    let legacy = dir.path().join("k.uimage");
    std::fs::write(&legacy, legacy_image(&packed)).unwrap();
    let fit_path = dir.path().join("k.itb");
    std::fs::write(&fit_path, fit_image(&packed)).unwrap();

    let text = "setenv word ran\necho script ${word} to the end\n";
    let scr = dir.path().join("boot.scr");
    std::fs::write(&scr, script::write("boot", Arch::Arm64, 0, text).unwrap()).unwrap();

    let payload_at = LEGACY_AT + uimage::HEADER_LEN as u32;
    let loads = [
        (&*legacy, LEGACY_AT),
        (&*fit_path, FIT_AT),
        (&*scr, SCRIPT_AT),
    ];
    let console = Console::start(&loads);
    let out = console.run(&[
        format!("iminfo {LEGACY_AT:#x}"),
        format!("iminfo {FIT_AT:#x}"),
        format!("lzmadec {payload_at:#x} {UNPACK_AT:#x}"),
        format!("crc32 {UNPACK_AT:#x} {:#x}", raw.len()),
        format!("source {SCRIPT_AT:#x}"),
        // bootm's own path: check, then decompress to the load address, without jumping.
        format!("bootm start {LEGACY_AT:#x}"),
        "bootm loados".into(),
        format!("crc32 {LOAD:#x} {:#x}", raw.len()),
        format!("mw.b {LOAD:#x} 0 {:#x}", raw.len()),
        // This U-Boot picks a FIT configuration by `compatible` (FIT_BEST_MATCH) unless one
        // is named: name the writer's.
        format!("bootm start {FIT_AT:#x}#{}", fit::CONFIG_NODE),
        "bootm loados".into(),
        format!("crc32 {LOAD:#x} {:#x}", raw.len()),
    ]);
    let unpacked = format!("==> {:08x}", crc32fast::hash(&raw));
    assert_eq!(
        out.matches(&unpacked).count(),
        3,
        "lzmadec and both bootm loads:\n{out}"
    );
    for want in [
        "Verifying Checksum ... OK".to_owned(),
        "Hash(es) for Image 0 (kernel): sha256+ crc32+".into(),
        "Hash(es) for Image 1 (fdt-1): sha256+ crc32+".into(),
        format!("Uncompressed size: {} =", raw.len()),
        format!("==> {:08x}", crc32fast::hash(&raw)),
        "\nscript ran to the end".into(),
    ] {
        assert!(
            out.contains(&want),
            "no {want:?} in U-Boot's answer:\n{out}"
        );
    }
}

/// The same images with one payload byte flipped: U-Boot must say so, which also shows the
/// checks above can fail.
#[test]
fn uboot_refuses_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let packed = image::compress(&kernel_bytes(), Compression::Lzma).unwrap();
    let mut legacy = legacy_image(&packed);
    legacy[uimage::HEADER_LEN + 100] ^= 1;
    let mut fit_blob = fit_image(&packed);
    let at = fit_blob
        .windows(packed.len())
        .position(|w| w == packed)
        .expect("the FIT holds the kernel bytes");
    fit_blob[at + 100] ^= 1;
    let legacy_path = dir.path().join("bad.uimage");
    std::fs::write(&legacy_path, legacy).unwrap();
    let fit_path = dir.path().join("bad.itb");
    std::fs::write(&fit_path, fit_blob).unwrap();

    let console = Console::start(&[(&*legacy_path, LEGACY_AT), (&*fit_path, FIT_AT)]);
    let out = console.run(&[
        format!("iminfo {LEGACY_AT:#x}"),
        format!("iminfo {FIT_AT:#x}"),
    ]);
    for want in [
        "Bad Data CRC",
        "Bad hash value for 'hash-1' hash node in 'kernel' image node",
    ] {
        assert!(out.contains(want), "no {want:?} in U-Boot's answer:\n{out}");
    }
}
