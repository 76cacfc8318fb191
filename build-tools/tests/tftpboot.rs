//! The tftpboot writer against the device-tree and U-Boot tools: fdtput applied to the board
//! DTB (the edit Liminix's shell pipeline makes) must give the same tree as ours, as dtc prints
//! both; fdtget reads the phram node and command line; dumpimage gets `boot.scr` back out of
//! `boot.scr.uimg`. Refusals of layouts that would not boot are checked with their numbers.

use std::path::{Path, PathBuf};
use std::process::Command;

use liminix_build_tools::image::commands::Tftp;
use liminix_build_tools::image::tftpboot::{self, BootCommand, TftpbootError, TftpbootSpec};
use liminix_build_tools::image::uimage::{self, Header};
use liminix_build_tools::image::{Arch, Compression, Payload};

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup.sh installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn text(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd)).unwrap().trim_end().to_owned()
}

/// A board tree with what an edit must keep: a memory reservation, phandles, nested nodes,
/// an existing /chosen, and `cells` address and size cells at the root.
fn board_dtb(dir: &Path, cells: u32) -> Vec<u8> {
    let src = dir.join(format!("board-{cells}.dts"));
    let dts = format!(
        r#"/dts-v1/;
/memreserve/ 0x41000000 0x10000;
/ {{
    #address-cells = <{cells}>;
    #size-cells = <{cells}>;
    compatible = "liminix,test-board";
    model = "test";
    chosen {{ bootargs = "console=old"; stdout-path = "/uart@9000000"; }};
    intc: interrupt-controller@8000000 {{ compatible = "arm,cortex-a15-gic"; interrupt-controller; #interrupt-cells = <3>; }};
    uart@9000000 {{ compatible = "arm,pl011"; interrupt-parent = <&intc>; status = "okay"; bytes = [de ad be ef]; }};
    soc {{ leds {{ led-0 {{ label = "green:power"; }}; }}; }};
}};
"#
    );
    std::fs::write(&src, dts).unwrap();
    let out = dir.join(format!("board-{cells}.dtb"));
    run(Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-o"])
        .arg(&out)
        .arg(&src));
    std::fs::read(out).unwrap()
}

fn zimage_like() -> Vec<u8> {
    // Not a real kernel: `bootz` files are checked for the zImage magic only when they have it.
    let mut k = vec![0u8; 0x3000];
    k[0x24..0x28].copy_from_slice(&0x016f_2818_u32.to_le_bytes());
    k
}

struct Case {
    dir: tempfile::TempDir,
    dtb: Vec<u8>,
    rootfs: Vec<u8>,
    kernel: Vec<u8>,
}

impl Case {
    fn new(cells: u32) -> Case {
        let dir = tempfile::tempdir().unwrap();
        Case {
            dtb: board_dtb(dir.path(), cells),
            rootfs: vec![0x5a; 0x1_2345],
            kernel: zimage_like(),
            dir,
        }
    }

    fn spec(&self) -> TftpbootSpec<'_> {
        TftpbootSpec {
            kernel: &self.kernel,
            boot: BootCommand::Bootz,
            dtb: &self.dtb,
            rootfs: &self.rootfs,
            initramfs: None,
            load_address: 0x4400_0000,
            free_space: 0x2_0000,
            erase_size: 0x1_0000,
            command_line: "console=ttyS0,115200",
            chosen_property: "bootargs",
            tftp: Tftp {
                serverip: Some("10.0.0.1".into()),
                ipaddr: Some("10.0.0.8".into()),
            },
            arch: Arch::Arm,
            time: 1_700_000_000,
        }
    }

    fn out(&self) -> PathBuf {
        let out = self.dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        out
    }
}

fn dts(dtb: &Path) -> String {
    text(
        Command::new("dtc")
            .args(["-s", "-I", "dtb", "-O", "dts"])
            .arg(dtb),
    )
}

/// fdtput's version of the edit, on a copy of the board DTB.
fn fdtput_edit(board: &Path, out: &Path, cells: u32, l: &tftpboot::TftpbootLayout) {
    std::fs::copy(board, out).unwrap();
    let put = |args: &[&str]| run(Command::new("fdtput").arg(out).args(args));
    let c = cells.to_string();
    put(&["-p", "/reserved-memory", "#address-cells", &c]);
    put(&["-p", "/reserved-memory", "#size-cells", &c]);
    put(&["-p", "/reserved-memory", "ranges"]);
    let node = format!("/reserved-memory/phram-rootfs@{:x}", l.rootfs_address);
    put(&["-p", "-t", "s", &node, "compatible", "phram"]);
    let cell = |v: u64| match cells {
        2 => vec![format!("{:#x}", v >> 32), format!("{:#x}", v & 0xffff_ffff)],
        _ => vec![format!("{v:#x}")],
    };
    let mut reg = cell(l.rootfs_address);
    reg.extend(cell(l.phram_size));
    let mut args = vec!["-t", "x", &node, "reg"];
    args.extend(reg.iter().map(String::as_str));
    put(&args);
    put(&["-p", &node, "no-map"]);
    put(&["-t", "s", "/chosen", "bootargs", &l.command_line]);
}

fn edit_matches_fdtput(cells: u32) {
    let case = Case::new(cells);
    let out = case.out();
    let layout = tftpboot::write(&case.spec(), &out).unwrap();
    let board = case.dir.path().join(format!("board-{cells}.dtb"));
    let theirs = case.dir.path().join("fdtput.dtb");
    fdtput_edit(&board, &theirs, cells, &layout);
    assert_eq!(dts(&out.join("dtb")), dts(&theirs));
    assert!(dts(&out.join("dtb")).contains("/memreserve/\t0x0000000041000000 0x0000000000010000;"));
}

#[test]
fn the_dtb_edit_is_the_one_fdtput_makes_with_two_cells() {
    edit_matches_fdtput(2);
}

#[test]
fn the_dtb_edit_is_the_one_fdtput_makes_with_one_cell() {
    edit_matches_fdtput(1);
}

#[test]
fn fdtget_reads_the_phram_node_and_the_command_line() {
    let case = Case::new(2);
    let out = case.out();
    let l = tftpboot::write(&case.spec(), &out).unwrap();
    // 0x12345 rounded up to 64 KiB is 0x20000, plus 0x20000 free.
    assert_eq!(l.phram_size, 0x4_0000);
    assert_eq!(l.dtb_address, 0x4404_0000);
    assert!(l.kernel_address > l.dtb_address && l.kernel_address.is_multiple_of(0x1000));
    let dtb = out.join("dtb");
    let get = |args: &[&str]| text(Command::new("fdtget").arg(&dtb).args(args));
    let node = "/reserved-memory/phram-rootfs@44000000";
    assert_eq!(get(&["-t", "s", node, "compatible"]), "phram");
    assert_eq!(get(&["-t", "x", node, "reg"]), "0 44000000 0 40000");
    assert_eq!(get(&["-p", node]), "compatible\nreg\nno-map");
    let want = "console=ttyS0,115200 mtdparts=phram0:0x40000(rootfs) \
                phram.phram=phram0,0x44000000,0x40000,0x10000 root=/dev/mtdblock0";
    assert_eq!(l.command_line, want);
    assert_eq!(get(&["-t", "s", "/chosen", "bootargs"]), want);
    assert_eq!(get(&["-t", "s", "/chosen", "stdout-path"]), "/uart@9000000");
    assert_eq!(std::fs::read(out.join("rootfs")).unwrap(), case.rootfs);
    assert_eq!(std::fs::read(out.join("image")).unwrap(), case.kernel);
}

#[test]
fn the_script_image_holds_boot_scr() {
    let case = Case::new(2);
    let out = case.out();
    let l = tftpboot::write(&case.spec(), &out).unwrap();
    let scr = std::fs::read_to_string(out.join("boot.scr")).unwrap();
    let want = format!(
        "setenv serverip 10.0.0.1\nsetenv ipaddr 10.0.0.8\ntftpboot 0x44000000 rootfs\n\
         tftpboot 0x44040000 dtb\ntftpboot {k:#x} image\nbootz {k:#x} - 0x44040000\n",
        k = l.kernel_address
    );
    assert_eq!(scr, want);
    let listing = text(
        Command::new("mkimage")
            .arg("-l")
            .arg(out.join("boot.scr.uimg")),
    );
    assert!(
        listing.contains("Image Type:   ARM Linux Script (uncompressed)"),
        "{listing}"
    );
    let back = case.dir.path().join("back.scr");
    run(Command::new("dumpimage")
        .args(["-T", "script", "-p", "0", "-o"])
        .arg(&back)
        .arg(out.join("boot.scr.uimg")));
    // dumpimage gives the payload whole: the length table (one entry, then 0), then the text.
    let payload = std::fs::read(back).unwrap();
    assert_eq!(payload[..4], (scr.len() as u32).to_be_bytes());
    assert_eq!(payload[4..8], [0; 4]);
    assert_eq!(&payload[8..], scr.as_bytes());
}

#[test]
fn the_same_inputs_give_the_same_files() {
    let case = Case::new(2);
    let (a, b) = (case.dir.path().join("a"), case.dir.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        tftpboot::write(&case.spec(), d).unwrap();
    }
    for f in ["rootfs", "dtb", "image", "boot.scr", "boot.scr.uimg"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn an_initramfs_goes_between_the_dtb_and_the_kernel() {
    let case = Case::new(2);
    let initrd = vec![7u8; 0x1801];
    let mut spec = case.spec();
    spec.initramfs = Some(&initrd);
    let out = case.out();
    let l = tftpboot::write(&spec, &out).unwrap();
    let (at, len) = l.initramfs.unwrap();
    assert_eq!(len, 0x1801);
    assert!(at > l.dtb_address && at + len <= l.kernel_address);
    let scr = std::fs::read_to_string(out.join("boot.scr")).unwrap();
    assert!(
        scr.contains(&format!("tftpboot {at:#x} initramfs\n")),
        "{scr}"
    );
    assert!(
        scr.ends_with(&format!(
            "bootz {:#x} {at:#x}:0x1801 0x44040000\n",
            l.kernel_address
        )),
        "{scr}"
    );
    assert_eq!(std::fs::read(out.join("initramfs")).unwrap(), initrd);
}

fn refused(spec: &TftpbootSpec) -> TftpbootError {
    let dir = tempfile::tempdir().unwrap();
    let err = tftpboot::write(spec, dir.path()).unwrap_err();
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "refused, yet wrote files"
    );
    err
}

#[test]
fn layouts_that_cannot_boot_are_refused_with_their_numbers() {
    let case = Case::new(2);
    let mut s = case.spec();
    s.free_space = 0x1234;
    let e = refused(&s).to_string();
    assert!(
        e.contains("free space 0x1234") && e.contains("erase size 0x10000"),
        "{e}"
    );

    let mut s = case.spec();
    s.erase_size = 0;
    assert!(matches!(refused(&s), TftpbootError::ZeroEraseSize));

    let mut s = case.spec();
    s.rootfs = &[];
    assert!(matches!(refused(&s), TftpbootError::EmptyRootfs));

    let mut s = case.spec();
    s.load_address = u64::MAX - 0x1000;
    assert!(
        matches!(refused(&s), TftpbootError::Overflow { .. }),
        "{}",
        refused(&s)
    );

    let mut s = case.spec();
    s.load_address = 0xffff_0000;
    let e = refused(&s);
    assert!(
        matches!(
            e,
            TftpbootError::Beyond32 {
                arch: Arch::Arm,
                ..
            }
        ),
        "{e}"
    );
    s.arch = Arch::Arm64;
    s.boot = BootCommand::Bootm;
    let header = Header {
        name: "k".into(),
        arch: Arch::Arm64,
        payload: Payload::Kernel,
        compression: Compression::None,
        load: 0x4000_0000,
        entry: 0x4000_0000,
        time: 0,
    };
    let kernel = uimage::write(&header, &[1u8; 0x100]).unwrap();
    s.kernel = &kernel;
    tftpboot::write(&s, &case.out()).unwrap();
}

#[test]
fn a_uimage_loading_over_the_root_filesystem_is_refused() {
    let case = Case::new(2);
    let header = Header {
        name: "k".into(),
        arch: Arch::Arm,
        payload: Payload::Kernel,
        compression: Compression::None,
        load: 0x4403_0000,
        entry: 0x4403_0000,
        time: 0,
    };
    let kernel = uimage::write(&header, &[1u8; 0x2_0000]).unwrap();
    let mut s = case.spec();
    s.kernel = &kernel;
    s.boot = BootCommand::Bootm;
    let e = refused(&s);
    let msg = e.to_string();
    assert!(
        msg.contains("0x44030000..0x44050000 overlaps root filesystem at 0x44000000..0x44040000"),
        "{msg}"
    );
}

#[test]
fn a_kernel_that_is_not_what_the_command_boots_is_refused() {
    let case = Case::new(2);
    let mut s = case.spec();
    let junk = [0u8; 0x100];
    s.kernel = &junk;
    assert!(matches!(
        refused(&s),
        TftpbootError::Kernel {
            boot: BootCommand::Bootz,
            ..
        }
    ));
    s.boot = BootCommand::Booti;
    assert!(matches!(
        refused(&s),
        TftpbootError::Kernel {
            boot: BootCommand::Booti,
            ..
        }
    ));
    s.boot = BootCommand::Bootm;
    assert!(matches!(
        refused(&s),
        TftpbootError::Kernel {
            boot: BootCommand::Bootm,
            ..
        }
    ));
}

#[test]
fn a_dtb_that_is_not_one_is_refused() {
    let case = Case::new(2);
    let mut s = case.spec();
    let truncated = &case.dtb[..case.dtb.len() / 2];
    s.dtb = truncated;
    let e = refused(&s).to_string();
    assert!(e.contains("editing the DTB: not a device tree blob"), "{e}");
    s.dtb = b"not a dtb at all, really";
    assert!(matches!(refused(&s), TftpbootError::Dtb(_)));
}

#[test]
fn a_dtb_nested_past_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut dts = String::from("/dts-v1/;\n/ { #address-cells = <1>; #size-cells = <1>;\n");
    for i in 0..70 {
        dts.push_str(&format!("n{i} {{\n"));
    }
    dts.push_str(&"};\n".repeat(70));
    dts.push_str("};\n");
    let src = dir.path().join("deep.dts");
    std::fs::write(&src, dts).unwrap();
    let blob = dir.path().join("deep.dtb");
    run(Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-o"])
        .arg(&blob)
        .arg(&src));
    let deep = std::fs::read(&blob).unwrap();
    let case = Case::new(1);
    let mut s = case.spec();
    s.dtb = &deep;
    let e = refused(&s).to_string();
    assert!(e.contains("nest deeper than 64"), "{e}");
}
