//! What every bundle must pass before a byte of its payload is read, whatever the strategy that
//! installs it: a signature by a trusted key, and the device's board name.

use liminix_bundle::sign;
use liminix_bundle::stream::Header;
use liminix_bundle::Manifest;

use crate::error::{AgentError, Result};
use crate::root::DeviceRoot;

/// The manifest must carry a signature by a key in the device's trusted keys.
pub fn check_trust(root: &DeviceRoot, h: &Header) -> Result<()> {
    let dir = root.trusted_keys();
    let trusted = sign::load_trusted_dir(&dir)?;
    if sign::trusted_signature(&h.manifest_bytes, &h.signatures, &trusted).is_some() {
        return Ok(());
    }
    let signers = if h.signatures.is_empty() {
        "nobody".to_owned()
    } else {
        h.signatures
            .iter()
            .map(|s| format!("key {}", &s.key[..16.min(s.key.len())]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(AgentError::Untrusted {
        signers,
        dir,
        trusted: trusted.len(),
    })
}

/// The device's `/etc/liminix/board` must name the bundle's board.
pub fn check_board(root: &DeviceRoot, m: &Manifest) -> Result<()> {
    let file = root.board_name();
    let device = std::fs::read_to_string(&file)
        .map_err(AgentError::io("reading the board name from", &file))?;
    let device = device.trim();
    if device != m.board {
        return Err(AgentError::WrongBoard {
            bundle: m.board.clone(),
            device: device.to_owned(),
            file,
        });
    }
    Ok(())
}
