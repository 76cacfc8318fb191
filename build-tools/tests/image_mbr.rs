//! MBR disk images checked by the reference tools: `sfdisk --dump` and `sfdisk -J` read the table
//! written, `fdisk -l` agrees, and the partition's bytes read back with `dd` are the root image.

use std::path::Path;
use std::process::Command;

use liminix_build_tools::image::mbr::{self, MbrError, MbrSpec, ALIGN, SECTOR};

const MIB: u64 = ALIGN;
const ROOT_LEN: u64 = 3 * MIB + 12_345;

fn root_image(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("root.img");
    let bytes: Vec<u8> = (0..ROOT_LEN).map(|i| (i * 7 % 251 + 1) as u8).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn spec(epoch: u64) -> MbrSpec {
    MbrSpec {
        disk_size: 16 * MIB,
        root_free: 2 * MIB,
        second: Some(3 * MIB),
        epoch: Some(epoch),
    }
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (scripts/setup.sh installs it): {e}"));
    assert!(out.status.success(), "{tool} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Root: 1 MiB start, image + 2 MiB free rounded up to 6 MiB. Second: right after, 3 MiB.
const ROOT_START: u64 = 2048;
const ROOT_SECTORS: u64 = 6 * MIB / SECTOR;
const SECOND_START: u64 = ROOT_START + ROOT_SECTORS;
const SECOND_SECTORS: u64 = 3 * MIB / SECTOR;

#[test]
fn sfdisk_reads_the_table_written() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let layout = mbr::write(&root_image(dir.path()), &spec(1_700_000_000), &disk).unwrap();
    assert_eq!(layout.root.start, ROOT_START);
    assert_eq!(layout.root.sectors, ROOT_SECTORS);

    let json: serde_json::Value =
        serde_json::from_str(&run("sfdisk", &["-J", disk.to_str().unwrap()])).unwrap();
    let table = &json["partitiontable"];
    assert_eq!(table["label"], "dos");
    assert_eq!(table["id"], format!("0x{:08x}", layout.disk_id));
    assert_eq!(table["sectorsize"], 512);
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{json}");
    assert_eq!(parts[0]["start"], ROOT_START);
    assert_eq!(parts[0]["size"], ROOT_SECTORS);
    assert_eq!(parts[0]["type"], "83");
    assert_eq!(parts[0]["bootable"], true);
    assert_eq!(parts[1]["start"], SECOND_START);
    assert_eq!(parts[1]["size"], SECOND_SECTORS);
    assert_eq!(parts[1]["type"], "83");
    assert!(parts[1].get("bootable").is_none(), "{json}");

    let dump = run("sfdisk", &["--dump", disk.to_str().unwrap()]);
    assert!(dump.contains("label: dos\n"), "{dump}");
    assert!(
        dump.contains(&format!("label-id: 0x{:08x}\n", layout.disk_id)),
        "{dump}"
    );
    let rows: Vec<Vec<String>> = dump
        .lines()
        .filter(|l| l.contains(" : start="))
        .map(|l| {
            l.split_once(" : ")
                .unwrap()
                .1
                .split(',')
                .map(|f| f.split_whitespace().collect::<String>())
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["start=2048", "size=12288", "type=83", "bootable"],
            vec!["start=14336", "size=6144", "type=83"],
        ],
        "{dump}"
    );
}

#[test]
fn fdisk_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let layout = mbr::write(&root_image(dir.path()), &spec(1), &disk).unwrap();
    let listing = run("fdisk", &["-l", disk.to_str().unwrap()]);
    assert!(
        listing.contains(&format!("Disk identifier: 0x{:08x}", layout.disk_id)),
        "{listing}"
    );
    assert!(listing.contains("Disklabel type: dos"), "{listing}");
    let name = disk.to_str().unwrap();
    let row = |n: u32| -> Vec<String> {
        let prefix = format!("{name}{n} ");
        let line = listing
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no row {prefix:?} in {listing}"));
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    // Boot, Start, End, Sectors, Size, Id, Type.
    let root_end = (ROOT_START + ROOT_SECTORS - 1).to_string();
    assert_eq!(
        row(1),
        ["*", "2048", root_end.as_str(), "12288", "6M", "83", "Linux"]
    );
    let second_end = (SECOND_START + SECOND_SECTORS - 1).to_string();
    assert_eq!(
        row(2),
        ["14336", second_end.as_str(), "6144", "3M", "83", "Linux"]
    );
}

fn dd(disk: &Path, skip: u64, count: u64) -> Vec<u8> {
    let out = Command::new("dd")
        .arg(format!("if={}", disk.display()))
        .args(["iflag=skip_bytes,count_bytes", "bs=64K", "status=none"])
        .arg(format!("skip={skip}"))
        .arg(format!("count={count}"))
        .output()
        .expect("cannot run dd");
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

#[test]
fn partition_bytes_are_the_root_image_then_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let root = root_image(dir.path());
    mbr::write(&root, &spec(1), &disk).unwrap();
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 16 * MIB);

    let start = ROOT_START * SECTOR;
    let part = dd(&disk, start, ROOT_SECTORS * SECTOR);
    assert_eq!(part.len() as u64, ROOT_SECTORS * SECTOR);
    let (image, free) = part.split_at(ROOT_LEN as usize);
    assert!(image == std::fs::read(&root).unwrap().as_slice());
    assert!(free.iter().all(|&b| b == 0), "free space is not zero");
    let second = dd(&disk, SECOND_START * SECTOR, SECOND_SECTORS * SECTOR);
    assert!(
        second.iter().all(|&b| b == 0),
        "second partition is not empty"
    );
    // Boot code area and the gap before the first partition stay zero.
    let head = dd(&disk, 0, start);
    assert!(head[..440].iter().all(|&b| b == 0));
    assert!(head[512..].iter().all(|&b| b == 0));
    assert_eq!(&head[510..512], &[0x55, 0xaa]);
}

#[test]
fn building_twice_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_image(dir.path());
    let (a, b, c) = (
        dir.path().join("a.img"),
        dir.path().join("b.img"),
        dir.path().join("c.img"),
    );
    let la = mbr::write(&root, &spec(42), &a).unwrap();
    let lb = mbr::write(&root, &spec(42), &b).unwrap();
    assert_eq!(la, lb);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    // Another SOURCE_DATE_EPOCH is another disk: the identifier follows it.
    let lc = mbr::write(&root, &spec(43), &c).unwrap();
    assert_ne!(la.disk_id, lc.disk_id);
}

#[test]
fn refuses_a_root_larger_than_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_image(dir.path());
    let disk = dir.path().join("disk.img");
    let small = MbrSpec {
        disk_size: 4 * MIB,
        root_free: 0,
        second: None,
        epoch: None,
    };
    let err = mbr::write(&root, &small, &disk).unwrap_err();
    assert!(
        matches!(err, MbrError::DoesNotFit { needed, disk, .. } if needed == 5 * MIB && disk == 4 * MIB),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("root image {ROOT_LEN} bytes")),
        "{msg}"
    );
    assert!(msg.contains("disk is 4194304 bytes"), "{msg}");
    assert!(!disk.exists(), "a refused image must not be left behind");
    // The free space asked for counts too: the root alone fits 5 MiB, not with 2 MiB more.
    let tight = MbrSpec {
        disk_size: 5 * MIB,
        root_free: 2 * MIB,
        ..small
    };
    assert!(matches!(
        mbr::write(&root, &tight, &disk),
        Err(MbrError::DoesNotFit { .. })
    ));
}

/// sfdisk, given the same table as a script, writes the same first sector byte for byte: the CHS
/// fields, the boot flag and the identifier come out as the reference tool computes them.
#[test]
fn boot_sector_equals_the_one_sfdisk_writes() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let layout = mbr::write(&root_image(dir.path()), &spec(7), &disk).unwrap();

    let reference = dir.path().join("reference.img");
    std::fs::File::create(&reference)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    let script = format!(
        "label: dos\nlabel-id: 0x{:08x}\n\
         start={ROOT_START}, size={ROOT_SECTORS}, type=83, bootable\n\
         start={SECOND_START}, size={SECOND_SECTORS}, type=83\n",
        layout.disk_id
    );
    let mut child = Command::new("sfdisk")
        .args(["-q", reference.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run sfdisk (scripts/setup.sh installs fdisk)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());

    let ours = dd(&disk, 0, SECTOR);
    let theirs = dd(&reference, 0, SECTOR);
    assert_eq!(ours, theirs);
}
