//! `install`, `check_boot` (status), `mark_good` and `rollback` on a device root made of
//! files: slot partitions are files, the bootconfig partition is a file, the U-Boot
//! environment a redundant pair in a file, the running slot comes from the fake
//! /proc files and the failed boot's log from a fake /sys/fs/pstore.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ab::status::Trial;
use crate::ab::*;
use crate::root::DeviceRoot;

const PART: usize = 256 * 1024;

struct Dev {
    _dir: tempfile::TempDir,
    root: DeviceRoot,
    board: SlotLayout,
}

fn block(path: &str) -> Target {
    Target::Block { path: path.into() }
}

impl Dev {
    fn new(zyxel: bool) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(dir.path());
        for p in ["/dev", "/etc/liminix", "/proc/device-tree/chosen"] {
            std::fs::create_dir_all(root.join(p)).unwrap();
        }
        for p in ["/dev/ka", "/dev/ra", "/dev/kb", "/dev/rb"] {
            std::fs::write(root.join(p), vec![0xFFu8; PART]).unwrap();
        }
        let flow = if zyxel {
            // image 0 valid, image 1 none, active 0
            let mut bc = vec![0xFFu8; 0x20000];
            bc[..2].copy_from_slice(&[0x08, 0x00]);
            std::fs::write(root.join("/dev/bootconfig"), bc).unwrap();
            FlowConfig::Zyxel {
                device: "/dev/bootconfig".into(),
                offset: 0,
            }
        } else {
            let env = root.join("/dev/env");
            std::fs::write(&env, vec![0u8; 0x8000]).unwrap();
            let line = |off: &str| format!("{} {off} 0x4000\n", env.display());
            std::fs::write(
                root.join("/etc/fw_env.config"),
                line("0x0") + &line("0x4000"),
            )
            .unwrap();
            FlowConfig::UbootEnv {
                config: "/etc/fw_env.config".into(),
                attempts: 1,
            }
        };
        let slot = |k: &str, r: &str| SlotTargets {
            kernel: block(k),
            kernel_max: PART as u64,
            rootfs: Some(block(r)),
            rootfs_max: PART as u64,
        };
        let board = SlotLayout {
            board: "testboard".into(),
            slots: [slot("/dev/ka", "/dev/ra"), slot("/dev/kb", "/dev/rb")],
            flow,
            health: HealthConfig {
                services: vec![],
                command: Some("test -e /tmp/does-not-matter || true".into()),
                deadline_secs: Some(1),
            },
        };
        std::fs::write(root.slot_layout(), serde_json::to_vec(&board).unwrap()).unwrap();
        let d = Dev {
            _dir: dir,
            root,
            board,
        };
        if !zyxel {
            // the factory environment: committed slot a
            let e = liminix_bootenv::Env::from_text(b"ab_boot=a\n").unwrap();
            let mut st =
                liminix_bootenv::devices::open_config(&d.root.join("/etc/fw_env.config"), true)
                    .unwrap();
            st.save(&e).unwrap();
        }
        d.booted(Slot::A);
        d
    }

    /// What U-Boot tells the kernel about the slot it booted.
    fn booted(&self, s: Slot) {
        let bootargs = format!("console=ttyS0 bootImage={}", s.index());
        std::fs::write(
            self.root.join("/proc/device-tree/chosen/bootargs"),
            bootargs,
        )
        .unwrap();
        std::fs::write(
            self.root.join("/proc/cmdline"),
            format!("console=ttyAMA0 liminix.slot={s}\n"),
        )
        .unwrap();
    }

    fn bootconfig(&self) -> [u8; 2] {
        let b = std::fs::read(self.root.join("/dev/bootconfig")).unwrap();
        [b[0], b[1]]
    }

    /// The vendor U-Boot's decision on the bootconfig file, written back as it would.
    fn vendor_reset(&self) -> Slot {
        let p = self.root.join("/dev/bootconfig");
        let block = std::fs::read(&p).unwrap();
        let (slot, next) = liminix_bootenv::zyxel::vendor_boot_decision_block(&block).unwrap();
        if let Some(n) = next {
            std::fs::write(&p, n).unwrap();
        }
        let s = Slot::from_index(slot as usize);
        self.booted(s);
        s
    }

    fn stage(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.root.join(&format!("/tmp-{name}"));
        std::fs::write(&p, data).unwrap();
        p
    }

    fn images(&self, kernel: &[u8], rootfs: &[u8]) -> Vec<StagedImage> {
        vec![
            StagedImage {
                role: ImageRole::Kernel,
                path: self.stage("k", kernel),
                sha256: liminix_flash::image::sha256(kernel),
            },
            StagedImage {
                role: ImageRole::Rootfs,
                path: self.stage("r", rootfs),
                sha256: liminix_flash::image::sha256(rootfs),
            },
        ]
    }

    fn apply(&self, imgs: &[StagedImage], board: &str) -> Result<InstallSummary, AbError> {
        let opts = InstallOptions {
            bundle_board: board.into(),
            reboot: false,
        };
        install(&self.root, &self.board, imgs, &opts)
    }

    fn snapshot(&self) -> Vec<Vec<u8>> {
        [
            "/dev/ka",
            "/dev/ra",
            "/dev/kb",
            "/dev/rb",
            "/dev/bootconfig",
            "/dev/env",
        ]
        .iter()
        .map(|p| std::fs::read(self.root.join(p)).unwrap_or_default())
        .collect()
    }

    fn file_starts_with(&self, p: &str, data: &[u8]) -> bool {
        std::fs::read(self.root.join(p)).unwrap().starts_with(data)
    }
}

fn kernel() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn rootfs() -> Vec<u8> {
    (0..150_000u32).map(|i| (i * 13 % 253) as u8).collect()
}

#[test]
fn zyxel_apply_then_mark_good_in_b() {
    let d = Dev::new(true);
    let r = d
        .apply(&d.images(&kernel(), &rootfs()), "testboard")
        .unwrap();
    assert_eq!((r.from, r.to), (Slot::A, Slot::B));
    assert!(d.file_starts_with("/dev/kb", &kernel()));
    assert!(d.file_starts_with("/dev/rb", &rootfs()));
    assert_eq!(d.bootconfig(), [0x48, 0x00]);
    let st = check_boot(&d.root, &d.board).unwrap();
    assert_eq!(st.trial, Trial::WaitingForReboot);

    assert_eq!(d.vendor_reset(), Slot::B);
    assert_eq!(check_boot(&d.root, &d.board).unwrap().trial, Trial::Running);
    let m = mark_good(&d.root, &d.board, None).unwrap();
    assert!(!m.already_good);
    assert_eq!(m.status.trial, Trial::Confirmed);
    assert_eq!(d.bootconfig(), [0x88, 0x01]);
    assert_eq!(d.vendor_reset(), Slot::B);
    let again = mark_good(&d.root, &d.board, None).unwrap();
    assert!(again.already_good);
    assert_eq!(again.status.trial, Trial::None);
}

#[test]
fn zyxel_unconfirmed_b_is_reported_by_a_with_pstore() {
    let d = Dev::new(true);
    d.apply(&d.images(&kernel(), &rootfs()), "testboard")
        .unwrap();
    assert_eq!(d.vendor_reset(), Slot::B);
    // B panics before mark-good; the kernel left its log in pstore
    assert_eq!(d.vendor_reset(), Slot::A);
    let ps = d.root.join("/sys/fs/pstore");
    std::fs::create_dir_all(&ps).unwrap();
    std::fs::write(
        ps.join("dmesg-ramoops-0"),
        "Kernel panic - not syncing: test\n",
    )
    .unwrap();
    let hook = status_hook(&d.root).unwrap().unwrap();
    assert_eq!(hook.trial, Trial::RolledBack);
    assert_eq!(hook.booted, Slot::A);
    assert!(hook.state.is_failed(Slot::B));
    let rb = hook.last_rollback.as_ref().unwrap();
    assert_eq!(rb.failed, Slot::B);
    assert!(rb.pstore[0].text.contains("Kernel panic"));
    assert!(
        !ps.join("dmesg-ramoops-0").exists(),
        "kept in rollback.json, not reported again with a later rollback"
    );
    assert!(hook.render().contains("slot b did not confirm"));
    // reported once as an event, kept as the last rollback
    let later = status_hook(&d.root).unwrap().unwrap();
    assert_eq!(later.trial, Trial::None);
    assert!(later.last_rollback.is_some());
    // the failed slot cannot be made current by an explicit rollback without --force
    assert!(matches!(
        rollback(&d.root, &d.board, false),
        Err(AbError::Refused(_))
    ));
}

#[test]
fn zyxel_explicit_rollback_after_confirm() {
    let d = Dev::new(true);
    d.apply(&d.images(&kernel(), &rootfs()), "testboard")
        .unwrap();
    d.vendor_reset();
    mark_good(&d.root, &d.board, None).unwrap();
    assert_eq!(
        rollback(&d.root, &d.board, false).unwrap(),
        (Slot::B, Slot::A)
    );
    assert_eq!(d.bootconfig(), [0x88, 0x00]);
    assert_eq!(d.vendor_reset(), Slot::A);
}

#[test]
fn uboot_env_apply_trial_and_fallback() {
    let d = Dev::new(false);
    d.apply(&d.images(&kernel(), &rootfs()), "testboard")
        .unwrap();
    let env = || {
        liminix_bootenv::devices::open_config(&d.root.join("/etc/fw_env.config"), false)
            .unwrap()
            .load()
            .unwrap()
            .env
    };
    assert_eq!(env().get_str("ab_try").as_deref(), Some("b"));
    assert_eq!(env().get_str("ab_left").as_deref(), Some("1"));
    // the script: one attempt of b, then (unconfirmed) back to a
    let mut st =
        liminix_bootenv::devices::open_config(&d.root.join("/etc/fw_env.config"), true).unwrap();
    for want in [Slot::B, Slot::A] {
        let (slot, next) = uboot::script_boot_decision(&st.load().unwrap().env);
        assert_eq!(slot, want);
        st.save(&next.unwrap()).unwrap();
    }
    d.booted(Slot::A);
    let s = check_boot(&d.root, &d.board).unwrap();
    assert_eq!(s.trial, Trial::RolledBack);
    assert!(s.last_rollback.unwrap().pstore.is_empty());
    assert_eq!(env().get_str("ab_failed").as_deref(), Some("b"));
}

#[test]
fn bad_input_writes_nothing() {
    let d = Dev::new(true);
    let before = d.snapshot();
    let good = d.images(&kernel(), &rootfs());
    let e = d.apply(&good, "zyxel-nwa55axe").unwrap_err();
    assert!(matches!(e, AbError::WrongBoard { .. }), "{e}");
    let big = d.images(&vec![1u8; PART + 1], &rootfs());
    let e = d.apply(&big, "testboard").unwrap_err();
    assert!(
        matches!(
            e,
            AbError::Layout(LayoutError::TooLarge {
                what: "kernel",
                slot: Slot::B,
                ..
            })
        ),
        "{e}"
    );
    let mut bad_hash = d.images(&kernel(), &rootfs());
    bad_hash[1].sha256[0] ^= 1;
    assert!(matches!(
        d.apply(&bad_hash, "testboard"),
        Err(AbError::Verify(_))
    ));
    let e = d.apply(&good[..1], "testboard").unwrap_err();
    assert!(
        matches!(e, AbError::Layout(LayoutError::NoRootfsImage(Slot::B))),
        "{e}"
    );
    assert_eq!(d.snapshot(), before, "nothing written");
    assert!(check_boot(&d.root, &d.board).unwrap().pending.is_none());
}

#[test]
fn apply_refused_while_running_an_unconfirmed_trial() {
    let d = Dev::new(true);
    d.apply(&d.images(&kernel(), &rootfs()), "testboard")
        .unwrap();
    d.vendor_reset();
    let before = d.snapshot();
    let e = d
        .apply(&d.images(&rootfs(), &kernel()), "testboard")
        .unwrap_err();
    assert!(matches!(e, AbError::Refused(_)), "{e}");
    assert_eq!(d.snapshot(), before);
}

#[test]
fn failing_health_check_confirms_nothing() {
    let mut d = Dev::new(true);
    d.board.health.command = Some("exit 3".into());
    d.apply(&d.images(&kernel(), &rootfs()), "testboard")
        .unwrap();
    d.vendor_reset();
    let before = d.bootconfig();
    let e = mark_good(&d.root, &d.board, Some(Duration::ZERO)).unwrap_err();
    assert!(matches!(e, AbError::Unhealthy { .. }), "{e}");
    assert_eq!(d.bootconfig(), before);
    assert_eq!(d.vendor_reset(), Slot::A, "next reset falls back");
}

#[test]
fn board_file_round_trips_and_missing_means_not_ab() {
    let d = Dev::new(true);
    assert_eq!(load_slot_layout(&d.root).unwrap().unwrap(), d.board);
    let other = DeviceRoot::new(Path::new("/nonexistent-root"));
    assert!(load_slot_layout(&other).unwrap().is_none());
    assert!(status_hook(&other).is_none());
    let z = SlotLayout::zyxel_nwa50ax();
    assert_eq!(z.slot(Slot::B).kernel_max, 8 << 20);
    assert_eq!(z.slot(Slot::B).rootfs_max, 32 << 20);
}

#[test]
fn board_file_gives_the_ab_layout_when_there_is_no_ab_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = DeviceRoot::new(dir.path());
    std::fs::create_dir_all(root.join("/etc/liminix")).unwrap();
    std::fs::write(root.board_name(), "no-such-board\n").unwrap();
    assert!(
        load_slot_layout(&root).unwrap().is_none(),
        "unknown board: not A/B"
    );
    let names = ["u-boot", "kernel", "ubi", "kernel_1", "ubi_1", "bootconfig"];
    crate::testutil::fake_sysfs(&root, &names, &[(0, 2), (1, 4)]);
    std::fs::write(root.board_name(), "zyxel-nwa50ax\n").unwrap();
    let b = load_slot_layout(&root)
        .unwrap()
        .expect("A/B board from the board definition");
    assert_eq!(b.board, "zyxel-nwa50ax");
    assert!(matches!(b.flow, FlowConfig::Zyxel { .. }));
    assert_eq!(
        b.slot(Slot::B).kernel,
        Target::Mtd {
            name: "kernel_1".into()
        }
    );
}
