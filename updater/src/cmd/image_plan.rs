use std::path::PathBuf;

use clap::Args;
use liminix_agent::error::Result;
use liminix_agent::image_plan::{keep, plan, Plan};

use crate::cli::Global;

#[derive(Args)]
#[command(
    after_help = "Reads an image bundle from stdin and checks it as `apply` would (trusted signature, board,\n\
    images, epoch) without writing flash. Says whether a raw target is read by the running system\n\
    (then the images can only be written after `levitate`) and, if so, whether RAM holds the\n\
    bundle, its staged images, the maintenance root and 8 MiB: refused with exit 5 and the numbers\n\
    otherwise. Only the header is read, unless --keep is given. update.sh asks this first."
)]
pub struct ImagePlanArgs {
    /// The size of the whole bundle, for the RAM check (the header alone does not say it)
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub bundle_bytes: u64,
    /// Read the whole bundle, verify every image's size and sha256, and keep it in FILE
    /// (below /run, for `levitate --carry FILE`); nothing is left on failure
    #[arg(long, value_name = "FILE")]
    pub keep: Option<PathBuf>,
}

pub fn run(g: &Global, a: &ImagePlanArgs) -> Result<()> {
    let root = g.device()?;
    let stdin = &mut std::io::stdin().lock();
    let p = match &a.keep {
        Some(file) => keep(&root, stdin, &root.join(&file.to_string_lossy()))?,
        None => plan(&root, stdin, a.bundle_bytes)?,
    };
    if g.json {
        println!("{}", serde_json::to_string(&p).expect("plan serialises"));
    } else {
        print!("{}", render(&p));
    }
    Ok(())
}

fn render(p: &Plan) -> String {
    let mut s = format!(
        "bundle for {} (epoch {} -> {})\n",
        p.board, p.from_epoch, p.to_epoch
    );
    for i in &p.images {
        let used = i.in_use_by.as_deref().unwrap_or("not in use");
        s.push_str(&format!(
            "  {} -> {}: {} bytes; target {used}\n",
            i.image, i.target, i.bytes
        ));
    }
    match p.levitate {
        true => s.push_str(&format!(
            "must levitate: needs {} bytes of RAM, {} available, {} free in /run\n",
            p.needs.total(),
            p.mem_available,
            p.run_free
        )),
        false => s.push_str("can be applied from the running system\n"),
    }
    s
}
