//! The ssh keys of one router test: the router's dropbear host key (made once, baked into
//! every firmware image of the test, so the same key answers on every boot) and root's client
//! key pair on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::VmError;

/// Keys in a temporary directory, removed when dropped.
pub struct Keys {
    _dir: tempfile::TempDir,
    /// The dropbear host key (dropbear's own format), as the router reads it.
    pub host_key: PathBuf,
    /// Its public half, one OpenSSH line (`ssh-ed25519 AAAA…`).
    pub host_public: String,
    /// The host's private key for `ssh -i`.
    pub client_key: PathBuf,
    /// Its public half, for the router's authorized_keys.
    pub client_public: String,
}

/// The key line of `dropbearkey -y` output (the OpenSSH public key).
fn public_line(out: &str) -> Option<String> {
    out.lines()
        .find(|l| l.starts_with("ssh-"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

impl Keys {
    /// Fresh ed25519 keys made by `dropbearkey` and `ssh-keygen`.
    pub fn generate() -> Result<Self, VmError> {
        crate::require_program("dropbearkey", "dropbear-bin")?;
        crate::require_program("ssh-keygen", "openssh-client")?;
        let dir = tempfile::Builder::new()
            .prefix("liminix-router-keys")
            .tempdir()
            .map_err(VmError::io(Path::new("tempdir")))?;
        let host_key = dir.path().join("dropbear_ed25519_host_key");
        crate::run_command(
            Command::new("dropbearkey")
                .args(["-t", "ed25519", "-f"])
                .arg(&host_key),
        )?;
        let out = crate::run_command(
            Command::new("dropbearkey")
                .arg("-y")
                .arg("-f")
                .arg(&host_key),
        )?;
        let text = String::from_utf8_lossy(&out);
        let host_public = public_line(&text).ok_or_else(|| VmError::Command {
            command: "dropbearkey -y".into(),
            detail: format!("no public key line in: {text}"),
        })?;
        let client_key = dir.path().join("id_ed25519");
        crate::run_command(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "liminix-test", "-f"])
                .arg(&client_key),
        )?;
        let pub_path = dir.path().join("id_ed25519.pub");
        let client_public = std::fs::read_to_string(&pub_path)
            .map_err(VmError::io(&pub_path))?
            .trim()
            .to_string();
        Ok(Keys {
            _dir: dir,
            host_key,
            host_public,
            client_key,
            client_public,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_line_is_found_in_dropbearkey_output() {
        let out = "Public key portion is:\nssh-ed25519 AAAAC3 root@h\nFingerprint: sha256:x\n";
        assert_eq!(public_line(out).as_deref(), Some("ssh-ed25519 AAAAC3"));
        assert_eq!(public_line("nothing"), None);
    }
}
