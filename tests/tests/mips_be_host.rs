//! The big-endian MIPS agent (scripts/build-agents.sh; the GL-AR750's ath79 CPU) on this
//! host under `qemu-mips-static`: Debian has no big-endian MIPS kernel, so these checks run
//! on files, not MTD. U-Boot keeps its environment's CRC in the CPU's byte order, so the
//! big-endian agent must read what U-Boot's `mkenvimage -b` writes, refuse the
//! little-endian image, and write byte for byte what `mkenvimage -b` would; then
//! `zyxel-bootconfig` on a partition image in a file.

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
    // 512 KiB partition: block 0 with vendor data after byte 32, rest erased
    let mut img = vec![0xFFu8; 0x80000];
    img[0] = 0xC8;
    img[1] = 0x00;
    img[2..32].fill(0);
    for (i, b) in img[32..0x20000].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
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
