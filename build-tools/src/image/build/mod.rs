//! `liminix-pack image`: every `[[output]]` a board declares, made from a kernel, an optional
//! DTB and a root (system configuration, directory or ready image) into one directory, one
//! folder per output (`docs/images.md`). The root tree is staged once, the `/boot` outputs
//! (extlinux, fit-boot) add their files to it, then each filesystem image an output needs is
//! made once and shared. Every image is checked against the partition or volume it is for.

pub(crate) mod ext4;
mod flash;
pub mod inspect;
pub mod kernel;
mod outputs;
pub mod root;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use liminix_boards::{Board, Boot, Output, RootFs};

pub use outputs::{file_infos, FileInfo};
pub use root::RootSource;

/// Everything an image build reads.
pub struct Request<'a> {
    pub board: &'a Board,
    /// `--kernel`: a vmlinux ELF, or the zImage/Image as built.
    pub kernel: &'a [u8],
    pub dtb: Option<&'a [u8]>,
    pub root: RootSource,
    /// `--command-line`: replaces the board's own arguments (root= and the rest stay).
    pub command_line: Option<&'a str>,
    /// The addresses the U-Boot scripts set before fetching (`None`: U-Boot's environment).
    pub tftp: crate::image::commands::Tftp,
    /// Header timestamps and filesystem times (`image::timestamp`).
    pub time: u32,
    /// Told about each long step, for the user.
    pub progress: &'a dyn Fn(&str),
}

/// What a build wrote.
#[derive(Debug, Default)]
pub struct Built {
    /// Image name of the board's `[[image]]` list → the file made for it (for `--bundle`).
    pub bundle_images: BTreeMap<String, PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Input(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{output}: {what} is {size} bytes but {place} holds {limit} bytes ({} bytes too many)",
        size - limit
    )]
    TooBig {
        output: &'static str,
        what: String,
        size: u64,
        place: String,
        limit: u64,
    },
    #[error("kernel: {0}")]
    Elf(#[from] crate::image::elf::ElfError),
    #[error("{0}")]
    Image(#[from] crate::image::ImageError),
    #[error("DTB: {0}")]
    Dtb(#[from] super::dtb::DtbError),
    #[error("root squashfs: {0}")]
    Squashfs(#[from] crate::image::squashfs::SquashfsError),
    #[error("{0}")]
    Ubifs(#[from] crate::image::ubifs::UbifsError),
    #[error("ubivolume: {0}")]
    Ubi(#[from] liminix_ubi::image::ImageError),
    #[error("mbrimage: {0}")]
    Mbr(#[from] crate::image::mbr::MbrError),
    #[error("{0}")]
    Tftpboot(#[from] crate::image::tftpboot::TftpbootError),
    #[error("{0}")]
    BootFiles(#[from] crate::image::bootfiles::BootFilesError),
    #[error("{0}")]
    Zyxel(#[from] crate::image::zyxel::ZyxelError),
    #[error("root closure: {0}")]
    Closure(#[from] crate::closure::ClosureError),
    #[error("ext4 root: {0}")]
    Ext4(String),
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Refuses `size` bytes for a place of `limit` bytes, with the numbers.
pub(crate) fn fits(
    output: &'static str,
    what: &str,
    size: u64,
    place: String,
    limit: u64,
) -> Result<(), BuildError> {
    match size <= limit {
        true => Ok(()),
        false => Err(BuildError::TooBig {
            output,
            what: what.to_owned(),
            size,
            place,
            limit,
        }),
    }
}

/// The state one build shares between outputs.
pub(crate) struct Ctx<'a> {
    pub req: &'a Request<'a>,
    pub boot: &'a Boot,
    pub command_line: String,
    pub kernel: kernel::Kernel,
    /// The board's DTB with the command line in `/chosen`.
    pub dtb: Option<Vec<u8>>,
    /// Where scratch files go (removed at the end).
    pub work: PathBuf,
    /// The staged root tree, when the root is not a ready image.
    pub tree: Option<PathBuf>,
    /// Filesystem images made so far, by type.
    pub images: BTreeMap<&'static str, PathBuf>,
    pub built: Built,
}

/// Writes every output of the board into `dir` (an existing, empty directory).
pub fn build(req: &Request, dir: &Path) -> Result<Built, BuildError> {
    let board = req.board;
    let boot = board.boot.as_ref().ok_or_else(|| {
        BuildError::Input(format!(
            "board {} has no [boot] section, so no image outputs",
            board.name
        ))
    })?;
    if board.outputs.is_empty() {
        return Err(BuildError::Input(format!(
            "board {} declares no [[output]]",
            board.name
        )));
    }
    let mut own = boot.clone();
    if let Some(c) = req.command_line {
        own.command_line = c.to_owned();
    }
    let command_line = own.full_command_line();
    let dtb = req
        .dtb
        .map(|d| kernel::dtb_with_command_line(d, boot, &command_line))
        .transpose()?;
    (req.progress)("kernel");
    let kernel = kernel::make(board.cpu, boot, req.kernel, dtb.as_deref(), req.time)?;
    let work = dir.join(".work");
    std::fs::create_dir(&work).map_err(io_err("creating", &work))?;
    let mut ctx = Ctx {
        req,
        boot,
        command_line,
        kernel,
        dtb,
        work: work.clone(),
        tree: None,
        images: BTreeMap::new(),
        built: Built::default(),
    };
    let result = run(&mut ctx, dir);
    let _ = liminix_bundle::nar::remove_tree(&work);
    result.map(|()| ctx.built)
}

fn run(ctx: &mut Ctx, dir: &Path) -> Result<(), BuildError> {
    let board = ctx.req.board;
    if !matches!(ctx.req.root, RootSource::Image { .. }) {
        let tree = ctx.work.join("root");
        (ctx.req.progress)("staging the root tree");
        root::stage(&ctx.req.root, &tree)?;
        ctx.tree = Some(tree);
    }
    for o in board.outputs.iter().filter(|o| o.is_boot_files()) {
        outputs::boot_files(ctx, o)?;
    }
    for o in board.outputs.iter().filter(|o| !o.is_boot_files()) {
        (ctx.req.progress)(o.name());
        let folder = dir.join(o.name());
        std::fs::create_dir(&folder).map_err(io_err("creating", &folder))?;
        outputs::write(ctx, o, &folder)?;
    }
    Ok(())
}

/// The root as a filesystem image of type `fs`, made once per build.
pub(crate) fn root_image(ctx: &mut Ctx, fs: RootFs) -> Result<PathBuf, BuildError> {
    if let RootSource::Image { path, fs: have } = &ctx.req.root {
        return match *have == fs {
            true => Ok(path.clone()),
            false => Err(BuildError::Input(format!(
                "--root {} is a {} image but this output needs {}",
                path.display(),
                have.as_str(),
                fs.as_str()
            ))),
        };
    }
    if let Some(p) = ctx.images.get(fs.as_str()) {
        return Ok(p.clone());
    }
    let tree = ctx
        .tree
        .clone()
        .ok_or_else(|| BuildError::Input("no staged root tree".into()))?;
    let out = ctx.work.join(format!("root.{}", fs.as_str()));
    (ctx.req.progress)(&format!("making the {} root image", fs.as_str()));
    outputs::make_fs(ctx, fs, &tree, &out)?;
    ctx.images.insert(fs.as_str(), out.clone());
    Ok(out)
}

/// The output of `board` of the given kind, if it declares one.
pub fn output<'b>(board: &'b Board, name: &str) -> Option<&'b Output> {
    board.outputs.iter().find(|o| o.name() == name)
}
