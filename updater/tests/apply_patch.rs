//! Image patches (encoding 4) made by the real packer (`--delta-base`) and applied by
//! `liminix-agent apply`'s library to liminix-flash's simulators: a NOR firmware partition and a
//! UBI volume are patched against what they hold, and a device holding anything else refuses
//! with `base_mismatch` (exit 10) before a single flash operation.

use std::io::Cursor;
use std::path::Path;

use liminix_agent::apply::{apply_with, ApplyError, ApplyOptions, Devices};
use liminix_agent::error::AgentError;
use liminix_agent::root::DeviceRoot;
use liminix_boards::Partition;
use liminix_build_tools::images::ImageInput;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::stream::{ChunkReader, Encoding, EntryHeader, Header};
use liminix_bundle::wire::{exit, ErrorKind};
use liminix_bundle::SecretKey;
use liminix_flash::ubi_update::read_named;
use liminix_flash::{Flash, NoProgress, SimFlash, SimUbi, Ubi};
use liminix_testdata::{code_like, tenth_changed};

struct Sim {
    raw: Option<SimFlash>,
    ubi: Option<SimUbi>,
}

fn missing(p: &Partition) -> ApplyError {
    ApplyError::Device {
        target: p.name.clone(),
        source: "not simulated".into(),
    }
}

impl Devices for Sim {
    fn raw(&mut self, p: &Partition) -> Result<(String, &mut dyn Flash), ApplyError> {
        let f = self.raw.as_mut().ok_or_else(|| missing(p))?;
        Ok((format!("mtd:{}", p.name), f))
    }
    fn ubi(&mut self, p: &Partition) -> Result<(String, &mut dyn Ubi), ApplyError> {
        let u = self.ubi.as_mut().ok_or_else(|| missing(p))?;
        Ok(("ubi0".into(), u))
    }
}

struct Device {
    _dir: tempfile::TempDir,
    root: DeviceRoot,
    key: SecretKey,
}

fn device(board: &str) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let root = DeviceRoot::new(dir.path());
    let key = SecretKey::generate();
    std::fs::create_dir_all(root.join("/etc/liminix/trusted-keys")).unwrap();
    std::fs::create_dir_all(root.join("/persist")).unwrap();
    std::fs::write(root.board_name(), format!("{board}\n")).unwrap();
    let public = root.join("/etc/liminix/trusted-keys/build.pub");
    std::fs::write(public, key.public().to_file_text()).unwrap();
    Device {
        _dir: dir,
        root,
        key,
    }
}

/// Packs image `name` as a patch of `new` against `base`.
fn patch_bundle(d: &Device, board: &str, name: &str, base: &[u8], new: &[u8]) -> Vec<u8> {
    let work = d.root.join("/build");
    std::fs::create_dir_all(&work).unwrap();
    let (file, base_file) = (work.join("new"), work.join("base"));
    std::fs::write(&file, new).unwrap();
    std::fs::write(&base_file, base).unwrap();
    let inputs = [ImageInput {
        name: name.into(),
        file,
        base: Some(base_file),
    }];
    let def = liminix_boards::builtin(board).unwrap();
    let opts = PackOptions {
        store_root: Path::new("/nonexistent"),
        toplevel: None,
        board,
        epoch: 1,
        build_time: 1,
        level: 19,
        images: &inputs,
        board_def: Some(&def),
        raw_images: false,
    };
    let out = work.join("out.bundle");
    write_bundle(&opts, &d.key, &out, &|_, _| {}).unwrap();
    std::fs::read(out).unwrap()
}

fn run(d: &Device, bytes: &[u8], sim: &mut Sim) -> Result<(), AgentError> {
    let opts = ApplyOptions {
        staging: Some(d.root.join("/run/liminix/staging")),
        ..ApplyOptions::default()
    };
    apply_with(
        &d.root,
        &mut Cursor::new(bytes),
        &opts,
        sim,
        &mut NoProgress,
    )
    .map(|_| ())
}

/// The one image entry's encoding and payload length.
fn entry(bytes: &[u8]) -> (Encoding, u64) {
    let mut r = Cursor::new(bytes);
    let h = Header::read(&mut r).unwrap();
    let e = EntryHeader::read(&mut r, &h.manifest).unwrap().unwrap();
    let len = ChunkReader::new(&mut r).drain().unwrap();
    (e.encoding, len)
}

#[test]
fn nor_firmware_is_patched_against_the_partition() {
    let d = device("vm-nor");
    let old = code_like(1, 1 << 20);
    let new = tenth_changed(&old, 100);
    let mut f = SimFlash::nor(64, 0x10000);
    f.load(0, &old);
    let mut sim = Sim {
        raw: Some(f),
        ubi: None,
    };
    let b = patch_bundle(&d, "vm-nor", "firmware", &old, &new);
    let (encoding, len) = entry(&b);
    assert_eq!(encoding, Encoding::ImagePatch);
    let whole = zstd::bulk::compress(&new, 19).unwrap().len() as u64;
    assert!(len * 5 < whole, "patch {len} bytes, whole zstd -19 {whole}");
    run(&d, &b, &mut sim).unwrap();
    assert_eq!(&sim.raw.as_ref().unwrap().contents()[..new.len()], &new[..]);
}

#[test]
fn a_changed_base_is_refused_before_any_flash_operation() {
    let d = device("vm-nor");
    let old = code_like(1, 1 << 20);
    let new = tenth_changed(&old, 100);
    let b = patch_bundle(&d, "vm-nor", "firmware", &old, &new);
    let mut f = SimFlash::nor(64, 0x10000);
    let mut other = old.clone();
    other[12345] ^= 1;
    f.load(0, &other);
    f.reset_stats();
    let mut sim = Sim {
        raw: Some(f),
        ubi: None,
    };
    let err = run(&d, &b, &mut sim).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BaseMismatch, "{err}");
    assert_eq!(err.exit_code(), exit::BASE_MISMATCH);
    assert!(err.to_string().contains("send the whole image"), "{err}");
    let f = sim.raw.as_ref().unwrap();
    assert_eq!(&f.contents()[..other.len()], &other[..]);
    assert_eq!((f.stats().erases, f.stats().programs), (0, 0));
    let staged = std::fs::read_dir(d.root.join("/run/liminix/staging")).map_or(0, |r| r.count());
    assert_eq!(staged, 0, "nothing staged is left");
}

#[test]
fn ubi_volume_is_patched_against_the_current_volume() {
    let d = device("vm-nand-ubi");
    let old = code_like(7, 600_000);
    let new = tenth_changed(&old, 100);
    let mut ubi = SimUbi::new(84, 129024);
    ubi.load_volume("rootfs", 20 * 129024, &old);
    let mut sim = Sim {
        raw: None,
        ubi: Some(ubi),
    };
    // The volume holds `old` followed by erased space: the base is its first `old.len()` bytes.
    let b = patch_bundle(&d, "vm-nand-ubi", "rootfs", &old, &new);
    run(&d, &b, &mut sim).unwrap();
    let u = sim.ubi.as_mut().unwrap();
    assert_eq!(
        read_named(u, "rootfs", new.len() as u64).unwrap().unwrap(),
        new
    );
}
