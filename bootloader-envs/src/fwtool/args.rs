//! Command-line parsing as GNU `getopt_long("Vc:f:s:nh")` does it for libubootenv's
//! tools: options may follow operands, `--` ends options, long options may be
//! abbreviated, and an unknown option is reported on stderr and then ignored.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

/// Parsed options and operands.
#[derive(Debug, Default)]
pub struct Args {
    pub config: Option<OsString>,
    pub defenv: Option<OsString>,
    pub script: Option<OsString>,
    pub no_header: bool,
    /// `-h` or `-V` seen first: print and exit 0 without touching the environment.
    pub early_exit: Option<EarlyExit>,
    pub operands: Vec<OsString>,
}

/// `-h` / `-V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyExit {
    Help,
    Version,
}

const LONG: &[(&str, char, bool)] = &[
    ("version", 'V', false),
    ("no-header", 'n', false),
    ("help", 'h', false),
    ("config", 'c', true),
    ("defenv", 'f', true),
    ("script", 's', true),
];

fn takes_arg(c: char) -> Option<bool> {
    match c {
        'c' | 'f' | 's' => Some(true),
        'V' | 'n' | 'h' => Some(false),
        _ => None,
    }
}

/// Parses `args` (without argv[0]); diagnostics go to `err` prefixed with `prog`.
pub fn parse(prog: &str, args: &[OsString], err: &mut dyn Write) -> Args {
    let mut out = Args::default();
    let mut i = 0;
    while i < args.len() && out.early_exit.is_none() {
        let a = args[i].as_bytes();
        i += 1;
        if a == b"--" {
            out.operands.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix(b"--") {
            long_opt(prog, long, args, &mut i, &mut out, err);
        } else if a.len() > 1 && a[0] == b'-' {
            short_opts(prog, &a[1..], args, &mut i, &mut out, err);
        } else {
            out.operands.push(args[i - 1].clone());
        }
    }
    out
}

fn long_opt(
    prog: &str,
    long: &[u8],
    args: &[OsString],
    i: &mut usize,
    out: &mut Args,
    err: &mut dyn Write,
) {
    let (name, inline) = match long.iter().position(|&b| b == b'=') {
        Some(p) => (&long[..p], Some(&long[p + 1..])),
        None => (long, None),
    };
    let exact = LONG.iter().find(|(n, ..)| n.as_bytes() == name);
    let matches: Vec<_> = LONG
        .iter()
        .filter(|(n, ..)| n.as_bytes().starts_with(name))
        .collect();
    let opt = match (exact, matches.as_slice()) {
        (Some(o), _) => o,
        (None, [o]) => *o,
        (None, []) => {
            let _ = writeln!(
                err,
                "{prog}: unrecognized option '--{}'",
                String::from_utf8_lossy(name)
            );
            return;
        }
        (None, _) => {
            let _ = writeln!(
                err,
                "{prog}: option '--{}' is ambiguous",
                String::from_utf8_lossy(name)
            );
            return;
        }
    };
    let (_, c, has_arg) = *opt;
    let value = if !has_arg {
        if inline.is_some() {
            let _ = writeln!(
                err,
                "{prog}: option '--{}' doesn't allow an argument",
                opt.0
            );
            return;
        }
        None
    } else if let Some(v) = inline {
        Some(OsStr::from_bytes(v).to_owned())
    } else if *i < args.len() {
        *i += 1;
        Some(args[*i - 1].clone())
    } else {
        let _ = writeln!(err, "{prog}: option '--{}' requires an argument", opt.0);
        return;
    };
    apply(c, value, out);
}

fn short_opts(
    prog: &str,
    cluster: &[u8],
    args: &[OsString],
    i: &mut usize,
    out: &mut Args,
    err: &mut dyn Write,
) {
    for (k, &b) in cluster.iter().enumerate() {
        let c = b as char;
        match takes_arg(c) {
            None => {
                let _ = writeln!(err, "{prog}: invalid option -- '{c}'");
            }
            Some(false) => apply(c, None, out),
            Some(true) => {
                let rest = &cluster[k + 1..];
                if !rest.is_empty() {
                    apply(c, Some(OsStr::from_bytes(rest).to_owned()), out);
                } else if *i < args.len() {
                    *i += 1;
                    apply(c, Some(args[*i - 1].clone()), out);
                } else {
                    let _ = writeln!(err, "{prog}: option requires an argument -- '{c}'");
                }
                return;
            }
        }
        if out.early_exit.is_some() {
            return;
        }
    }
}

fn apply(c: char, value: Option<OsString>, out: &mut Args) {
    match c {
        'c' => out.config = value,
        'f' => out.defenv = value,
        's' => out.script = value,
        'n' => out.no_header = true,
        'h' => out.early_exit = Some(EarlyExit::Help),
        'V' => out.early_exit = Some(EarlyExit::Version),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> (Args, String) {
        let v: Vec<OsString> = a.iter().map(OsString::from).collect();
        let mut e = Vec::new();
        let r = parse("fw_setenv", &v, &mut e);
        (r, String::from_utf8(e).unwrap())
    }

    #[test]
    fn permutes_clusters_and_abbreviates() {
        let (a, e) = p(&["foo", "-ccfg", "bar", "--scr=s.txt", "-n", "--", "-x"]);
        assert_eq!(a.config.as_deref(), Some(OsStr::new("cfg")));
        assert_eq!(a.script.as_deref(), Some(OsStr::new("s.txt")));
        assert!(a.no_header);
        assert_eq!(a.operands, vec!["foo", "bar", "-x"]);
        assert!(e.is_empty());
        let (a, e) = p(&["-x", "--config", "c", "-"]);
        assert_eq!(e, "fw_setenv: invalid option -- 'x'\n");
        assert_eq!(a.operands, vec!["-"]);
        let (a, _) = p(&["-h", "-c"]);
        assert_eq!(a.early_exit, Some(EarlyExit::Help));
    }
}
