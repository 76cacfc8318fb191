//! Agent memory under attack (issue 9, point 8): the release agent (static musl, overflow checks
//! on, `panic = "abort"`) gets signed bundles that announce huge sizes and counts. Each must be
//! refused before anything proportional to those numbers is allocated: the test reads the
//! agent's peak RSS with GNU time, prints a table (docs/bundle-format.md, "Limits", has one)
//! and holds it under [`RSS_BOUND_KIB`]. `liminix-pack verify` and `inspect` must refuse each
//! manifest with the agent's words.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use liminix_bundle::manifest::{Generation, ImageEntry, PathEntry, FORMAT_VERSION};
use liminix_bundle::stream::{self, Header};
use liminix_bundle::{Manifest, SecretKey};
use liminix_tests::device::{agent_binary, pack_binary};

/// Peak RSS a refused bundle may cost the agent.
const RSS_BOUND_KIB: u64 = 16 << 10;
const BOARD: &str = "hostile-test";

fn path(i: usize, nar_size: u64, entries: u64) -> PathEntry {
    PathEntry {
        path: format!("/nix/store/{}-p{i:06}", "a".repeat(32)),
        nar_sha256: "ab".repeat(32),
        nar_size,
        entries,
    }
}

fn closure(paths: Vec<PathEntry>) -> Manifest {
    Manifest {
        format: FORMAT_VERSION,
        board: BOARD.into(),
        generation: Generation {
            toplevel: paths[0].path.clone(),
            build_time: 1_700_000_000,
        },
        epoch: 1,
        paths,
        images: Vec::new(),
    }
}

/// A signed header (the manifest serialised as given, unvalidated) and the end marker.
fn signed(key: &SecretKey, m: &Manifest) -> Vec<u8> {
    let manifest_bytes = serde_json::to_vec(m).unwrap();
    let header = Header {
        signatures: vec![key.sign_manifest(&manifest_bytes)],
        manifest_bytes,
        manifest: m.clone(),
    };
    let mut out = Vec::new();
    header.write(&mut out).unwrap();
    stream::write_end(&mut out).unwrap();
    out
}

/// A stream whose manifest length field says `len` and which then ends.
fn announced(len: u32) -> Vec<u8> {
    let mut out = stream::MAGIC.to_vec();
    out.extend_from_slice(&stream::STREAM_VERSION.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b"{\"format\":1");
    out
}

struct Case {
    name: &'static str,
    command: &'static str,
    bundle: Vec<u8>,
    /// Exit code and words the agent's refusal must have.
    exit: i32,
    words: &'static str,
    /// Whether `liminix-pack verify` must refuse it with the same words.
    same_in_verify: bool,
}

fn cases(key: &SecretKey) -> Vec<Case> {
    let total = "manifest total size of NARs and images";
    let mut image = closure(vec![path(0, 100, 1)]);
    image.paths.clear();
    image.generation.toplevel.clear();
    image.images.push(ImageEntry {
        name: "firmware".into(),
        target: "mtd:firmware".into(),
        sha256: "ab".repeat(32),
        size: u64::MAX,
        base: None,
    });
    let mut late = closure(vec![path(0, 100, 1)]);
    late.generation.build_time = u64::MAX;
    let flood = (0..16_500).map(|i| path(i, 1 << 20, 1 << 10)).collect();
    // Within every limit (2^14 paths of 64 MiB: 1 TiB in all), but more than any disk here.
    let within = (0..1 << 14).map(|i| path(i, 1 << 26, 1 << 10)).collect();
    let case = |name, command, bundle, exit, words, same_in_verify| Case {
        name,
        command,
        bundle,
        exit,
        words,
        same_in_verify,
    };
    let c = |m: &Manifest| signed(key, m);
    vec![
        case(
            "NAR size 2^64-1",
            "receive",
            c(&closure(vec![path(0, u64::MAX, 1)])),
            3,
            total,
            true,
        ),
        case(
            "two NAR sizes of 2^63",
            "receive",
            c(&closure(vec![path(0, 1 << 63, 1), path(1, 1 << 63, 1)])),
            3,
            total,
            true,
        ),
        case(
            "entry counts 2^64-1",
            "receive",
            c(&closure(vec![
                path(0, 100, u64::MAX),
                path(1, 100, u64::MAX),
            ])),
            3,
            "manifest total number of store path entries",
            true,
        ),
        case(
            "build time 2^64-1",
            "receive",
            c(&late),
            3,
            "manifest build time",
            true,
        ),
        case(
            "16 500 store paths",
            "receive",
            c(&closure(flood)),
            3,
            "manifest number of store paths",
            true,
        ),
        case("image size 2^64-1", "apply", c(&image), 3, total, true),
        case(
            "16 384 paths, 1 TiB in all",
            "receive",
            c(&closure(within)),
            5,
            "space",
            false,
        ),
        case(
            "manifest of 4 MiB announced, 11 bytes sent",
            "receive",
            announced(4 << 20),
            3,
            "truncated",
            false,
        ),
        case(
            "manifest of 4 GiB announced",
            "receive",
            announced(u32::MAX),
            3,
            "larger than the limit",
            false,
        ),
    ]
}

fn device(dir: &Path, key: &SecretKey) {
    for d in ["etc/liminix/trusted-keys", "nix/store", "persist"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::write(dir.join("etc/liminix/board"), format!("{BOARD}\n")).unwrap();
    fs::write(
        dir.join("etc/liminix/trusted-keys/test.pub"),
        key.public().to_file_text(),
    )
    .unwrap();
}

/// Runs the agent under GNU time: exit code, stderr, peak RSS in KiB.
fn agent(root: &Path, command: &str, bundle: &Path) -> (i32, String, u64) {
    let rss = root.join("rss");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss)
        .arg(agent_binary());
    cmd.arg("--root").arg(root).arg(command);
    match command {
        "receive" => cmd.arg("--no-reboot"),
        _ => cmd.arg("-"),
    };
    let out = cmd
        .stdin(fs::File::open(bundle).unwrap())
        .stdout(Stdio::null())
        .output()
        .expect("GNU time (/usr/bin/time, package `time`) runs the agent");
    // GNU time writes "Command exited with non-zero status N" before the format's line.
    let report = fs::read_to_string(&rss).unwrap();
    let kib = report.lines().last().unwrap().trim().parse().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr, kib)
}

#[test]
fn hostile_bundles_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate();
    let public = dir.path().join("test.pub");
    fs::write(&public, key.public().to_file_text()).unwrap();
    println!("| hostile bundle | command | bundle bytes | exit | agent peak RSS KiB |");
    println!("|---|---|---|---|---|");
    for (i, c) in cases(&key).into_iter().enumerate() {
        let root = dir.path().join(format!("device{i}"));
        device(&root, &key);
        let file = dir.path().join(format!("case{i}.bundle"));
        fs::write(&file, &c.bundle).unwrap();
        let (code, stderr, kib) = agent(&root, c.command, &file);
        println!(
            "| {} | {} | {} | {code} | {kib} |",
            c.name,
            c.command,
            c.bundle.len()
        );
        assert_eq!(code, c.exit, "{}: {stderr}", c.name);
        assert!(stderr.contains(c.words), "{}: {stderr}", c.name);
        assert!(kib < RSS_BOUND_KIB, "{}: {kib} KiB", c.name);
        if c.same_in_verify {
            let words = stderr.lines().next().unwrap().split(": ").last().unwrap();
            for command in ["verify", "inspect"] {
                let mut cmd = Command::new(pack_binary());
                cmd.arg(command).arg(&file);
                if command == "verify" {
                    cmd.arg("--trust").arg(&public);
                }
                let out = cmd.output().unwrap();
                let said = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(1), "{}: {command}: {said}", c.name);
                assert!(
                    said.contains(words),
                    "{}: {command} said {said}, agent {words}",
                    c.name
                );
            }
        }
    }
}
