use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::bundle::{pack, Common, ImageArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Output directory (gets bin/update.sh, bin/liminix-update, share/liminix/system.bundle)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(a: Args) -> super::Result {
    let bin = a.out.join("bin");
    let share = a.out.join("share/liminix");
    let Some(top) = a.common.toplevel.as_deref() else {
        return Err("update.sh installs a system closure: --toplevel is required".into());
    };
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&share)?;
    pack(
        &a.common,
        &ImageArgs::default(),
        &share.join("system.bundle"),
    )?;
    let client = std::env::current_exe()?.with_file_name("liminix-update");
    if !client.exists() {
        return Err(format!(
            "{} not found next to liminix-pack: build both binaries of liminix-build-tools",
            client.display()
        )
        .into());
    }
    std::fs::copy(&client, bin.join("liminix-update"))?;
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
    let path = bin.join("update.sh");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
