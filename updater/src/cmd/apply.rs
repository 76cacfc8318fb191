use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use liminix_agent::apply::{apply, dry_run, ApplyOptions, ApplyReport, DryRunReport, RealDevices};
use liminix_agent::error::{AgentError, Result};
use liminix_agent::flashops::progress::reporter;

use crate::cli::Global;

#[derive(Args)]
#[command(
    after_help = "Checks the signature (ROOT/etc/liminix/trusted-keys), the board (ROOT/etc/liminix/board and\n\
    its board definition), the security epoch and every target's size before anything is written, then\n\
    stages each image (verified against the manifest's sha256) and writes it with the board's\n\
    strategy: raw partitions and UBI volumes as journalled transactions, A/B boards into the\n\
    slot that is not running. With --dry-run, the same checks, then each target is read and\n\
    compared with its image, and nothing is written. See docs/apply.md."
)]
pub struct ApplyArgs {
    /// Bundle file, or - for stdin
    pub bundle: PathBuf,
    /// Directory for the verified images (default: ROOT/run/liminix/staging)
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// Journal directory (default: ROOT/persist/.liminix/journal, or RAM without /persist)
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// Allow in-place UBI updates (old contents lost at once) when a swap does not fit
    #[arg(long)]
    pub in_place: bool,
    /// Reboot when done
    #[arg(long)]
    pub reboot: bool,
    /// Show progress
    #[arg(short, long)]
    pub verbose: bool,
    /// Check the bundle and say what would be written (which targets differ from their image),
    /// reading only its manifest; write, stage and journal nothing
    #[arg(long, conflicts_with_all = ["reboot", "in_place", "staging", "journal", "try_boot"])]
    pub dry_run: bool,
    /// NOR boards: boot the bundle's kernel and root from RAM first (kexec) and write the
    /// flash only when `mark-good` runs there (docs/try-boot.md)
    #[arg(long = "try", conflicts_with_all = ["in_place", "reboot", "staging", "journal"])]
    pub try_boot: bool,
    /// With --try: load the trial kernel and stop (`liminix-agent kexec` starts it)
    #[arg(long, requires = "try_boot")]
    pub no_switch: bool,
    /// With --try: the busybox the trial initramfs runs (default: ROOT/bin/busybox)
    #[arg(long, value_name = "FILE", requires = "try_boot")]
    pub busybox: Option<PathBuf>,
}

pub fn run(g: &Global, a: &ApplyArgs) -> Result<()> {
    let root = g.device()?;
    let opts = ApplyOptions {
        staging: a.staging.clone(),
        journal: a.journal.clone(),
        in_place: a.in_place,
        reboot: a.reboot,
    };
    let mut input: Box<dyn Read> = if a.bundle.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(&a.bundle).map_err(AgentError::io("opening", &a.bundle))?)
    };
    if a.dry_run {
        let mut devices = RealDevices::new(&root);
        let report = dry_run(&root, &mut input, &mut devices)?;
        print_dry_run(g, &report);
        return Ok(());
    }
    if a.try_boot {
        return try_boot(g, a, &root, input.as_mut());
    }
    let mut progress = reporter(a.verbose);
    let report = apply(&root, &mut input, &opts, progress.as_mut())?;
    drop(progress);
    print_report(g, &report);
    Ok(())
}

/// `--try`: everything `apply` checks, then the bundle's kernel from RAM; the flash is written
/// by `mark-good` in the trial system.
fn try_boot(
    g: &Global,
    a: &ApplyArgs,
    root: &liminix_agent::root::DeviceRoot,
    input: &mut dyn Read,
) -> Result<()> {
    let busybox = a
        .busybox
        .clone()
        .unwrap_or_else(|| root.join("/bin/busybox"));
    let tried = liminix_agent::trial::nor::load(root, input, &busybox)?;
    if g.json {
        let v = serde_json::json!({"trial": tried, "switched": !a.no_switch});
        println!("{v}");
    } else {
        let d = &tried.description;
        println!(
            "trial of {} (sha256 {}) loaded: {} kernel, root at offset {}, {} KiB initramfs, command line: {}",
            d.image, d.sha256, tried.kernel_format, tried.root_offset,
            tried.initramfs_bytes / 1024, tried.command_line
        );
        if !a.no_switch {
            println!("booting it now; `liminix-agent mark-good` there writes {}, a reset brings back the firmware on the flash", d.target);
        }
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    if a.no_switch {
        return Ok(());
    }
    liminix_agent::trial::nor::start(root, &tried)
}

fn print_report(g: &Global, r: &ApplyReport) {
    if g.json {
        println!("{}", serde_json::to_string_pretty(r).expect("serialises"));
        return;
    }
    for i in &r.images {
        let detail = match i.method {
            "raw" => format!(
                "{} blocks rewritten, {} unchanged",
                i.rewritten_blocks, i.unchanged_blocks
            ),
            _ => format!(
                "previous kept as {}",
                i.old_kept_as.as_deref().unwrap_or("-")
            ),
        };
        eprintln!(
            "{} -> {}: {} bytes written and verified ({}; {detail})",
            i.image, i.target, i.bytes, i.method
        );
    }
    if let Some(ab) = &r.ab {
        eprintln!(
            "slot {} written; the next boot tries it (running slot {})",
            ab.to, ab.from
        );
    }
    eprintln!(
        "applied bundle for {} (strategy {}, epoch {})",
        r.board, r.strategy, r.epoch
    );
}

fn print_dry_run(g: &Global, r: &DryRunReport) {
    if g.json {
        println!("{}", serde_json::to_string_pretty(r).expect("serialises"));
        return;
    }
    for i in &r.images {
        let now = match i.current {
            "same" => "already holds it",
            "differs" => "differs: would be written",
            _ => "would be written",
        };
        eprintln!("{} -> {}: {} bytes; {now}", i.image, i.target, i.bytes);
        if let Some(used) = &i.in_use {
            eprintln!("  {used}: levitate first (or update with update.sh, which does)");
        }
    }
    let verdict = if r.would_change {
        "would change the device"
    } else {
        "nothing to write"
    };
    eprintln!(
        "dry run: bundle for {} (strategy {}, epoch {}) verified; {verdict}",
        r.board, r.strategy, r.epoch
    );
}
