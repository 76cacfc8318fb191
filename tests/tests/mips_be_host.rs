//! The big-endian MIPS agent (scripts/build-agents.sh; the GL-AR750's ath79 CPU) on this
//! host under `qemu-mips-static`: Debian has no big-endian MIPS kernel, so these checks run
//! on files, not MTD. U-Boot keeps its environment's CRC in the CPU's byte order, so the
//! big-endian agent must read what U-Boot's `mkenvimage -b` writes, refuse the
//! little-endian image, and write byte for byte what `mkenvimage -b` would; then
//! `zyxel-bootconfig` on a partition image in a file, and `receive` of a signed closure
//! bundle into a `--root` (NAR restore of files, modes and symlinks).

use std::path::{Path, PathBuf};
use std::process::Command;

use liminix_vm::{built_agent, require_program};

const ENV_SIZE: &str = "0x4000";

/// The agent linked under `name` in `dir` (it picks the tool by argv[0]'s file name).
fn tool(dir: &Path, name: &str) -> PathBuf {
    let agent = built_agent("mips-unknown-linux-gnu").unwrap_or_else(|e| panic!("{e}"));
    let link = dir.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(agent, &link).unwrap();
    }
    link
}

/// Runs `tool args…` under qemu-mips-static: (stdout, stderr, exit code).
fn run(tool: &Path, args: &[&str]) -> (String, String, i32) {
    require_program("qemu-mips-static", "qemu-user-static").unwrap();
    let out = Command::new("qemu-mips-static")
        .arg(tool)
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().expect("exited"),
    )
}

/// `mkenvimage` of `vars` (one `name=value` a line) into `out`; `-b` for big-endian. Padded
/// with zeros after the variables, as fw_setenv (libubootenv's and the agent's) writes.
fn mkenvimage(dir: &Path, vars: &str, big_endian: bool, out: &Path) {
    require_program("mkenvimage", "u-boot-tools").unwrap();
    let input = dir.join("vars.txt");
    std::fs::write(&input, vars).unwrap();
    let mut cmd = Command::new("mkenvimage");
    if big_endian {
        cmd.arg("-b");
    }
    let st = cmd
        .args(["-p", "0", "-s", ENV_SIZE, "-o"])
        .arg(out)
        .arg(&input)
        .status()
        .unwrap();
    assert!(st.success(), "mkenvimage");
}

/// A fw_env.config naming `env` (a file: offset and size only).
fn config(dir: &Path, env: &Path) -> String {
    let cfg = dir.join(format!(
        "{}.config",
        env.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&cfg, format!("{} 0x0 {ENV_SIZE}\n", env.display())).unwrap();
    cfg.to_str().unwrap().to_string()
}

#[test]
fn big_endian_uboot_environment_in_a_file() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (printenv, setenv) = (tool(dir, "fw_printenv"), tool(dir, "fw_setenv"));
    let vars = "bootcmd=run boot_a\nbootdelay=3\nslot=a\n";
    let (be, le) = (dir.join("env.be"), dir.join("env.le"));
    mkenvimage(dir, vars, true, &be);
    mkenvimage(dir, vars, false, &le);
    let (cfg_be, cfg_le) = (config(dir, &be), config(dir, &le));

    let (out, err, rc) = run(&printenv, &["-c", &cfg_be]);
    assert_eq!((out.as_str(), rc), (vars, 0), "{err}");
    // A big-endian CPU must not take a little-endian CRC: libubootenv's words for a bad CRC.
    let (out, err, rc) = run(&printenv, &["-c", &cfg_le]);
    assert_eq!(out, "");
    assert!(
        err.starts_with("Cannot read environment, using default\n"),
        "{err}"
    );
    assert_ne!(rc, 0);

    let (_, err, rc) = run(&setenv, &["-c", &cfg_be, "slot", "b"]);
    assert_eq!(rc, 0, "{err}");
    let (out, err, rc) = run(&printenv, &["-c", &cfg_be, "-n", "slot"]);
    assert_eq!((out.as_str(), rc), ("b\n", 0), "{err}");
    let expected = dir.join("expected.be");
    mkenvimage(
        dir,
        "bootcmd=run boot_a\nbootdelay=3\nslot=b\n",
        true,
        &expected,
    );
    assert!(
        std::fs::read(&be).unwrap() == std::fs::read(&expected).unwrap(),
        "fw_setenv wrote what mkenvimage -b writes"
    );
}

#[test]
fn bootconfig_in_a_file() {
    let d = tempfile::tempdir().unwrap();
    let z = tool(d.path(), "zyxel-bootconfig");
    let p = d.path().join("bootconfig.bin");
    let img = liminix_testdata::zyxel_bootconfig_partition();
    std::fs::write(&p, &img).unwrap();
    let dev = p.to_str().unwrap();
    assert_eq!(
        run(&z, &[dev, "get-status"]),
        (
            "Active Image: 0\nImage 0 Status: valid\nImage 1 Status: invalid\n".into(),
            String::new(),
            0
        )
    );
    assert_eq!(run(&z, &[dev, "set-image-status", "1", "new"]).2, 0);
    assert_eq!(run(&z, &[dev, "set-active-image", "1"]).2, 0);
    let after = std::fs::read(&p).unwrap();
    assert_eq!(&after[..2], &[0x48, 0x01]);
    assert!(after[2..] == img[2..], "only the two bytes may change");
    assert_eq!(
        run(&z, &[dev, "get-status"]).0,
        "Active Image: 1\nImage 0 Status: valid\nImage 1 Status: new\n"
    );
}

const TOP: &str = "/nix/store/3wlx5g1j0cgw2bq9hbs3wbkzrk8x6ph5-system-configuration-mips";
const DEP: &str = "/nix/store/0c4ky3v7n7yrm8p3pg9hfw1mbsx8jxjz-busybox-1.36.1";

/// A build machine's store with a two-path closure: files, an executable, a symlink.
fn build_store(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let top = dir.join(TOP.trim_start_matches('/'));
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("etc/nix-store-paths"), format!("{DEP}\n")).unwrap();
    std::fs::create_dir_all(top.join("bin")).unwrap();
    for f in ["activate", "init"] {
        let p = top.join("bin").join(f);
        std::fs::write(&p, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let dep = dir.join(DEP.trim_start_matches('/'));
    std::fs::create_dir_all(dep.join("bin")).unwrap();
    std::fs::write(dep.join("bin/busybox"), vec![0xA5u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("busybox", dep.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink(format!("{DEP}/bin/sh"), top.join("bin/sh")).unwrap();
}

/// A device root trusting `key`, named as board vm-nor.
fn device_root(dir: &Path, key: &liminix_bundle::SecretKey) {
    for d in ["etc/liminix/trusted-keys", "nix/store", "persist", "run"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("etc/liminix/board"), "vm-nor\n").unwrap();
    std::fs::write(
        dir.join("etc/liminix/trusted-keys/build.pub"),
        key.public().to_file_text(),
    )
    .unwrap();
}

#[test]
fn big_endian_agent_receives_a_closure_into_a_root() {
    use liminix_build_tools::pack::{write_bundle, PackOptions};
    use std::os::unix::fs::PermissionsExt;
    let (build, dev) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = liminix_bundle::SecretKey::generate();
    build_store(build.path());
    device_root(dev.path(), &key);
    let opts = PackOptions {
        store_root: build.path(),
        toplevel: Some(TOP),
        board: "vm-nor",
        epoch: 0,
        build_time: 1,
        level: 3,
        images: &[],
        board_def: None,
        raw_images: false,
    };
    let bundle = build.path().join("closure.bundle");
    write_bundle(&opts, &key, &bundle, &|_, _| {}).unwrap();

    let agent = built_agent("mips-unknown-linux-gnu").unwrap_or_else(|e| panic!("{e}"));
    require_program("qemu-mips-static", "qemu-user-static").unwrap();
    let out = Command::new("qemu-mips-static")
        .arg(&agent)
        .arg("--root")
        .arg(dev.path())
        .args(["receive", "--no-reboot"])
        .stdin(std::fs::File::open(&bundle).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = |p: &str| dev.path().join(p.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(got(&format!("{DEP}/bin/busybox"))).unwrap(),
        vec![0xA5u8; 300_000]
    );
    assert_eq!(
        std::fs::read_link(got(&format!("{DEP}/bin/sh"))).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::read_link(got(&format!("{TOP}/bin/sh"))).unwrap(),
        PathBuf::from(format!("{DEP}/bin/sh"))
    );
    let mode = std::fs::metadata(got(&format!("{TOP}/bin/activate")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "the NAR's executable bit restored");
    let installed: serde_json::Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "installed")
        .unwrap_or_else(|| panic!("no installed event: {stdout}"));
    assert_eq!(installed["generation"], 1, "{installed}");
    assert_eq!(installed["toplevel"], TOP);
    assert_eq!(installed["copied_paths"], 2);
}
