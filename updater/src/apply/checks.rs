//! What `apply` checks before it reads a payload byte, besides what every bundle passes
//! ([`crate::verify`]): the board definition, the images against it, and the security epoch.
//!
//! Where the epoch lives: closure devices keep it with their generations
//! (`/persist/generations/epoch`); image devices record the highest epoch they applied in
//! `/persist/.liminix/image-epoch` when they have a persistent filesystem. A NOR board running a
//! squashfs image has none, so there the floor is `/etc/liminix/epoch`, written into the image by
//! the build (the running image's own epoch). The floor is the highest of the three.

use liminix_boards::Board;
use liminix_bundle::Manifest;

use super::error::ApplyError;
use crate::closure::generations::Generations;
use crate::error::{AgentError, Result};
use crate::root::DeviceRoot;
use crate::staging::write_atomic;

/// Every check an image bundle's header must pass before a target is opened: a trusted
/// signature, the device's board, every image known to it, the security epoch. `apply`, its
/// dry run and trial, and `image-plan` all start here.
pub fn check_header(root: &DeviceRoot, header: &liminix_bundle::stream::Header) -> Result<Board> {
    crate::verify::check_trust(root, header)?;
    let m = &header.manifest;
    let board = device_board(root, m)?;
    check_images(&board, m)?;
    check_epoch(root, m)?;
    Ok(board)
}

/// The device's board name must be the bundle's, and its board definition must exist and load.
pub fn device_board(root: &DeviceRoot, m: &Manifest) -> Result<Board> {
    crate::verify::check_board(root, m)?;
    Ok(liminix_boards::for_device(root.dir(), &m.board).map_err(ApplyError::from)?)
}

/// Every image of the bundle is an image of the board, packed for the same target.
pub fn check_images(board: &Board, m: &Manifest) -> Result<(), ApplyError> {
    if m.images.is_empty() {
        return Err(ApplyError::NoImages);
    }
    for i in &m.images {
        let device = board
            .manifest_target(&i.name)
            .ok_or_else(|| ApplyError::NotOnBoard {
                image: i.name.clone(),
                board: board.name.clone(),
            })?;
        if device != i.target {
            return Err(ApplyError::TargetMismatch {
                image: i.name.clone(),
                bundle: i.target.clone(),
                device,
            });
        }
    }
    Ok(())
}

fn read_number(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The highest security epoch this device has installed or runs.
pub fn highest_epoch(root: &DeviceRoot) -> Result<u64> {
    let generations = Generations::new(root).highest_epoch()?;
    Ok(generations
        .max(read_number(&root.image_epoch()))
        .max(read_number(&root.built_epoch())))
}

pub fn check_epoch(root: &DeviceRoot, m: &Manifest) -> Result<()> {
    let installed = highest_epoch(root)?;
    if m.epoch < installed {
        return Err(AgentError::Epoch {
            bundle: m.epoch,
            installed,
        });
    }
    Ok(())
}

/// Raises the image epoch record after a successful apply (only where `/persist` exists).
pub fn record_epoch(root: &DeviceRoot, epoch: u64) -> Result<()> {
    // Not `root.persist()`: that falls back to ROOT itself, which on a NOR board is the
    // read-only image.
    let path = root.image_epoch();
    if !root.has_persist() || epoch <= read_number(&path) {
        return Ok(());
    }
    let dir = path.parent().expect("has a parent");
    std::fs::create_dir_all(dir).map_err(AgentError::io("creating", dir))?;
    write_atomic(&path, format!("{epoch}\n").as_bytes())
}
