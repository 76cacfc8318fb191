//! `ab_apply`: runs the A/B strategy's `apply` on this device with images given on the
//! command line, for the QEMU tests (the agent's `apply` command, which unpacks bundles,
//! calls the same `liminix_agent::ab::install`). The slot layout is the device's: its
//! `/etc/liminix/ab.json`, else derived from the board definition of the board name in `/etc/liminix/board`.
//!
//! Usage: `ab_apply [--root DIR] [--reboot] BUNDLE_BOARD kernel=PATH:SHA256 [rootfs=PATH:SHA256]`

use std::path::PathBuf;
use std::process::ExitCode;

use liminix_agent::ab::{self, ImageRole, InstallOptions, StagedImage};
use liminix_agent::root::DeviceRoot;

fn parse_image(arg: &str) -> Result<StagedImage, String> {
    let (role, rest) = arg.split_once('=').ok_or("expected ROLE=PATH:SHA256")?;
    let role = match role {
        "kernel" => ImageRole::Kernel,
        "rootfs" => ImageRole::Rootfs,
        other => return Err(format!("unknown image role {other}")),
    };
    let (path, sha) = rest.rsplit_once(':').ok_or("expected PATH:SHA256")?;
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(sha, &mut sha256).map_err(|e| format!("sha256: {e}"))?;
    Ok(StagedImage {
        role,
        path: PathBuf::from(path),
        sha256,
    })
}

fn run() -> Result<String, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut root = PathBuf::from("/");
    if let Some(i) = args.iter().position(|a| a == "--root") {
        root = PathBuf::from(args.get(i + 1).ok_or("--root needs a value")?);
        args.drain(i..i + 2);
    }
    let reboot = args.iter().any(|a| a == "--reboot");
    args.retain(|a| a != "--reboot");
    let (board_name, images) = args.split_first().ok_or("usage: ab_apply BOARD IMAGE...")?;
    let images = images
        .iter()
        .map(|a| parse_image(a))
        .collect::<Result<Vec<_>, _>>()?;
    let root = DeviceRoot::new(root);
    let board = ab::load_slot_layout(&root)
        .map_err(|e| e.to_string())?
        .ok_or("no A/B board description")?;
    let opts = InstallOptions {
        bundle_board: board_name.clone(),
        reboot,
    };
    // The kind first, as the agent's wire error carries it, so tests match on it.
    let r =
        ab::install(&root, &board, &images, &opts).map_err(|e| format!("[{}] {e}", e.kind()))?;
    Ok(serde_json::to_string(&r).expect("report serialises"))
}

fn main() -> ExitCode {
    match run() {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ab_apply: {e}");
            ExitCode::FAILURE
        }
    }
}
