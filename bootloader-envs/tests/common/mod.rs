//! Helpers shared by the integration tests: run the real libubootenv tools and ours on
//! twin directories and compare everything they produce. Real U-Boot boots through
//! `liminix_vm::arm::PflashBed`.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use liminix_bootenv::{Env, Layout};

/// stdout, stderr, exit status.
pub type Outcome = (Vec<u8>, Vec<u8>, i32);

/// A missing tool fails the test with the Debian package to install (scripts/setup.sh
/// installs them all); a test never passes without running.
pub fn need(path: &str, package: &'static str) {
    liminix_vm::require(path, package).unwrap_or_else(|e| panic!("{e}"));
}

/// `mkenvimage` on the PATH, or a failure naming u-boot-tools.
pub fn need_mkenvimage() {
    liminix_vm::require_program("mkenvimage", "u-boot-tools").unwrap_or_else(|e| panic!("{e}"));
}

/// Parses `name=value` lines.
pub fn env(text: &str) -> Env {
    Env::from_text(text.as_bytes()).unwrap()
}

/// Runs /usr/bin/fw_printenv or /usr/bin/fw_setenv.
pub fn real(tool: &str, args: &[&str], dir: &Path) -> Outcome {
    use std::os::unix::process::CommandExt;
    let o = Command::new(format!("/usr/bin/{tool}"))
        .arg0(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run real tool");
    (o.stdout, o.stderr, o.status.code().unwrap_or(-1))
}

/// Runs our implementation in-process with the same arguments.
pub fn mine(tool: &str, args: &[&str], dir: &Path) -> Outcome {
    let args: Vec<OsString> = args
        .iter()
        .map(|a| OsString::from(a.replace("{dir}", &dir.display().to_string())))
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = match tool {
        "fw_printenv" => liminix_bootenv::fw_printenv_main(&args, &mut out, &mut err),
        "fw_setenv" => liminix_bootenv::fw_setenv_main(&args, &mut out, &mut err),
        other => panic!("unknown tool {other}"),
    };
    (out, err, code)
}

/// `mkenvimage ARGS -o OUT INPUT`, returning the image.
pub fn mkenvimage(args: &[&str], input: &[u8]) -> Vec<u8> {
    need_mkenvimage();
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("input.txt");
    let out = dir.path().join("out.img");
    std::fs::write(&inp, input).unwrap();
    let st = Command::new("mkenvimage")
        .args(args)
        .arg("-o")
        .arg(&out)
        .arg(&inp)
        .status()
        .expect("run mkenvimage");
    assert!(st.success(), "mkenvimage {args:?} failed");
    std::fs::read(out).unwrap()
}

/// Two directories with identical files; `{dir}` in config text is replaced per twin.
pub struct Twins {
    _tmp: tempfile::TempDir,
    pub a: PathBuf,
    pub b: PathBuf,
    /// Environment copies (file, offset, layout) compared by content once `loose` is set.
    copies: std::cell::RefCell<Vec<(String, usize, Layout)>>,
    loose: std::cell::Cell<bool>,
}

impl Twins {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("real");
        let b = tmp.path().join("mine");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        Twins {
            _tmp: tmp,
            a,
            b,
            copies: Default::default(),
            loose: Default::default(),
        }
    }

    /// Declares where environment copies live, for loose comparisons.
    pub fn env_copy(&self, file: &str, offset: usize, layout: Layout) {
        self.copies
            .borrow_mut()
            .push((file.to_string(), offset, layout));
    }

    /// Runs a step after which libubootenv's bytes after the terminator are heap garbage
    /// (it read a script or default file through stdio): from now on copies are compared
    /// by CRC validity, flags and content up to the terminator.
    pub fn both_loose<S: AsRef<str>>(&self, tool: &str, args: &[S]) -> Outcome {
        self.loose.set(true);
        self.both(tool, args)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) {
        for d in [&self.a, &self.b] {
            let text = String::from_utf8_lossy(bytes);
            let data = if name.ends_with(".config") {
                text.replace("{dir}", &d.display().to_string()).into_bytes()
            } else {
                bytes.to_vec()
            };
            std::fs::write(d.join(name), data).unwrap();
        }
    }

    /// Runs `tool args` on both twins (`{dir}` expands to each twin's directory) and
    /// asserts identical stdout, stderr, exit status and file contents.
    pub fn both<S: AsRef<str>>(&self, tool: &str, args: &[S]) -> Outcome {
        let r = self.both_output(tool, args);
        self.assert_same_files(&format!(
            "{tool} {:?}",
            args.iter().map(AsRef::as_ref).collect::<Vec<_>>()
        ));
        r
    }

    /// Like [`Self::both`] but without comparing files (for steps where libubootenv
    /// leaves heap garbage after the terminator).
    pub fn both_output<S: AsRef<str>>(&self, tool: &str, args: &[S]) -> Outcome {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let args = args.as_slice();
        let ea: Vec<String> = args
            .iter()
            .map(|s| s.replace("{dir}", &self.a.display().to_string()))
            .collect();
        let ea: Vec<&str> = ea.iter().map(String::as_str).collect();
        let r = real(tool, &ea, &self.a);
        let m = mine(tool, args, &self.b);
        assert_eq!(
            String::from_utf8_lossy(&r.0),
            String::from_utf8_lossy(&m.0),
            "stdout of {tool} {args:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&r.1),
            String::from_utf8_lossy(&m.1),
            "stderr of {tool} {args:?}"
        );
        assert_eq!(r.2, m.2, "exit status of {tool} {args:?}");
        r
    }

    pub fn assert_same_files(&self, ctx: &str) {
        let mut names: Vec<_> = std::fs::read_dir(&self.a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let x = std::fs::read(self.a.join(&n)).unwrap();
            let y = std::fs::read(self.b.join(&n)).unwrap();
            if n.to_string_lossy().ends_with(".config") {
                continue;
            }
            let (x, y) = self.masked(&n.to_string_lossy(), x, y, ctx);
            if let Some(i) = x.iter().zip(&y).position(|(p, q)| p != q) {
                panic!(
                    "after {ctx}: {} differs at byte {i:#x}: real {:02x?} mine {:02x?}",
                    n.to_string_lossy(),
                    &x[i..(i + 16).min(x.len())],
                    &y[i..(i + 16).min(y.len())]
                );
            }
            assert_eq!(
                x.len(),
                y.len(),
                "after {ctx}: size of {}",
                n.to_string_lossy()
            );
        }
    }
}

impl Twins {
    /// In loose mode, checks each declared copy semantically and blanks it out so the
    /// remaining bytes are still compared exactly.
    fn masked(&self, name: &str, mut x: Vec<u8>, mut y: Vec<u8>, ctx: &str) -> (Vec<u8>, Vec<u8>) {
        if !self.loose.get() {
            return (x, y);
        }
        for (file, off, l) in self.copies.borrow().iter() {
            if file != name {
                continue;
            }
            let r = *off..off + l.env_size;
            let (cx, cy) = (&x[r.clone()], &y[r.clone()]);
            let (sx, sy) = (l.inspect(cx), l.inspect(cy));
            assert_eq!(sx, sy, "after {ctx}: CRC/flags of {name}@{off:#x}");
            if sx.crc_ok {
                let (ex, rx) = l.parse(cx).unwrap();
                let (ey, ry) = l.parse(cy).unwrap();
                assert_eq!(ex, ey, "after {ctx}: variables of {name}@{off:#x}");
                let h = l.header_len();
                assert!(
                    cx[h..h + rx.end] == cy[h..h + ry.end],
                    "after {ctx}: data of {name}@{off:#x}"
                );
            } else {
                assert!(
                    cx == cy,
                    "after {ctx}: invalid copy {name}@{off:#x} differs"
                );
            }
            x[r.clone()].fill(0);
            y[r].fill(0);
        }
        (x, y)
    }
}
