use std::path::{Path, PathBuf};

use liminix_build_tools::image::build::{self, file_infos, Request, RootSource};
use liminix_build_tools::image::commands::Tftp;
use liminix_build_tools::images::ImageInput;
use liminix_build_tools::liminix_boards::{self, Board};
use liminix_build_tools::output::{self, Inputs};
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;

#[derive(clap::Args)]
pub struct Args {
    /// A built-in board
    #[arg(long, value_name = "NAME", required_unless_present = "board_file")]
    board: Option<String>,
    /// A board definition file instead of a built-in board
    #[arg(long, value_name = "FILE", conflicts_with = "board")]
    board_file: Option<PathBuf>,
    /// The kernel: vmlinux (ELF) for uImage and FIT boards, the zImage or Image for the others
    #[arg(long, value_name = "FILE")]
    kernel: PathBuf,
    /// The board's device tree blob (FIT kernels, tftpboot, extlinux)
    #[arg(long, value_name = "FILE")]
    dtb: Option<PathBuf>,
    /// The root: a system configuration store path, a directory, or a squashfs/UBIFS image
    #[arg(long, value_name = "PATH")]
    root: PathBuf,
    /// Directory holding nix/store, when --root is a store path
    #[arg(long, value_name = "DIR", default_value = "/")]
    store_root: PathBuf,
    /// Output directory: one folder per output of the board (replaced whole)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The board's own kernel arguments instead of its [boot] command_line (root= stays)
    #[arg(long, value_name = "ARGS")]
    command_line: Option<String>,
    /// The TFTP server the U-Boot scripts (flash.scr, boot.scr) fetch from; default: U-Boot's serverip
    #[arg(long, value_name = "IP")]
    serverip: Option<String>,
    /// The board's address for the U-Boot scripts; default: U-Boot's ipaddr
    #[arg(long, value_name = "IP")]
    ipaddr: Option<String>,
    /// Also write DIR/bundle, a signed bundle of the images the board's [[image]] list names
    #[arg(long, requires = "key")]
    bundle: bool,
    /// Secret key file for --bundle
    #[arg(long, value_name = "SECRET")]
    key: Option<PathBuf>,
    /// Security epoch of the bundle
    #[arg(long, value_name = "N", default_value_t = 0)]
    epoch: u64,
    /// For --bundle: what the device holds now at image NAME's target; that image goes into the
    /// bundle as a patch against it (repeatable)
    #[arg(long = "delta-base", value_name = "NAME=FILE", requires = "bundle")]
    delta_bases: Vec<ImageInput>,
    /// Print a JSON summary (outputs, files, sizes, sha256) on stdout
    #[arg(long)]
    json: bool,
}

fn board(a: &Args) -> Result<Board, Box<dyn std::error::Error>> {
    Ok(match (&a.board_file, &a.board) {
        (Some(f), _) => liminix_boards::load_file(f)?,
        (None, Some(name)) => liminix_boards::builtin(name)?,
        (None, None) => return Err("give --board or --board-file".into()),
    })
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    std::fs::read(path).map_err(|e| format!("reading {what} {}: {e}", path.display()).into())
}

/// Everything the build reads: the output directory must hold none of it.
fn inputs(a: &Args, root: &RootSource) -> Result<Inputs, Box<dyn std::error::Error>> {
    let mut i = Inputs::default();
    i.file(&a.kernel);
    for f in [&a.dtb, &a.key, &a.board_file].into_iter().flatten() {
        i.file(f);
    }
    match root {
        RootSource::Tree(d) => i.tree(d),
        RootSource::Image { path, .. } => i.file(path),
        RootSource::Toplevel {
            toplevel,
            store_root,
        } => {
            for p in liminix_build_tools::closure::closure(store_root, toplevel)? {
                i.tree(&liminix_build_tools::closure::host_path(store_root, &p));
            }
        }
    }
    Ok(i)
}

pub fn run(a: Args) -> super::Result {
    let board = board(&a)?;
    let kernel = read(&a.kernel, "the kernel")?;
    let dtb = a.dtb.as_deref().map(|d| read(d, "the DTB")).transpose()?;
    let root = RootSource::detect(&a.root, &a.store_root)?;
    let mut known: Vec<&str> = board.outputs.iter().map(|o| o.name()).collect();
    known.push("bundle");
    output::check_dir(&a.out, &inputs(&a, &root)?, &known)?;
    let key = a.key.as_deref().map(SecretKey::load).transpose()?;
    let time = liminix_build_tools::image::timestamp()?;
    let progress = |step: &str| eprintln!("liminix-pack image: {}: {step}", board.name);
    let toplevel = match &root {
        RootSource::Toplevel { toplevel, .. } => Some(toplevel.clone()),
        _ => None,
    };
    let req = Request {
        board: &board,
        kernel: &kernel,
        dtb: dtb.as_deref(),
        root,
        command_line: a.command_line.as_deref(),
        tftp: Tftp {
            serverip: a.serverip.clone(),
            ipaddr: a.ipaddr.clone(),
        },
        time,
        progress: &progress,
    };
    output::write_dir(&a.out, |dir| {
        let built = build::build(&req, dir)?;
        if let (true, Some(key)) = (a.bundle, &key) {
            progress("bundle");
            bundle(
                &a,
                &board,
                &built,
                toplevel.as_deref(),
                key,
                dir,
                u64::from(time),
            )?;
        }
        Ok(())
    })?;
    summary(&a, &board)
}

fn bundle(
    a: &Args,
    board: &Board,
    built: &build::Built,
    toplevel: Option<&str>,
    key: &SecretKey,
    dir: &Path,
    time: u64,
) -> super::Result {
    let mut images = Vec::new();
    for i in &board.images {
        let file = built.bundle_images.get(&i.name).ok_or_else(|| {
            format!(
                "--bundle: no output of board {} makes its image {:?}",
                board.name, i.name
            )
        })?;
        let base = a.delta_bases.iter().find(|b| b.name == i.name);
        images.push(ImageInput {
            name: i.name.clone(),
            file: file.clone(),
            base: base.map(|b| b.file.clone()),
        });
    }
    if let Some(b) = a
        .delta_bases
        .iter()
        .find(|b| !images.iter().any(|i| i.name == b.name))
    {
        return Err(format!(
            "--delta-base {}: the bundle has no image {}",
            b.name, b.name
        )
        .into());
    }
    // A board without images is updated by closure: its bundle carries the system
    // configuration the root was made from.
    let toplevel = match images.is_empty() {
        true => Some(toplevel.ok_or(
            "--bundle: this board takes closure updates only, so --root must be a system configuration",
        )?),
        false => None,
    };
    let opts = PackOptions {
        store_root: &a.store_root,
        toplevel,
        board: &board.name,
        epoch: a.epoch,
        build_time: time,
        level: 19,
        images: &images,
        board_def: Some(board),
        raw_images: false,
    };
    write_bundle(&opts, key, &dir.join("bundle"), &|_, _| {})?;
    Ok(())
}

fn summary(a: &Args, board: &Board) -> super::Result {
    let files = file_infos(&a.out)?;
    if !a.json {
        for f in &files {
            eprintln!("{:>12}  {}  {}", f.size, &f.sha256[..16], f.path);
        }
        return Ok(());
    }
    let mut outputs = Vec::new();
    for name in board.outputs.iter().map(|o| o.name()).chain(["bundle"]) {
        let of: Vec<_> = files
            .iter()
            .filter(|f| f.path == name || f.path.starts_with(&format!("{name}/")))
            .collect();
        if !of.is_empty() {
            outputs.push(serde_json::json!({"name": name, "files": of}));
        }
    }
    let s = serde_json::json!({"board": board.name, "out": a.out, "outputs": outputs});
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(())
}
