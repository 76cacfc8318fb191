//! Our fw_printenv/fw_setenv against libubootenv-tool 0.3.2's, on twin copies of the
//! same files: identical stdout, stderr, exit status and bytes after every step.
//! Sizes are >= 128 KiB because libubootenv only zero-fills those (see fwtool docs).

mod common;
use common::*;
use liminix_bootenv::{Endian, Layout};

const TEXT: &[u8] =
    b"bootcmd=run distro_bootcmd\nbootdelay=2\nbaudrate=115200\nethaddr=00:11:22:33:44:55\n";

/// libubootenv's tools, or a failure naming their package.
fn tools() {
    need("/usr/bin/fw_printenv", "libubootenv-tool");
    need("/usr/bin/fw_setenv", "libubootenv-tool");
}

/// The edit sequence every layout goes through.
fn edit_sequence(t: &Twins, cfg: &str) {
    let with = |rest: &[&str]| -> Vec<String> {
        ["-c", cfg]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    t.both("fw_printenv", &with(&[]));
    t.both("fw_setenv", &with(&["newvar", "hello"]));
    t.both(
        "fw_setenv",
        &with(&["spaced", "a value with spaces = and equals"]),
    );
    t.both("fw_printenv", &with(&["spaced", "missing", "bootdelay"]));
    t.both("fw_printenv", &with(&["-n", "spaced", "missing"]));
    t.both("fw_setenv", &with(&["bootdelay", "5", "x", "1", "y", "2"]));
    t.both("fw_setenv", &with(&["bootdelay", "5"])); // unchanged: no write
    t.both("fw_setenv", &with(&["x"])); // delete
    t.both("fw_setenv", &with(&["not_there"])); // delete of a missing variable: no write
    t.both("fw_setenv", &with(&["a", "1", "b"])); // pairs: sets a, deletes b
    t.both("fw_setenv", &with(&["bad=name", "v"]));
    t.both("fw_setenv", &with(&["-x", "y", "7"])); // unknown option ignored
    t.both("fw_setenv", &with(&["empty", ""]));
    t.write(
        "script.txt",
        b"# comment\n\nbootcmd=echo script; boot\r\ny=\nnoequals line\nlist=a=b=c\nnewvar=again\n",
    );
    t.both_loose("fw_setenv", &with(&["-s", "{dir}/script.txt"]));
    t.both("fw_setenv", &with(&["--script", "{dir}/does-not-exist"]));
    t.both("fw_printenv", &with(&[]));
}

#[test]
fn single_copy_file() {
    tools();
    let t = Twins::new();
    t.write("env.img", &mkenvimage(&["-s", "0x20000"], TEXT));
    t.write("fw_env.config", b"{dir}/env.img 0x0 20000 20000\n");
    t.env_copy(
        "env.img",
        0,
        Layout::new(0x20000, false, Endian::Little).unwrap(),
    );
    edit_sequence(&t, "{dir}/fw_env.config");
}

#[test]
fn redundant_in_one_file() {
    tools();
    let t = Twins::new();
    let one = mkenvimage(&["-r", "-s", "0x20000"], TEXT);
    t.write("env.img", &[one.clone(), one].concat());
    t.write(
        "fw_env.config",
        b"# two copies\n{dir}/env.img 0x0 0x20000\n{dir}/env.img 0x20000 0x20000\n",
    );
    let l = Layout::new(0x20000, true, Endian::Little).unwrap();
    t.env_copy("env.img", 0, l);
    t.env_copy("env.img", 0x20000, l);
    edit_sequence(&t, "{dir}/fw_env.config");
}

#[test]
fn redundant_in_two_files_with_flag_wraparound() {
    tools();
    use liminix_bootenv::Env;
    let t = Twins::new();
    let l = Layout::new(0x20000, true, Endian::Little).unwrap();
    let env = Env::from_text(TEXT).unwrap();
    // copy 1 is current with flag 254; the next saves use 255, then wrap to 0.
    t.write("a.img", &l.encode(&env, 253, 0).unwrap());
    t.write("b.img", &l.encode(&env, 254, 0).unwrap());
    t.write(
        "fw_env.config",
        b"{dir}/a.img 0 20000\n{dir}/b.img 0 20000\n",
    );
    let cfg = ["-c", "{dir}/fw_env.config"];
    for i in 0..4 {
        let v = format!("{i}");
        t.both("fw_setenv", &[cfg[0], cfg[1], "counter", &v]);
        t.both("fw_printenv", &[cfg[0], cfg[1], "counter"]);
    }
    let a = std::fs::read(t.b.join("a.img")).unwrap();
    let b = std::fs::read(t.b.join("b.img")).unwrap();
    assert_eq!(
        (a[4], b[4]),
        (1, 2),
        "flags after 253/254 → 255 → 0 → 1 → 2"
    );
}

#[test]
fn one_copy_torn_and_both_bad() {
    tools();
    let t = Twins::new();
    let one = mkenvimage(&["-r", "-s", "0x20000"], TEXT);
    let mut newer = one.clone();
    newer[4] = 2;
    newer[100] ^= 0xFF; // torn: CRC no longer matches, so copy 0 must be used
    t.write("env.img", &[one, newer].concat());
    t.write(
        "fw_env.config",
        b"{dir}/env.img 0x0 0x20000\n{dir}/env.img 0x20000 0x20000\n",
    );
    let c = "{dir}/fw_env.config";
    t.both("fw_printenv", &["-c", c]);
    t.both("fw_setenv", &["-c", c, "after", "tear"]);
    t.both("fw_printenv", &["-c", c]);

    // both copies bad: defaults from -f, or the failure message
    t.write("zero.img", &vec![0u8; 0x40000]);
    t.write(
        "zero.config",
        b"{dir}/zero.img 0 20000\n{dir}/zero.img 0x20000 20000\n",
    );
    t.write("defaults.txt", b"bootcmd=echo default\nfoo=bar\n");
    let z = "{dir}/zero.config";
    t.both("fw_printenv", &["-c", z, "-f", "{dir}/nodefaults"]);
    t.both("fw_printenv", &["-c", z, "-f", "{dir}/defaults.txt"]);
    // Storing the defaults: libubootenv's buffer holds heap garbage after the terminator
    // on this path, so compare what each wrote through our parser instead of raw bytes.
    let l = Layout::new(0x20000, true, Endian::Little).unwrap();
    t.env_copy("zero.img", 0, l);
    t.env_copy("zero.img", 0x20000, l);
    t.both_loose(
        "fw_setenv",
        &["-c", z, "-f", "{dir}/defaults.txt", "foo", "baz"],
    );
    t.both("fw_printenv", &["-c", z]);
    let copy1 = |d: &std::path::Path| {
        let img = std::fs::read(d.join("zero.img")).unwrap();
        let c = img[0x20000..0x40000].to_vec();
        assert!(l.inspect(&c).crc_ok);
        (c[4], l.parse(&c).unwrap().0)
    };
    assert_eq!(copy1(&t.a), copy1(&t.b));
    assert_eq!(copy1(&t.b).1.get(b"foo"), Some(&b"baz"[..]));
}

#[test]
fn big_endian_image_is_invalid_for_a_little_endian_host_tool() {
    tools();
    let t = Twins::new();
    t.write("be.img", &mkenvimage(&["-b", "-s", "0x20000"], TEXT));
    t.write("be.config", b"{dir}/be.img 0 20000\n");
    t.write("defaults.txt", b"d=1\n");
    t.both(
        "fw_printenv",
        &["-c", "{dir}/be.config", "-f", "{dir}/defaults.txt"],
    );
}

#[test]
fn config_errors_and_flags_attributes() {
    tools();
    let t = Twins::new();
    t.both("fw_printenv", &["-c", "{dir}/missing.config"]);
    t.write("nodev.config", b"{dir}/nodev.img 0 20000\n");
    t.both("fw_printenv", &["-c", "{dir}/nodev.config"]);
    t.write("empty.config", b"# nothing\n");
    t.both("fw_printenv", &["-c", "{dir}/empty.config"]);
    let img = mkenvimage(
        &["-s", "0x20000"],
        b"ro=locked\nrw=free\n.flags=ro:sr,rw:sa\n",
    );
    t.write("f.img", &img);
    t.write("f.config", b"{dir}/f.img 0 20000\n");
    let c = "{dir}/f.config";
    t.both("fw_printenv", &["-c", c]);
    t.both("fw_setenv", &["-c", c, "ro", "changed", "rw", "changed"]);
    t.both("fw_setenv", &["-c", c, "ro"]);
    t.both("fw_printenv", &["-c", c]);

    // larger than the environment: "Error storing the env", status 244, nothing written
    let mut big = Vec::new();
    for i in 0..200 {
        big.extend_from_slice(format!("v{i:03}={}\n", "x".repeat(900)).as_bytes());
    }
    t.write("big.txt", &big);
    let before = std::fs::read(t.b.join("f.img")).unwrap();
    let (_, err, code) = t.both("fw_setenv", &["-c", c, "-s", "{dir}/big.txt"]);
    assert_eq!(
        (code, String::from_utf8_lossy(&err).as_ref()),
        (244, "Error storing the env\n")
    );
    assert!(std::fs::read(t.b.join("f.img")).unwrap() == before);
}

#[test]
fn odd_config_lines_are_read_like_sscanf_does() {
    tools();
    let t = Twins::new();
    t.write("env.img", &mkenvimage(&["-s", "0x20000"], TEXT));
    for (i, cfg) in [
        // junk offset: line ignored, next one used
        "{dir}/env.img zz 20000\n{dir}/env.img 0 20000\n",
        // junk after the size: size still read, scan ends
        "{dir}/env.img 0 20000junk 4000\n",
        // indented '#' is not a comment, but its fields do not scan
        "   # {dir}/env.img 0 20000\n{dir}/env.img 0x0 0x20000\n",
        // too few fields everywhere
        "{dir}/env.img 0\n",
        // size 0
        "{dir}/env.img 0 0\n",
        // octal offset 0 and decimal offset
        "{dir}/env.img 00 20000\n",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("c{i}.config");
        t.write(&name, cfg.as_bytes());
        t.both(
            "fw_printenv",
            &["-c", &format!("{{dir}}/{name}"), "bootdelay"],
        );
    }
}
