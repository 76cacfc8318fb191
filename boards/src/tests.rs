use super::*;

const NOR: &str = r#"
name = "t"
strategy = "raw"
[[flash]]
name = "nor"
type = "nor"
size = 0x100000
erase_size = 0x10000
  [[flash.partition]]
  name = "boot"
  offset = 0
  size = 0x10000
  read_only = true
  [[flash.partition]]
  name = "firmware"
  offset = 0x10000
  size = 0xf0000
[[image]]
name = "firmware"
target = "mtd:firmware"
"#;

fn err_of(text: &str) -> String {
    parse(text, "test").unwrap_err().to_string()
}

#[test]
fn every_builtin_board_loads_and_resolves_its_images() {
    let boards = all_builtin().unwrap();
    assert_eq!(boards.len(), EMBEDDED.len() + TEST_BOARDS.len());
    for b in &boards {
        for i in &b.images {
            let slots: Vec<Option<&str>> = if b.strategy.is_ab() {
                b.slots.iter().map(|s| Some(s.name.as_str())).collect()
            } else {
                vec![None]
            };
            for slot in slots {
                let r = b.resolve(&i.name, slot).unwrap();
                assert!(r.max_size > 0, "{} {}", b.name, i.name);
            }
        }
    }
}

#[test]
fn builtin_files_match_the_device_tables() {
    let ar750 = builtin("gl-ar750").unwrap();
    let (_, fw) = ar750.partition("firmware").unwrap();
    assert_eq!((fw.offset, fw.size), (0x60000, 0xfa0000));
    let ax23 = builtin("tp-archer-ax23").unwrap();
    let (_, fw) = ax23.partition("firmware").unwrap();
    assert_eq!((fw.offset, fw.size), (0x40000, 0xf60000));
    let z = builtin("zyxel-nwa50ax").unwrap();
    assert_eq!(z.strategy, Strategy::AbZyxel);
    assert_eq!(z.partition("kernel_1").unwrap().1.offset, 0x2980000);
    assert_eq!(z.partition("bootconfig").unwrap().1.offset, 0x7700000);
    let b = z.resolve("rootfs", Some("b")).unwrap();
    assert_eq!(b.place.partition().name, "ubi_1");
    assert_eq!(z.manifest_target("kernel").unwrap(), "slot:kernel");
    let belkin = builtin("belkin-rt3200").unwrap();
    let u = belkin.ubi.as_ref().unwrap();
    assert_eq!((u.min_io, u.leb_size, u.peb_size), (2048, 126976, 131072));
}

#[test]
fn every_builtin_board_names_its_cpu() {
    let expected = [
        ("belkin-rt3200", Cpu::Aarch64),
        ("gl-ar750", Cpu::Mips),
        ("gl-mt300a", Cpu::Mipsel),
        ("gl-mt300n-v2", Cpu::Mipsel),
        ("openwrt-one", Cpu::Aarch64),
        ("tp-archer-ax23", Cpu::Mipsel),
        ("turris-omnia", Cpu::Armv7),
        ("qemu", Cpu::Mips),
        ("qemu-armv7l", Cpu::Armv7),
        ("qemu-aarch64", Cpu::Aarch64),
        ("zyxel-nwa50ax", Cpu::Mipsel),
        ("vm-ab-uboot", Cpu::X86_64),
        ("vm-ab-zyxel", Cpu::X86_64),
        ("vm-nand-ubi", Cpu::X86_64),
        ("vm-nor", Cpu::X86_64),
    ];
    assert_eq!(expected.len(), EMBEDDED.len() + TEST_BOARDS.len());
    for (name, cpu) in expected {
        assert_eq!(builtin(name).unwrap().cpu, Some(cpu), "{name}");
    }
    assert_eq!(Cpu::Mips.triple(), "mips-unknown-linux-gnu");
    assert_eq!(Cpu::Armv7.triple(), "armv7-unknown-linux-gnueabihf");
    for c in Cpu::ALL {
        assert_eq!(Cpu::from_name(c.name()), Some(c));
        assert_eq!(Cpu::from_triple(c.triple()), Some(c));
    }
}

#[test]
fn the_cpu_field_is_optional_but_must_be_known() {
    assert_eq!(parse(NOR, "test").unwrap().cpu, None);
    let with = NOR.replace("strategy = \"raw\"", "strategy = \"raw\"\ncpu = \"mipsel\"");
    assert_eq!(parse(&with, "test").unwrap().cpu, Some(Cpu::Mipsel));
    let bad = NOR.replace("strategy = \"raw\"", "strategy = \"raw\"\ncpu = \"sparc\"");
    assert!(err_of(&bad).contains("sparc"), "{}", err_of(&bad));
}

#[test]
fn minimal_board_parses_and_resolves() {
    let b = parse(NOR, "test").unwrap();
    let r = b.resolve("firmware", None).unwrap();
    assert_eq!(r.max_size, 0xf0000);
    assert!(matches!(r.place, Place::Raw { .. }));
    assert!(b.resolve("firmware", Some("a")).is_err());
    assert!(b.resolve("kernel", None).is_err());
}

#[test]
fn misaligned_overlapping_or_oversized_partitions_are_refused() {
    let e = err_of(&NOR.replace("offset = 0x10000", "offset = 0x10800"));
    assert!(e.contains("not aligned"), "{e}");
    let e = err_of(&NOR.replace("offset = 0x10000", "offset = 0x0"));
    assert!(e.contains("overlap"), "{e}");
    let e = err_of(&NOR.replace("size = 0xf0000", "size = 0x100000"));
    assert!(e.contains("past the end"), "{e}");
    let e = err_of(&NOR.replace("erase_size = 0x10000", "erase_size = 0x18000"));
    assert!(e.contains("power of two"), "{e}");
    let e = err_of(&NOR.replace("type = \"nor\"", "type = \"nand\""));
    assert!(e.contains("write_size"), "{e}");
}

#[test]
fn targets_must_exist_be_writable_and_fit_the_strategy() {
    let e = err_of(&NOR.replace("target = \"mtd:firmware\"", "target = \"mtd:nothere\""));
    assert!(e.contains("names no partition"), "{e}");
    let e = err_of(&NOR.replace("target = \"mtd:firmware\"", "target = \"mtd:boot\""));
    assert!(e.contains("read-only"), "{e}");
    let e = err_of(&NOR.replace("target = \"mtd:firmware\"", "target = \"ubi:rootfs\""));
    assert!(e.contains("strategy raw cannot write"), "{e}");
    let e = err_of(&NOR.replace("strategy = \"raw\"", "strategy = \"ubi\""));
    assert!(e.contains("strategy ubi cannot write"), "{e}");
    let e = err_of(&NOR.replace("strategy = \"raw\"", "strategy = \"ab-uboot\""));
    assert!(e.contains("exactly two slots"), "{e}");
    let e = err_of(&NOR.replace("target = \"mtd:firmware\"", "target = \"firmware\""));
    assert!(e.contains("not `mtd:PARTITION`"), "{e}");
    let e = err_of(&format!("{NOR}\nextra = 1\n"));
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn ab_boards_need_matching_slots_and_bootloader() {
    let zyxel = EMBEDDED
        .iter()
        .find(|(n, _)| *n == "zyxel-nwa50ax")
        .unwrap()
        .1;
    let e = err_of(&zyxel.replace("type = \"zyxel-bootconfig\"", "type = \"uboot-env\""));
    assert!(
        e.contains("unknown field") || e.contains("missing field"),
        "{e}"
    );
    let e = err_of(&zyxel.replace("strategy = \"ab-zyxel\"", "strategy = \"ab-uboot\""));
    assert!(e.contains("needs a [bootloader] of type uboot-env"), "{e}");
    let vm = TEST_BOARDS
        .iter()
        .find(|(n, _)| *n == "vm-ab-uboot")
        .unwrap()
        .1;
    let e = err_of(&vm.replace("attempts = 2", "attempts = 10"));
    assert!(e.contains("attempts = 10"), "{e}");
    let e = err_of(&vm.replace("attempts = 2", "variables = { slot = \"s\" }"));
    assert!(e.contains("unknown field"), "{e}");
    let e = err_of(&zyxel.replace("\"mtd:kernel_1\"", "\"mtd:kernel\""));
    assert!(e.contains("share partition kernel"), "{e}");
    let e = err_of(&zyxel.replace("index = 1", "index = 2"));
    assert!(e.contains("images 0 and 1"), "{e}");
    let e = err_of(&zyxel.replace(
        "targets = { kernel = \"mtd:kernel_1\", rootfs = \"ubi:rootfs\" }",
        "targets = { kernel = \"mtd:kernel_1\" }",
    ));
    assert!(e.contains("must give a target for each image"), "{e}");
    let e = err_of(&zyxel.replace("\"mtd:kernel_1\"", "\"mtd:bootconfig\""));
    assert!(e.contains("bootconfig partition"), "{e}");
}

#[test]
fn ubi_geometry_is_checked() {
    let belkin = EMBEDDED
        .iter()
        .find(|(n, _)| *n == "belkin-rt3200")
        .unwrap()
        .1;
    let e = err_of(&belkin.replace("peb_size = 131072", "peb_size = 65536"));
    assert!(e.contains("inconsistent") || e.contains("differs"), "{e}");
    let e = err_of(&belkin.replace("min_io = 2048", "min_io = 4096"));
    assert!(e.contains("min_io"), "{e}");
    let e = err_of(&belkin.replace("target = \"ubi:liminix\"", "target = \"ubi:other\""));
    assert!(e.contains("does not declare"), "{e}");
    let e = err_of(&belkin.replace(
        "type = \"dynamic\"",
        "type = \"dynamic\"\n  size = 0x10000000",
    ));
    assert!(e.contains("holds about"), "{e}");
}

#[test]
fn device_override_file_wins_and_must_name_the_board() {
    let dir = std::env::temp_dir().join(format!("liminix-boards-test-{}", std::process::id()));
    let etc = dir.join("etc/liminix");
    std::fs::create_dir_all(&etc).unwrap();
    assert_eq!(for_device(&dir, "gl-ar750").unwrap().name, "gl-ar750");
    std::fs::write(etc.join("board.toml"), NOR).unwrap();
    assert_eq!(
        for_device(&dir, "t")
            .unwrap()
            .partition("boot")
            .unwrap()
            .1
            .size,
        0x10000
    );
    let e = for_device(&dir, "gl-ar750").unwrap_err().to_string();
    assert!(e.contains("expected \"gl-ar750\""), "{e}");
    assert!(builtin("no-such-board")
        .unwrap_err()
        .to_string()
        .contains("gl-ar750"));
    std::fs::remove_dir_all(&dir).unwrap();
}
