//! The initramfs of a trial boot (`liminix-agent apply --try` on a NOR router): busybox, a
//! small /init, the staged and verified firmware image and what [`crate::carry`] brings from
//! the running system.
//!
//! The /init loads the carried modules, runs the board's flash set-up, moves the firmware image
//! onto a tmpfs at [`TRIAL_DIR`] (inside `/dev`, the one mount a Liminix root keeps from the
//! stage before it), attaches it read-only to a loop device at the root's offset, mounts that
//! squashfs and `switch_root`s into its /init. The flash is not read: the new system runs from
//! RAM, and `mark-good` there writes the image kept at [`TRIAL_DIR`]. Any failure ends PID 1,
//! which panics the kernel; the reset that follows boots the untouched firmware.

use std::path::PathBuf;

use crate::carry::{Carried, FLASH_SETUP};
use crate::tree::Tree;
use crate::RecoveryError;

/// Where the trial system finds the staged image and its description.
pub const TRIAL_DIR: &str = "/dev/liminix-trial";
/// The staged firmware image's name there.
pub const IMAGE: &str = "firmware.img";
/// The description of the trial (JSON, written by the agent) there.
pub const DESCRIPTION: &str = "trial.json";
/// Applets the trial /init runs.
pub const TRIAL_APPLETS: &[&str] = &[
    "sh",
    "mount",
    "umount",
    "mkdir",
    "mv",
    "cat",
    "echo",
    "losetup",
    "modprobe",
    "switch_root",
];

/// What goes into the trial initramfs.
#[derive(Debug, Clone)]
pub struct TrialParts {
    pub busybox: PathBuf,
    /// Its applets when known; checked against [`TRIAL_APPLETS`].
    pub applets: Option<Vec<String>>,
    /// The staged, verified firmware image.
    pub firmware: PathBuf,
    /// Where the squashfs root starts in it.
    pub root_offset: u64,
    /// A short name of the trial (a prefix of the image's sha256), in the console and log lines.
    pub id: String,
    /// The trial's description, kept beside the image for `mark-good`.
    pub description: Vec<u8>,
    pub carried: Carried,
}

/// The trial initramfs as a tree.
pub fn build(p: &TrialParts) -> Result<Tree, RecoveryError> {
    if !p
        .id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"@._-".contains(&b))
    {
        return Err(RecoveryError::Unsafe {
            what: "the trial name (letters, digits, @ . _ -)",
            value: p.id.clone(),
        });
    }
    if let Some(list) = &p.applets {
        let missing: Vec<&str> = TRIAL_APPLETS
            .iter()
            .copied()
            .filter(|a| !list.iter().any(|l| l == a))
            .collect();
        if !missing.is_empty() {
            return Err(RecoveryError::MissingApplets {
                busybox: p.busybox.clone(),
                missing: missing.join(", "),
            });
        }
    }
    let mut t = Tree::new();
    for d in ["/proc", "/sys", "/dev", "/newroot", "/trial"] {
        t.dir(d, 0o755)?;
    }
    t.char_dev("/dev/console", 5, 1)?;
    t.copy("/bin/busybox", &p.busybox, 0o755)?;
    // Every applet when known: the board's flash set-up may run any of them.
    let applets: Vec<String> = match &p.applets {
        Some(list) => list.clone(),
        None => TRIAL_APPLETS.iter().map(|a| a.to_string()).collect(),
    };
    for applet in applets {
        if !applet.is_empty() && !applet.contains('/') && applet != "busybox" {
            t.symlink(&format!("/bin/{applet}"), "busybox")?;
        }
    }
    t.copy(&format!("/trial/{IMAGE}"), &p.firmware, 0o600)?;
    t.bytes(
        &format!("/trial/{DESCRIPTION}"),
        p.description.clone(),
        0o600,
    )?;
    p.carried.add_to(&mut t)?;
    t.bytes("/init", init(&p.id, p.root_offset).into_bytes(), 0o755)?;
    Ok(t)
}

const INIT: &str = r#"#!/bin/sh
# PID 1 of a trial boot (liminix-agent apply --try). Any failure ends it, which panics the
# kernel: the reset that follows boots the untouched firmware on the flash.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
log() {
    echo "liminix-trial: $*"
    echo "<5>liminix-agent: trial of @ID@: $*" >/dev/kmsg
}
fail() {
    log "failed: $*"
    exit 1
}
log "started"
if [ -f /etc/modules ]; then
    while read -r m; do
        [ -n "$m" ] && { modprobe "$m" || log "modprobe $m failed"; }
    done </etc/modules
fi
if [ -x @SETUP@ ]; then
    @SETUP@ || fail "@SETUP@"
fi
mkdir -p @DIR@
mount -t tmpfs -o mode=0700 liminix-trial @DIR@ || fail "mounting a tmpfs at @DIR@"
mv /trial/@IMAGE@ /trial/@DESC@ @DIR@/ || fail "moving the staged image"
loop=$(losetup -f) || fail "no free loop device"
losetup -r -o @OFFSET@ "$loop" @DIR@/@IMAGE@ || fail "losetup"
mount -t squashfs -o ro "$loop" /newroot || fail "mounting the new root from $loop"
log "switching to the new root"
mount --move /dev /newroot/dev || fail "moving /dev"
umount /proc /sys
exec switch_root /newroot /init
"#;

/// The trial's /init for trial `id` whose root starts `root_offset` bytes into the image.
pub fn init(id: &str, root_offset: u64) -> String {
    INIT.replace("@ID@", id)
        .replace("@SETUP@", FLASH_SETUP)
        .replace("@DIR@", TRIAL_DIR)
        .replace("@IMAGE@", IMAGE)
        .replace("@DESC@", DESCRIPTION)
        .replace("@OFFSET@", &root_offset.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The oracle is the shell's own parser (`sh -n`).
    #[test]
    fn the_trial_init_parses_and_carries_its_values() {
        let s = init("firmware@0123abcd", 1 << 20);
        for placeholder in ["@ID@", "@SETUP@", "@DIR@", "@IMAGE@", "@DESC@", "@OFFSET@"] {
            assert!(!s.contains(placeholder), "{s}");
        }
        assert!(s.contains("losetup -r -o 1048576"), "{s}");
        // The words the agent's pstore reader takes for a trial step (liminix-agent's pstore).
        assert!(
            s.contains("<5>liminix-agent: trial of firmware@0123abcd: $*"),
            "{s}"
        );
        let out = Command::new("busybox")
            .args(["sh", "-n", "-c", &s])
            .output()
            .expect("busybox (Debian package busybox-static)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_busybox_without_losetup_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let fw = t.path().join("fw");
        std::fs::write(&fw, b"x").unwrap();
        let mut p = TrialParts {
            busybox: fw.clone(),
            applets: Some(vec!["sh".into()]),
            firmware: fw,
            root_offset: 0,
            id: "ab12".into(),
            description: b"{}".to_vec(),
            carried: Carried::default(),
        };
        let e = build(&p).unwrap_err();
        assert!(e.to_string().contains("losetup"), "{e}");
        p.applets = None;
        let tree = build(&p).unwrap();
        assert!(tree.contains("trial/firmware.img"));
        p.id = "firmware@0a1b".into();
        assert!(build(&p).is_ok());
        p.id = "a b".into();
        assert!(build(&p).is_err());
    }
}
