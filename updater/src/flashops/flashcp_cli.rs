//! The agent answering as `flashcp`: mtd-utils 2.1.5's command line
//! (`flashcp [-v|--verbose] [-p|--partition] [-A|--erase-all] FILE DEVICE`,
//! `-h|--help`, `-V|--version`, bundled short flags, `--`), plus the agent's
//! `--journal DIR`. `-p` (only copy changed blocks) is what this writer always
//! does; other options are refused with a usage error.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use super::raw::{flashcp, RawRequest, RawSummary};
use super::recovery::error_chain;
use crate::error::exit;
use crate::root::DeviceRoot;

const HELP: &str = "\
usage: flashcp [ -v | --verbose | -A | --erase-all | -p | --partition ] <filename> <device>
       flashcp -h | --help
       flashcp -V | --version

liminix-agent's flashcp: compares each erase block with the flash and erases and
programs only the blocks that differ, skips bad blocks on NAND, reads the whole
image back and verifies it. Every write is journalled and resumed or checked by
the next run (or `liminix-agent recover`) after a crash; with no persistent
filesystem (agent levitated in RAM) the journal only covers agent crashes, not
power cuts.

   -h | --help       Show this help message
   -v | --verbose    Show progress reports
   -p | --partition  Only copy changed blocks (always the case here; accepted)
   -A | --erase-all  Also erase every block after the image
   -V | --version    Show version information and exit
   --journal DIR     Journal directory (default /persist/.liminix/journal,
                     or /run/liminix/flash-journal without /persist)
   <filename>        File which you want to copy to flash
   <device>          Flash device to write to (/dev/mtdN, mtdN or mtd:NAME)
";

/// Parsed `flashcp` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlashcpArgs {
    Help,
    Version,
    Copy {
        verbose: bool,
        erase_all: bool,
        journal: Option<PathBuf>,
        image: PathBuf,
        device: String,
    },
}

/// Parse like mtd-utils' getopt_long: flags may be bundled (`-vA`) and mixed
/// with the two operands; `--` ends the options.
pub fn parse(args: &[OsString]) -> Result<FlashcpArgs, String> {
    let (mut verbose, mut erase_all, mut journal) = (false, false, None);
    let mut operands = Vec::new();
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    let mut only_operands = false;
    while let Some(a) = it.next() {
        if only_operands || a == "-" || !a.starts_with('-') {
            operands.push(a);
            continue;
        }
        match a.as_str() {
            "--" => only_operands = true,
            "--help" => return Ok(FlashcpArgs::Help),
            "--version" => return Ok(FlashcpArgs::Version),
            "--verbose" => verbose = true,
            "--partition" => {}
            "--erase-all" => erase_all = true,
            "--journal" => journal = Some(it.next().ok_or("--journal needs a directory")?.into()),
            long if long.starts_with("--journal=") => journal = Some(long[10..].into()),
            long if long.starts_with("--") => return Err(format!("unsupported option {long}")),
            short => {
                for c in short[1..].chars() {
                    match c {
                        'h' => return Ok(FlashcpArgs::Help),
                        'V' => return Ok(FlashcpArgs::Version),
                        'v' => verbose = true,
                        'p' => {}
                        'A' => erase_all = true,
                        other => return Err(format!("unsupported option -{other}")),
                    }
                }
            }
        }
    }
    let [image, device]: [String; 2] = operands.try_into().map_err(|v: Vec<String>| {
        format!("need a file and a device, got {} operand(s)", v.len())
    })?;
    Ok(FlashcpArgs::Copy {
        verbose,
        erase_all,
        journal,
        image: image.into(),
        device,
    })
}

/// Entry point when the agent runs as `flashcp` (see [`crate::multicall`]).
pub fn flashcp_main(args: &[OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let (verbose, req) = match parse(args) {
        Ok(FlashcpArgs::Help) => {
            let _ = out.write_all(HELP.as_bytes());
            return exit::OK;
        }
        Ok(FlashcpArgs::Version) => {
            let _ = writeln!(
                out,
                "flashcp (liminix-agent {}; mtd-utils 2.1.5 options)",
                env!("CARGO_PKG_VERSION")
            );
            return exit::OK;
        }
        Ok(FlashcpArgs::Copy {
            verbose,
            erase_all,
            journal,
            image,
            device,
        }) => (
            verbose,
            RawRequest {
                image,
                device,
                erase_all,
                journal,
            },
        ),
        Err(msg) => {
            let _ = writeln!(err, "flashcp: {msg}\n\n{HELP}");
            return exit::USAGE;
        }
    };
    let mut progress = super::progress::reporter(verbose);
    let root = DeviceRoot::new("/");
    if let Some(w) = super::journal_dir::JournalLocation::locate(&root, req.journal.as_deref())
        .volatility_warning()
        .filter(|_| verbose)
    {
        let _ = writeln!(err, "flashcp: note: {w}");
    }
    match flashcp(&root, &req, progress.as_mut()) {
        Ok(s) => {
            drop(progress);
            if verbose {
                let _ = write_summary(&s, err);
            }
            exit::OK
        }
        Err(e) => {
            drop(progress);
            let _ = writeln!(err, "flashcp: error: {}", error_chain(&e));
            e.exit_code()
        }
    }
}

/// One human-readable paragraph about a raw write.
pub fn write_summary(s: &RawSummary, w: &mut dyn Write) -> std::io::Result<()> {
    for r in &s.recovered {
        writeln!(w, "{r}")?;
    }
    writeln!(
        w,
        "{}: {} bytes in {} blocks: {} rewritten, {} unchanged, {} bad skipped, {} retired, {} erased after the image; verified sha256 {}",
        s.device.display(),
        s.write.image_len,
        s.write.blocks,
        s.write.rewritten_blocks,
        s.write.unchanged_blocks,
        s.write.skipped_bad_blocks,
        s.write.retired_blocks.len(),
        s.erased_after_image,
        hex::encode(s.write.sha256)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<FlashcpArgs, String> {
        parse(&a.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn mtd_utils_flags() {
        let copy = |verbose, erase_all| FlashcpArgs::Copy {
            verbose,
            erase_all,
            journal: None,
            image: "img".into(),
            device: "/dev/mtd1".into(),
        };
        assert_eq!(p(&["img", "/dev/mtd1"]), Ok(copy(false, false)));
        assert_eq!(p(&["-v", "img", "/dev/mtd1"]), Ok(copy(true, false)));
        assert_eq!(
            p(&["img", "--verbose", "/dev/mtd1", "-p"]),
            Ok(copy(true, false))
        );
        assert_eq!(p(&["-vpA", "img", "/dev/mtd1"]), Ok(copy(true, true)));
        assert_eq!(
            p(&["--erase-all", "img", "/dev/mtd1"]),
            Ok(copy(false, true))
        );
        assert_eq!(p(&["-h"]), Ok(FlashcpArgs::Help));
        assert_eq!(p(&["-vh", "x"]), Ok(FlashcpArgs::Help));
        assert_eq!(p(&["--version"]), Ok(FlashcpArgs::Version));
        assert_eq!(
            p(&["--journal=/j", "--", "-img", "/dev/mtd1"]),
            Ok(FlashcpArgs::Copy {
                verbose: false,
                erase_all: false,
                journal: Some("/j".into()),
                image: "-img".into(),
                device: "/dev/mtd1".into()
            })
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(p(&["-x", "a", "b"]), Err("unsupported option -x".into()));
        assert_eq!(
            p(&["--fast", "a", "b"]),
            Err("unsupported option --fast".into())
        );
        assert!(p(&["a"]).unwrap_err().contains("1 operand"));
        assert!(p(&["a", "b", "c"]).is_err());
        assert!(p(&["a", "b", "--journal"]).is_err());
    }

    #[test]
    fn main_reports_usage_and_missing_image() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            flashcp_main(&["-q".into()], &mut out, &mut err),
            exit::USAGE
        );
        assert!(String::from_utf8_lossy(&err).contains("unsupported option -q"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            flashcp_main(&["--help".into()], &mut out, &mut err),
            exit::OK
        );
        assert!(String::from_utf8_lossy(&out).contains("--erase-all"));
    }
}
