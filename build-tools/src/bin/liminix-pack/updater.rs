use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use liminix_build_tools::output;

use super::bundle::{inputs, pack, Common, ImageArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Output directory (gets bin/update.sh, bin/liminix-update, share/liminix/system.bundle)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// What an updater directory holds at its top: an earlier one may be replaced, nothing else.
const MADE: [&str; 2] = ["bin", "share"];

pub fn run(a: Args) -> super::Result {
    if a.common.toplevel.is_none() {
        return Err("update.sh installs a system closure: --toplevel is required".into());
    }
    let client = std::env::current_exe()?.with_file_name("liminix-update");
    if !client.exists() {
        return Err(format!(
            "{} not found next to liminix-pack: build both binaries of liminix-build-tools",
            client.display()
        )
        .into());
    }
    output::check_dir(&a.out, &inputs(&a.common, &ImageArgs::default())?, &MADE)?;
    output::write_dir(&a.out, |dir| build(&a, &client, dir))?;
    eprintln!("wrote {}", a.out.join("bin/update.sh").display());
    Ok(())
}

/// Fills `dir`, which becomes `--out` once everything is in it.
fn build(a: &Args, client: &Path, dir: &Path) -> super::Result {
    let top = a.common.toplevel.as_deref().unwrap_or_default();
    let bin = dir.join("bin");
    let share = dir.join("share/liminix");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&share)?;
    pack(
        &a.common,
        &ImageArgs::default(),
        &share.join("system.bundle"),
        &a.out.join("share/liminix/system.bundle"),
    )?;
    std::fs::copy(client, bin.join("liminix-update"))?;
    let script = format!(
        "#!/bin/sh\n\
         # Installs {top} (board {board}) on a Liminix device over ssh.\n\
         # Usage: update.sh [--fast|--no-reboot] [--root DIR] [--agent PATH] [--json] [--no-delta] [--store-root DIR] user@host\n\
         here=$(cd \"$(dirname \"$0\")\" && pwd)\n\
         exec \"$here/liminix-update\" --bundle \"$here/../share/liminix/system.bundle\" --store-root {root} \"$@\"\n",
        root = shell_quote(&a.common.store_root.to_string_lossy()),
        top = top,
        board = a.common.board
    );
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(bin.join("update.sh"))?;
    // The umask may have taken bits away; the script must be runnable by everyone.
    f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    f.write_all(script.as_bytes())?;
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
