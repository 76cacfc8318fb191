//! The reader and writer against the device tree compiler: dtc makes the input blobs and
//! decompiles ours; fdtget reads back what we set.

use std::path::Path;
use std::process::Command;

use liminix_fdt::{self as dtb, Dtb};

const SOURCE: &str = r#"/dts-v1/;
/memreserve/ 0x10000000 0x4000;
/memreserve/ 0x20000000 0x100000;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    compatible = "liminix,test", "simple-bus";
    model = "fdt oracle";
    memory@40000000 { device_type = "memory"; reg = <0x40000000 0x8000000>; };
    chosen { bootargs = "console=ttyAMA0"; stdout-path = "/pl011@9000000"; };
    soc {
        #address-cells = <2>;
        #size-cells = <1>;
        empty;
        bytes = [00 01 02 03 04];
        nested { deeper { model = "x"; }; };
    };
};
"#;

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install device-tree-compiler)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn compile(dir: &Path, source: &str) -> Vec<u8> {
    let dts = dir.join("in.dts");
    std::fs::write(&dts, source).unwrap();
    run(Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb"])
        .arg(&dts))
}

fn decompile(dir: &Path, blob: &[u8]) -> String {
    let path = dir.join("blob.dtb");
    std::fs::write(&path, blob).unwrap();
    let out = run(Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts"])
        .arg(&path));
    String::from_utf8(out).unwrap()
}

fn fdtget(dir: &Path, blob: &[u8], args: &[&str]) -> String {
    let path = dir.join("get.dtb");
    std::fs::write(&path, blob).unwrap();
    let out = run(Command::new("fdtget").arg(&path).args(args));
    String::from_utf8(out).unwrap().trim_end().to_owned()
}

#[test]
fn a_blob_read_and_written_decompiles_as_dtc_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let blob = compile(dir.path(), SOURCE);
    let tree = dtb::read(&blob).unwrap();
    assert_eq!(
        tree.reservations,
        [(0x1000_0000, 0x4000), (0x2000_0000, 0x10_0000)]
    );
    let ours = dtb::write(&tree).unwrap();
    assert_eq!(decompile(dir.path(), &ours), decompile(dir.path(), &blob));
    assert_eq!(dtb::read(&ours).unwrap(), tree);
}

#[test]
fn chosen_strings_and_phram_reservations_read_back_with_fdtget() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = dtb::read(&compile(dir.path(), SOURCE)).unwrap();
    dtb::set_chosen(&mut tree, "bootargs", "console=ttyS0 root=/dev/ram0").unwrap();
    dtb::set_chosen(&mut tree, "linux,stdout", "serial0").unwrap();
    dtb::reserve_phram(&mut tree, 0x4400_0000, 0x20_0000).unwrap();
    let blob = dtb::write(&tree).unwrap();
    let d = dir.path();
    assert_eq!(
        fdtget(d, &blob, &["/chosen", "bootargs"]),
        "console=ttyS0 root=/dev/ram0"
    );
    assert_eq!(fdtget(d, &blob, &["/chosen", "linux,stdout"]), "serial0");
    let node = "/reserved-memory/phram-rootfs@44000000";
    assert_eq!(fdtget(d, &blob, &["-tx", node, "reg"]), "44000000 200000");
    assert_eq!(fdtget(d, &blob, &[node, "compatible"]), "phram");
    assert!(dtb::set_chosen(&mut tree, "bootargs", "a\0b").is_err());
}

#[test]
fn every_truncation_and_every_flipped_byte_is_an_error_or_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    let blob = compile(dir.path(), SOURCE);
    for len in 0..blob.len() {
        assert!(
            dtb::read(&blob[..len]).is_err(),
            "{len} bytes read as a tree"
        );
    }
    for i in 0..blob.len() {
        for bit in [0x01, 0x80] {
            let mut b = blob.clone();
            b[i] ^= bit;
            // Either outcome is fine; panicking or looping is not.
            let _ = dtb::read(&b).map(|t| dtb::write(&t));
        }
    }
}

#[test]
fn the_writer_refuses_trees_no_reader_could_take() {
    let mut tree = Dtb {
        reservations: Vec::new(),
        boot_cpuid_phys: 0,
        root: dtb::Node::default(),
    };
    tree.root.props.push(("model".into(), b"a\0".to_vec()));
    tree.root.props.push(("model".into(), b"b\0".to_vec()));
    let e = dtb::write(&tree).unwrap_err().to_string();
    assert!(e.contains("\"model\" twice"), "{e}");
    tree.root.props.truncate(1);
    tree.root.children.push(dtb::Node::default());
    assert!(dtb::write(&tree).is_err());
}
