//! What every bundle must pass before a byte of its payload is read, whatever the strategy that
//! installs it: a signature by a trusted key, and the device's board name.

use liminix_bundle::sign::{self, Rejection};
use liminix_bundle::stream::Header;
use liminix_bundle::Manifest;

use crate::error::{AgentError, Result};
use crate::root::DeviceRoot;

/// The manifest must carry a signature by a key in the device's trusted keys.
pub fn check_trust(root: &DeviceRoot, h: &Header) -> Result<()> {
    let dir = root.trusted_keys();
    let trusted = sign::load_trusted_dir(&dir)?;
    for damaged in &trusted.damaged {
        eprintln!(
            "liminix-agent: warning: {}; the file is ignored",
            liminix_bundle::wire::one_line(damaged)
        );
    }
    let keys = &trusted.keys;
    match sign::check_signatures(&h.manifest_bytes, &h.signatures, keys) {
        Ok(_) => Ok(()),
        Err(Rejection::Invalid { key }) => Err(AgentError::BadSignature {
            key: short_key(&key).to_owned(),
        }),
        Err(Rejection::UnknownKeys) => Err(AgentError::Untrusted {
            signers: signers(h),
            dir,
            trusted: keys.len(),
        }),
    }
}

/// The keys that signed, as people compare them (the first 16 hex digits).
fn signers(h: &Header) -> String {
    if h.signatures.is_empty() {
        return "nobody".to_owned();
    }
    h.signatures
        .iter()
        .map(|s| format!("key {}", short_key(&s.key)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn short_key(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
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
