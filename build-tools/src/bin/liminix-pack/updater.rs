use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use liminix_build_tools::agents;
use liminix_build_tools::liminix_boards::{self, Cpu};
use liminix_build_tools::output;

use super::bundle::{inputs, pack, Common, ImageArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Output directory (gets bin/update.sh, bin/liminix-update, share/liminix/system.bundle,
    /// share/liminix/agents/<triple>/liminix-agent)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Agents to carry for devices without a fitting one: `all`, or CPU names separated by
    /// commas (x86_64, aarch64, armv7, mipsel, mips); default: the board file's cpu, or all
    /// when --board has no board file
    #[arg(long, value_name = "CPUS")]
    agents: Option<String>,
    /// Where the agents are: DIR/<triple>/liminix-agent, as `scripts/build-agents.sh` leaves
    /// them; default: `agents` next to the directory of liminix-pack (target/agents when both
    /// come from the same target directory)
    #[arg(long, value_name = "DIR")]
    agents_dir: Option<PathBuf>,
}

/// The CPUs whose agents the output carries.
fn chosen_cpus(a: &Args) -> Result<Vec<Cpu>, Box<dyn std::error::Error>> {
    if let Some(spec) = &a.agents {
        return Ok(agents::parse_cpus(spec)?);
    }
    match liminix_boards::builtin(&a.common.board) {
        Ok(board) => Ok(board.cpu.map_or_else(|| Cpu::ALL.to_vec(), |c| vec![c])),
        Err(liminix_boards::BoardError::Unknown(_)) => Ok(Cpu::ALL.to_vec()),
        Err(e) => Err(e.into()),
    }
}

fn default_agents_dir() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().unwrap_or(Path::new("."));
    Ok(bin_dir.parent().unwrap_or(bin_dir).join("agents"))
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
    let cpus = chosen_cpus(&a)?;
    let agents_dir = match &a.agents_dir {
        Some(d) => d.clone(),
        None => default_agents_dir()?,
    };
    output::check_dir(&a.out, &inputs(&a.common, &ImageArgs::default())?, &MADE)?;
    let mut carried = Vec::new();
    output::write_dir(&a.out, |dir| {
        carried = build(&a, &client, &agents_dir, &cpus, dir)?;
        Ok(())
    })?;
    let names: Vec<&str> = carried.iter().map(|c| c.cpu.name()).collect();
    eprintln!(
        "wrote {} (agents: {})",
        a.out.join("bin/update.sh").display(),
        names.join(", ")
    );
    Ok(())
}

/// Fills `dir`, which becomes `--out` once everything is in it.
fn build(
    a: &Args,
    client: &Path,
    agents_dir: &Path,
    cpus: &[Cpu],
    dir: &Path,
) -> Result<Vec<agents::Carried>, Box<dyn std::error::Error>> {
    let top = a.common.toplevel.as_deref().unwrap_or_default();
    let bin = dir.join("bin");
    let share = dir.join("share/liminix");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&share)?;
    // First, so that a missing agent stops the packer before it spends time on the bundle.
    let carried = agents::install(agents_dir, &share.join("agents"), cpus)?;
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
         exec \"$here/liminix-update\" --bundle \"$here/../share/liminix/system.bundle\" --agents-dir \"$here/../share/liminix/agents\" --store-root {root} \"$@\"\n",
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
    Ok(carried)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
