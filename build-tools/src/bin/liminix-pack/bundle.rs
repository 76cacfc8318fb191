use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::ProgressBar;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Output bundle file
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Options shared by `bundle` and `updater`.
#[derive(clap::Args)]
pub struct Common {
    /// The system configuration store path (nix-build -A outputs.systemConfiguration)
    #[arg(long, value_name = "STOREPATH")]
    pub toplevel: String,
    /// Directory holding nix/store
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub store_root: PathBuf,
    /// Secret key file from `liminix-pack keygen`
    #[arg(long, value_name = "SECRET")]
    pub key: PathBuf,
    /// Board name, as in the device's /etc/liminix/board
    #[arg(long, value_name = "NAME")]
    pub board: String,
    /// Security epoch: devices refuse bundles with a lower epoch than they installed
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub epoch: u64,
    /// zstd compression level of the payload
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: i32,
}

/// Build time: SOURCE_DATE_EPOCH for reproducible builds, else now.
pub fn build_time() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
}

pub fn pack(c: &Common, out: &std::path::Path) -> super::Result {
    let key = SecretKey::load(&c.key)?;
    let opts = PackOptions {
        store_root: &c.store_root,
        toplevel: &c.toplevel,
        board: &c.board,
        epoch: c.epoch,
        build_time: build_time(),
        level: c.level,
    };
    let bar = std::io::stderr().is_terminal().then(|| ProgressBar::new(0));
    let progress = |done: usize, total: usize| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    };
    let m = write_bundle(&opts, &key, out, &progress)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let size = std::fs::metadata(out)?.len();
    eprintln!(
        "{}: {} store paths, {} bytes of NAR, {} bytes bundled",
        out.display(),
        m.paths.len(),
        m.total_nar_size(),
        size
    );
    Ok(())
}

pub fn run(a: Args) -> super::Result {
    pack(&a.common, &a.out)
}
