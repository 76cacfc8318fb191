//! Drop-in `fw_printenv` / `fw_setenv` that behave like libubootenv-tool 0.3.2.
//!
//! Same options (`-c CONFIG`, `-f DEFAULTS`, `-n`, `-s SCRIPT`, `-h`, `-V`), same output,
//! same exit statuses (negative errnos truncated to 8 bits: 247 missing config, 234 bad
//! config, 243 no default environment, 244 too large), same messages on stderr, and the
//! same bytes on the device. Differences, all deliberate:
//! * the new copy is read back and compared before it is made current;
//! * a copy that cannot be read (I/O or ECC error) counts as invalid and the other copy
//!   is used, as U-Boot does (libubootenv gives up and falls back to the defaults);
//! * bytes after the terminator are always zero (libubootenv leaves whatever its heap
//!   buffer held, which is zero only for environments of 128 KiB and more);
//! * `-V` prints `0.3.2 (liminix-bootenv)`.
//!
//! Behaviours kept on purpose because scripts depend on them: `fw_setenv a b c` sets a=b
//! and deletes c (arguments are name/value pairs); `fw_setenv a=b` is refused; a missing
//! variable prints as `name=`; an invalid environment falls back to `-f` or
//! `/etc/u-boot-initial-env` and `fw_setenv` then writes that default back.

mod args;
mod varlist;

use std::ffi::{OsStr, OsString};
use std::io::{BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::config::FwEnvConfig;
use crate::devices::open_store;
use crate::error::EnvError;
use crate::layout::SelectRule;
use crate::store::EnvStore;
use args::EarlyExit;
pub use varlist::VarList;

const EBADF: i32 = 9;
const EINVAL: i32 = 22;
const EACCES: i32 = 13;
const ENOMEM: i32 = 12;
const EIO: i32 = 5;

/// Exit status of `return -errno` from C's main.
fn status(errno: i32) -> i32 {
    (-errno) & 0xFF
}

/// `fw_printenv [OPTIONS] [NAME…]`; `args` without `argv[0]`. Returns the exit status.
pub fn fw_printenv_main(args: &[OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    run(false, args, out, err)
}

/// `fw_setenv [OPTIONS] [NAME [VALUE]]…` or `fw_setenv -s SCRIPT`. Returns the exit status.
pub fn fw_setenv_main(args: &[OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    run(true, args, out, err)
}

fn run(setenv: bool, argv: &[OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let prog = if setenv { "fw_setenv" } else { "fw_printenv" };
    let a = args::parse(prog, argv, err);
    match a.early_exit {
        Some(EarlyExit::Help) => return usage(prog, setenv, out),
        Some(EarlyExit::Version) => {
            let _ = writeln!(out, "0.3.2 (liminix-bootenv)");
            return 0;
        }
        None => {}
    }
    let cfg_path = a
        .config
        .clone()
        .unwrap_or_else(|| "/etc/fw_env.config".into());
    let mut store = match open_config(Path::new(&cfg_path), setenv) {
        Ok(s) => s,
        Err(code) => {
            let _ = writeln!(err, "Configuration file wrong or corrupted");
            return status(code);
        }
    };
    let _lock = lock();
    let mut list = VarList::default();
    let mut default_used = false;
    if !load(&mut store, &mut list) {
        let _ = writeln!(err, "Cannot read environment, using default");
        let def = a
            .defenv
            .clone()
            .unwrap_or_else(|| "/etc/u-boot-initial-env".into());
        if load_file(&mut list, &def).is_err() {
            let _ = writeln!(err, "Cannot read default environment from file");
            return status(EACCES);
        }
        default_used = true;
    }
    if setenv {
        set(&a, &mut store, &mut list, default_used, err)
    } else {
        print(&a.operands, a.no_header, &list, out);
        0
    }
}

fn usage(prog: &str, setenv: bool, out: &mut dyn Write) -> i32 {
    let _ = write!(
        out,
        "{prog} (liminix-bootenv)\nUsage {prog} [OPTION]\n \
         -h,                              : print this help\n \
         -c, --config <filename>          : configuration file (old fw_env.config)\n \
         -f, --defenv <filename>          : default environment if no one found\n \
         -V,                              : print version and exit\n"
    );
    let _ = if setenv {
        writeln!(
            out,
            " -s, --script <filename>          : read variables to be set from a script"
        )
    } else {
        writeln!(
            out,
            " -n, --no-header                  : do not print variable name"
        )
    };
    0
}

/// Config problems as libubootenv reports them: -EBADF unreadable, -EINVAL otherwise.
fn open_config(path: &Path, writable: bool) -> Result<EnvStore, i32> {
    let cfg = FwEnvConfig::load(path).map_err(|e| match e {
        EnvError::Io { .. } => EBADF,
        _ => EINVAL,
    })?;
    open_store(&cfg, writable)
        .map(|s| s.with_rule(SelectRule::LibUbootEnv))
        .map_err(|_| EINVAL)
}

/// `libuboot_open`: true when a valid copy was parsed completely.
fn load(store: &mut EnvStore, list: &mut VarList) -> bool {
    let Ok(snap) = store.snapshot() else {
        return false;
    };
    let Some(cur) = snap.current else {
        return false;
    };
    let hdr = store.layout().header_len();
    matches!(list.load_data(&snap.raw[cur][hdr..]), varlist::LoadEnd::Ok)
}

fn load_file(list: &mut VarList, path: &OsStr) -> std::io::Result<()> {
    if path.as_bytes() == b"-" {
        let stdin = std::io::stdin();
        return list.load_script(&mut stdin.lock());
    }
    let f = std::fs::File::open(path)?;
    list.load_script(&mut BufReader::new(f))
}

fn print(names: &[OsString], no_header: bool, list: &VarList, out: &mut dyn Write) {
    let mut line = Vec::new();
    if names.is_empty() {
        for v in &list.vars {
            line.extend_from_slice(&v.name);
            line.push(b'=');
            line.extend_from_slice(&v.value);
            line.push(b'\n');
        }
    }
    for n in names {
        let value = list.get(n.as_bytes()).unwrap_or(b"");
        if !no_header {
            line.extend_from_slice(n.as_bytes());
            line.push(b'=');
        }
        line.extend_from_slice(value);
        line.push(b'\n');
    }
    let _ = out.write_all(&line);
}

fn set(
    a: &args::Args,
    store: &mut EnvStore,
    list: &mut VarList,
    default_used: bool,
    err: &mut dyn Write,
) -> i32 {
    let mut need_store = false;
    if let Some(script) = &a.script {
        // libubootenv ignores a script it cannot read and stores anyway.
        let _ = load_file(list, script);
        need_store = true;
    } else {
        for pair in a.operands.chunks(2) {
            let name = pair[0].as_bytes();
            if name.contains(&b'=') {
                let _ = writeln!(
                    err,
                    "Error: illegal character '=' in variable name \"{}\"",
                    String::from_utf8_lossy(name)
                );
                return 1;
            }
            let old = list.get(name).map(<[u8]>::to_vec);
            match pair.get(1) {
                None if old.is_some() => {
                    let _ = list.set(name, None);
                    need_store = true;
                }
                None => {}
                Some(v) if old.as_deref() != Some(v.as_bytes()) => {
                    let _ = list.set(name, Some(v.as_bytes()));
                    need_store = true;
                }
                Some(_) => {}
            }
        }
    }
    if !(need_store || default_used) {
        return 0;
    }
    match store_list(store, list) {
        Ok(()) => 0,
        Err(code) => {
            let _ = writeln!(err, "Error storing the env");
            status(code)
        }
    }
}

fn store_list(store: &mut EnvStore, list: &VarList) -> Result<(), i32> {
    let data = list.store_data(store.layout().data_len()).ok_or(ENOMEM)?;
    let snap = store.snapshot().map_err(|_| EIO)?;
    store.save_data(&snap, &data).map(|_| ()).map_err(|_| EIO)
}

/// libubootenv's advisory lock; like it, carry on if the lock file cannot be made.
fn lock() -> Option<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open("/var/lock/fw_printenv.lock")
        .ok()?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).ok()?;
    Some(f)
}
