//! `liminix_ubi::image` against mtd-utils' `ubinize` (byte-for-byte) and
//! `ubi_reader` (reads every volume back), on NAND and NOR geometries.
//! Both tools are required: a missing one fails the test.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use liminix_testdata::pattern;
use liminix_ubi::image::{inspect, write_image, Geometry, ImageParams, VolumeSpec};
use liminix_ubi::VolumeKind;

/// One image of the oracle matrix: geometry, EC values, volumes.
struct Case<'a> {
    name: &'static str,
    geometry: Geometry,
    params: ImageParams,
    volumes: Vec<VolumeSpec<'a>>,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup.sh installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ubinize config of `volumes`, each data file written into `dir`.
fn ubinize_config(dir: &Path, volumes: &[VolumeSpec]) -> String {
    let mut cfg = String::new();
    for v in volumes {
        let kind = match v.kind {
            VolumeKind::Dynamic => "dynamic",
            VolumeKind::Static => "static",
        };
        writeln!(cfg, "[{}]\nmode=ubi\nvol_id={}", v.name, v.id).unwrap();
        writeln!(cfg, "vol_type={kind}\nvol_name={}", v.name).unwrap();
        writeln!(cfg, "vol_alignment={}", v.alignment).unwrap();
        if let Some(size) = v.size {
            writeln!(cfg, "vol_size={size}").unwrap();
        }
        if v.autoresize {
            writeln!(cfg, "vol_flags=autoresize").unwrap();
        }
        if !v.data.is_empty() {
            let file = dir.join(format!("{}.bin", v.name));
            std::fs::write(&file, v.data).unwrap();
            writeln!(cfg, "image={}", file.display()).unwrap();
        }
    }
    cfg
}

fn ubinize(dir: &Path, case: &Case) -> Vec<u8> {
    let cfg = dir.join("ubinize.cfg");
    std::fs::write(&cfg, ubinize_config(dir, &case.volumes)).unwrap();
    let out = dir.join("ubinize.img");
    let g = case.geometry;
    let mut cmd = Command::new("ubinize");
    cmd.arg("-o").arg(&out);
    cmd.args(["-p", &g.peb_size.to_string(), "-m", &g.min_io.to_string()]);
    cmd.args(["-s", &g.subpage.to_string()]);
    if let Some(off) = g.vid_hdr_offset {
        cmd.args(["-O", &off.to_string()]);
    }
    cmd.args(["-Q", &case.params.image_seq.to_string()]);
    cmd.args(["-e", &case.params.erase_counter.to_string()]);
    run(cmd.arg(&cfg));
    std::fs::read(out).unwrap()
}

fn ours(case: &Case) -> Vec<u8> {
    let mut img = Vec::new();
    let n = write_image(&case.geometry, case.params, &case.volumes, &mut img).unwrap();
    assert_eq!(n, img.len() as u64, "{}: returned size", case.name);
    img
}

fn assert_same_bytes(case: &Case, expected: &[u8], got: &[u8]) {
    let first = expected.iter().zip(got).position(|(a, b)| a != b);
    assert!(
        expected.len() == got.len() && first.is_none(),
        "{}: ubinize wrote {} bytes, we wrote {}; first difference at {first:?} (PEB size {})",
        case.name,
        expected.len(),
        got.len(),
        case.geometry.peb_size
    );
}

/// ubi_reader extracts each volume; static volumes come back exactly, dynamic
/// ones as whole LEBs (the data, then the erased rest of its last LEB).
fn assert_ubi_reader_reads_back(dir: &Path, case: &Case, img: &[u8]) {
    let file = dir.join("ours.img");
    std::fs::write(&file, img).unwrap();
    let info = run(Command::new("ubireader_display_info").arg(&file));
    let out = dir.join("extracted");
    run(Command::new("ubireader_extract_images")
        .arg("-o")
        .arg(&out)
        .arg(&file));
    let seq = case.params.image_seq;
    for v in &case.volumes {
        assert_volume_record(case, v, &info);
        if v.data.is_empty() {
            continue;
        }
        let path = out
            .join("ours.img")
            .join(format!("img-{seq}_vol-{}.ubifs", v.name));
        let back = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            &back[..v.data.len()],
            v.data,
            "{}: volume {}",
            case.name,
            v.name
        );
        let tail = &back[v.data.len()..];
        match v.kind {
            VolumeKind::Static => assert!(tail.is_empty(), "{}: {} trails", case.name, v.name),
            VolumeKind::Dynamic => assert!(tail.iter().all(|&b| b == 0xFF)),
        }
    }
}

/// The lines ubireader_display_info prints for volume `v`'s table record
/// agree with what was asked for.
fn assert_volume_record(case: &Case, v: &VolumeSpec, info: &str) {
    let start = info
        .find(&format!("Volume: {}\n", v.name))
        .unwrap_or_else(|| panic!("{}: no volume {} in:\n{info}", case.name, v.name));
    let section = &info[start + 1..];
    let section = &section[..section.find("Volume: ").unwrap_or(section.len())];
    let kind = match v.kind {
        VolumeKind::Dynamic => "dynamic",
        VolumeKind::Static => "static",
    };
    let flags = if v.autoresize { "'autoresize'" } else { "0" };
    for line in [
        format!("name: '{}'", v.name),
        format!("vol_type: '{kind}'"),
        format!("alignment: {}", v.alignment),
        format!("flags: {flags}"),
        "errors: ''".to_string(),
    ] {
        assert!(
            section.lines().any(|l| l.trim() == line),
            "{}: volume {} lacks `{line}`:\n{section}",
            case.name,
            v.name
        );
    }
}

/// `inspect` reads ubinize's image as the volumes that went in.
fn assert_inspect_agrees(case: &Case, img: &[u8]) {
    let info = inspect(img, case.geometry.peb_size).unwrap();
    let layout = case.geometry.layout().unwrap();
    assert_eq!(
        (info.vid_hdr_offset, info.data_offset, info.image_seq),
        (
            layout.vid_hdr_offset,
            layout.data_offset,
            case.params.image_seq
        ),
        "{}",
        case.name
    );
    let mut specs: Vec<&VolumeSpec> = case.volumes.iter().collect();
    specs.sort_by_key(|v| v.id);
    assert_eq!(info.volumes.len(), specs.len(), "{}", case.name);
    for (got, v) in info.volumes.iter().zip(specs) {
        let usable = layout.leb_size - layout.leb_size % v.alignment;
        let lebs = v.data.len().div_ceil(usable as usize) as u32;
        let static_bytes = match v.kind {
            VolumeKind::Static => v.data.len() as u64,
            VolumeKind::Dynamic => 0,
        };
        assert_eq!(
            (&got.name, got.id, got.kind, got.alignment, got.autoresize),
            (&v.name, v.id, v.kind, v.alignment, v.autoresize),
            "{}",
            case.name
        );
        assert_eq!(
            (got.lebs, got.static_bytes),
            (lebs, static_bytes),
            "{}: {}",
            case.name,
            v.name
        );
    }
    assert_eq!(info.pebs * case.geometry.peb_size as usize, img.len());
}

fn check(case: &Case) {
    let dir = tempfile::tempdir().unwrap();
    let expected = ubinize(dir.path(), case);
    let got = ours(case);
    assert_same_bytes(case, &expected, &got);
    assert_inspect_agrees(case, &expected);
    assert_ubi_reader_reads_back(dir.path(), case, &got);
}

/// A kernel-like static volume, a UBIFS-like dynamic root with room to grow,
/// and an empty autoresize data volume: the shapes Liminix boards use.
fn board_volumes<'a>(kernel: &'a [u8], root: &'a [u8]) -> Vec<VolumeSpec<'a>> {
    vec![
        VolumeSpec::new(0, "kernel", VolumeKind::Static, kernel),
        VolumeSpec {
            size: Some(3 << 20),
            ..VolumeSpec::new(1, "rootfs", VolumeKind::Dynamic, root)
        },
        VolumeSpec {
            size: Some(1 << 20),
            autoresize: true,
            ..VolumeSpec::new(5, "data", VolumeKind::Dynamic, &[])
        },
    ]
}

fn nand(subpage: u32) -> Geometry {
    Geometry {
        peb_size: 128 << 10,
        min_io: 2048,
        subpage,
        vid_hdr_offset: None,
    }
}

const PARAMS: ImageParams = ImageParams {
    image_seq: 0x1234_ABCD,
    erase_counter: 0,
};

#[test]
fn nand_2k_pages_equals_ubinize() {
    let (kernel, root) = (pattern(1, 300_001), pattern(2, 2 * 126_976));
    check(&Case {
        name: "NAND 2 KiB pages",
        geometry: nand(2048),
        params: PARAMS,
        volumes: board_volumes(&kernel, &root),
    });
}

#[test]
fn nand_512_subpages_equals_ubinize() {
    let (kernel, root) = (pattern(3, 129_024), pattern(4, 777_777));
    check(&Case {
        name: "NAND 512-byte sub-pages",
        geometry: nand(512),
        params: ImageParams {
            image_seq: 7,
            erase_counter: 3,
        },
        volumes: board_volumes(&kernel, &root),
    });
}

#[test]
fn nor_equals_ubinize() {
    let (kernel, root) = (pattern(5, 100_000), pattern(6, 65_408 * 3 + 17));
    check(&Case {
        name: "NOR",
        geometry: Geometry {
            peb_size: 64 << 10,
            min_io: 1,
            subpage: 1,
            vid_hdr_offset: None,
        },
        params: PARAMS,
        volumes: board_volumes(&kernel, &root),
    });
}

/// An explicit VID header offset and an aligned static volume, whose LEBs
/// lose `leb_size % alignment` bytes each (126976 % 8192 = 4096).
#[test]
fn vid_offset_and_alignment_equal_ubinize() {
    let (blob, root) = (pattern(7, 200_000), pattern(8, 5000));
    check(&Case {
        name: "VID offset 512, alignment 8192",
        geometry: Geometry {
            vid_hdr_offset: Some(512),
            ..nand(512)
        },
        params: PARAMS,
        volumes: vec![
            VolumeSpec {
                alignment: 8192,
                ..VolumeSpec::new(2, "aligned", VolumeKind::Static, &blob)
            },
            VolumeSpec {
                autoresize: true,
                ..VolumeSpec::new(0, "root", VolumeKind::Dynamic, &root)
            },
        ],
    });
}
