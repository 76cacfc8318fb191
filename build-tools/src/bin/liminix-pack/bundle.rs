use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use liminix_build_tools::closure::{closure, host_path};
use liminix_build_tools::images::ImageInput;
use liminix_build_tools::output::{self, Inputs};
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Output bundle file
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    pub images: ImageArgs,
}

/// Flash images for image boards.
#[derive(clap::Args, Default)]
pub struct ImageArgs {
    /// A flash image: NAME is an image of the board definition, which decides its target (repeatable)
    #[arg(long = "image", value_name = "NAME=FILE")]
    pub images: Vec<ImageInput>,
    /// Board definition (a board.toml) to use instead of the built-in one for --board
    #[arg(long, value_name = "FILE")]
    pub board_file: Option<PathBuf>,
    /// Store images uncompressed
    #[arg(long)]
    pub raw_images: bool,
    /// What the device holds now at image NAME's target (its current firmware partition, UBI
    /// volume; on A/B boards image NAME of the slot it runs): the image is sent as a patch
    /// against it (repeatable)
    #[arg(long = "delta-base", value_name = "NAME=FILE")]
    pub delta_bases: Vec<ImageInput>,
}

impl ImageArgs {
    /// The images, each with its `--delta-base` if one names it; a base for an image that is
    /// not given is an error.
    pub fn with_bases(&self) -> Result<Vec<ImageInput>, String> {
        if let Some(b) = self
            .delta_bases
            .iter()
            .find(|b| !self.images.iter().any(|i| i.name == b.name))
        {
            return Err(format!(
                "--delta-base {}: no --image {} to patch",
                b.name, b.name
            ));
        }
        Ok(self
            .images
            .iter()
            .map(|i| ImageInput {
                base: self
                    .delta_bases
                    .iter()
                    .find(|b| b.name == i.name)
                    .map(|b| b.file.clone()),
                ..i.clone()
            })
            .collect())
    }
}

/// Options shared by `bundle` and `updater`.
#[derive(clap::Args)]
pub struct Common {
    /// The system configuration store path (nix-build -A outputs.systemConfiguration); `bundle`
    /// needs it unless it is given images, `updater` always needs it
    #[arg(long, value_name = "STOREPATH")]
    pub toplevel: Option<String>,
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
    /// zstd compression level (1-22) of the store paths and, unless --raw-images, the images
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

/// Everything a bundle is made from: its output must be none of it.
pub fn inputs(
    c: &Common,
    img: &ImageArgs,
) -> std::result::Result<Inputs, Box<dyn std::error::Error>> {
    let mut inputs = Inputs::default();
    inputs.file(&c.key);
    if let Some(f) = &img.board_file {
        inputs.file(f);
    }
    for i in &img.images {
        inputs.file(&i.file);
    }
    if let Some(t) = &c.toplevel {
        for p in closure(&c.store_root, t)? {
            inputs.tree(&host_path(&c.store_root, &p));
        }
    }
    Ok(inputs)
}

/// Writes the bundle to `out`; `shown` is the name the summary gives it.
pub fn pack(c: &Common, img: &ImageArgs, out: &Path, shown: &Path) -> super::Result {
    let key = SecretKey::load(&c.key)?;
    if c.toplevel.is_none() && img.images.is_empty() {
        return Err("give --toplevel, --image NAME=FILE, or both".into());
    }
    output::check_file(out, &inputs(c, img)?)?;
    let board_def = match (&img.board_file, img.images.is_empty()) {
        (_, true) => None,
        (Some(f), false) => Some(liminix_boards::load_file(f)?),
        (None, false) => Some(liminix_boards::builtin(&c.board)?),
    };
    if let Some(b) = &board_def {
        if b.name != c.board {
            return Err(format!(
                "board definition describes {:?}, not --board {:?}",
                b.name, c.board
            )
            .into());
        }
    }
    let images = img.with_bases()?;
    let opts = PackOptions {
        store_root: &c.store_root,
        toplevel: c.toplevel.as_deref(),
        board: &c.board,
        epoch: c.epoch,
        build_time: build_time(),
        level: c.level,
        images: &images,
        board_def: board_def.as_ref(),
        raw_images: img.raw_images,
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
        "{}: {} store paths, {} bytes of NAR, {} images of {} bytes, {} bytes bundled",
        shown.display(),
        m.paths.len(),
        m.total_nar_size(),
        m.images.len(),
        m.total_image_size(),
        size
    );
    Ok(())
}

pub fn run(a: Args) -> super::Result {
    pack(&a.common, &a.images, &a.out, &a.out)
}
