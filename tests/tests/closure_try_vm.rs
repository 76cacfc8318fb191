//! `update.sh --try` on a writable-root board (liminix_vm::writable): the host's kernel in QEMU
//! (TCG) with an ext4 persist filesystem on a virtio disk holding the store and two generations
//! laid out by the agent itself (`receive --root` on the host), preinit as Liminix's plus the
//! `liminix.trial=N` rule, s6-svscan and dropbear; the host runs the real `update.sh` from
//! `liminix-pack updater` through QEMU's forwarded port.
//!
//! One guest, one chain: a refused trial (no kernel file: nothing installed); a good generation
//! tried by kexec, confirmed by its health service's `mark-good`, still current after a reset;
//! then a generation whose init exits: the kernel panics, resets, the confirmed generation
//! comes back and `status` names the failed trial.
//!
//! Oracles: the serial console (banners with the command line's trial marker, the kernel's
//! panic), `liminix-agent status --json` and `readlink` on the guest, update.sh's JSON events.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use liminix_tests::device::{agent_binary, pack_binary, test_agents_dir};
use liminix_tests::lab::text;
use liminix_vm::kernel::find_kernel;
use liminix_vm::router::Keys;
use liminix_vm::writable::system::{self, Init, Store};
use liminix_vm::writable::{Guest, MARK_GOOD};

const BOOT: Duration = Duration::from_secs(300);
const SSH: Duration = Duration::from_secs(90);
const BOARD: &str = "qemu-nor-router";

struct Bed {
    _dir: tempfile::TempDir,
    keys: Keys,
    secret: PathBuf,
    public: PathBuf,
    kernel: PathBuf,
    preinit: Vec<u8>,
    store: Store,
    out: PathBuf,
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

impl Bed {
    fn new() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("signing.sec");
        let public = dir.path().join("signing.pub");
        let o = run(Command::new(pack_binary())
            .args(["keygen", "--secret"])
            .arg(&secret)
            .arg("--public")
            .arg(&public));
        assert!(o.status.success(), "keygen: {}", text(&o));
        let kernel = find_kernel().unwrap();
        let preinit = system::preinit(&kernel).unwrap();
        let keys = Keys::generate().unwrap();
        let store = Store::new(&keys, &agent_binary(), &public, &kernel.image, &preinit).unwrap();
        Bed {
            out: dir.path().to_owned(),
            _dir: dir,
            keys,
            secret,
            public,
            kernel: kernel.image,
            preinit,
            store,
        }
    }

    /// `liminix-pack updater` for `toplevel`: the path of its `update.sh`.
    fn updater(&self, label: &str, toplevel: &str) -> PathBuf {
        let out = self.out.join(format!("updater-{label}"));
        let o = run(Command::new(pack_binary())
            .args(["updater", "--toplevel", toplevel, "--board", BOARD])
            .args(["--level", "3", "--agents", "x86_64"])
            .arg("--store-root")
            .arg(self.store.root())
            .arg("--key")
            .arg(&self.secret)
            .arg("--agents-dir")
            .arg(test_agents_dir())
            .arg("--out")
            .arg(&out));
        assert!(o.status.success(), "liminix-pack updater: {}", text(&o));
        out.join("bin/update.sh")
    }

    /// The persist filesystem with `bundles` installed in order by the agent on the host
    /// (`--root`, as from a recovery system), as an ext4 image at `disk`.
    fn disk(&self, bundles: &[PathBuf], disk: &Path) {
        let persist = tempfile::tempdir().unwrap();
        let etc = persist.path().join("etc/liminix");
        std::fs::create_dir_all(etc.join("trusted-keys")).unwrap();
        std::fs::copy(&self.public, etc.join("trusted-keys/test.pub")).unwrap();
        std::fs::write(etc.join("board"), format!("{BOARD}\n")).unwrap();
        for b in bundles {
            let o = run(Command::new(agent_binary())
                .arg("--root")
                .arg(persist.path())
                .args(["receive", "--no-reboot"])
                .stdin(std::fs::File::open(b).unwrap()));
            assert!(o.status.success(), "receive {}: {}", b.display(), text(&o));
        }
        // The running system's /etc comes from the store; this one only served the host's agent.
        std::fs::remove_dir_all(persist.path().join("etc")).unwrap();
        system::ext4_image(persist.path(), disk, 512 << 20).unwrap();
    }
}

fn bundle_of(update_sh: &Path) -> PathBuf {
    update_sh
        .parent()
        .unwrap()
        .join("../share/liminix/system.bundle")
}

fn status(g: &Guest) -> serde_json::Value {
    let out = g.ssh_ok("liminix-agent status --json").unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON: {e}: {out}"))
}

fn update_try(g: &Guest, update_sh: &Path) -> Vec<serde_json::Value> {
    let o = run(Command::new(update_sh)
        .args(["--try", "--json", g.host()])
        .env("SSH_COMMAND", g.ssh_command()));
    assert!(o.status.success(), "update.sh --try: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn event<'a>(events: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

fn numbers(st: &serde_json::Value) -> Vec<u64> {
    st["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["number"].as_u64().unwrap())
        .collect()
}

#[test]
fn try_boots_a_good_generation_once_then_keeps_it_and_a_broken_one_falls_back() {
    let bed = Bed::new();
    let a0 = bed.store.generation("a0", Init::Good).unwrap();
    let a = bed.store.generation("a", Init::Good).unwrap();
    let b = bed.store.generation("b", Init::Good).unwrap();
    let c = bed.store.generation("c", Init::Exits).unwrap();
    let (up_a0, up_a) = (bed.updater("a0", &a0), bed.updater("a", &a));
    let (up_b, up_c) = (bed.updater("b", &b), bed.updater("c", &c));
    let disk = bed.out.join("persist.ext4");
    bed.disk(&[bundle_of(&up_a0), bundle_of(&up_a)], &disk);
    let mut g = Guest::boot(&bed.kernel, &bed.preinit, &disk, &bed.keys).unwrap();
    assert_eq!(g.wait_for_boot(1, BOOT).unwrap(), ["a"]);
    g.wait_for_ssh(SSH).unwrap();
    let st = status(&g);
    assert_eq!(
        (st["current"].as_u64(), st["previous"].as_u64()),
        (Some(2), Some(1)),
        "{st}"
    );

    // No kernel to boot: refused before anything is installed.
    let r = g
        .ssh_input(
            "liminix-agent receive --try --kernel /boot/missing",
            Some(&bundle_of(&up_b)),
        )
        .unwrap();
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stdout.contains("/boot/missing cannot be read"), "{r:?}");
    assert_eq!(numbers(&status(&g)), [1, 2]);

    // (a) A good generation: kexec, its health service confirms it, a reset keeps it.
    let events = update_try(&g, &up_b);
    let trying = event(&events, "trying");
    assert_eq!(trying["generation"], 3, "{events:?}");
    assert_eq!(trying["current"], 2, "{events:?}");
    assert_eq!(trying["kernel"], "/boot/kernel", "{events:?}");
    let banners = g.wait_for_boot(2, BOOT).unwrap();
    assert_eq!(banners[1], "b liminix.trial=3", "{}", g.serial());
    g.wait_for_console(MARK_GOOD, 1, SSH).unwrap();
    assert!(
        g.serial().contains(&format!("{MARK_GOOD} rc=0")),
        "{}",
        g.serial()
    );
    g.wait_for_ssh(SSH).unwrap();
    let st = status(&g);
    assert_eq!(
        (st["current"].as_u64(), st["previous"].as_u64()),
        (Some(3), Some(2)),
        "{st}"
    );
    assert!(st.get("trial").is_none(), "{st}");
    let init = g.ssh_ok("readlink -f /persist/init").unwrap();
    assert_eq!(init.trim(), "/persist/generations/3/init");
    let _ = g.ssh("reboot -f");
    let banners = g.wait_for_boot(3, BOOT).unwrap();
    assert_eq!(banners[2], "b", "{}", g.serial());
    g.wait_for_ssh(SSH).unwrap();

    // (b) A generation whose init exits: panic, reset, back to generation 3; status says so.
    let events = update_try(&g, &up_c);
    assert_eq!(event(&events, "trying")["generation"], 4, "{events:?}");
    let banners = g.wait_for_boot(5, BOOT).unwrap();
    assert!(banners[3].starts_with("c: this init exits"), "{banners:?}");
    assert_eq!(banners[4], "b", "{}", g.serial());
    assert!(g.serial().contains("Kernel panic"), "{}", g.serial());
    g.wait_for_ssh(SSH).unwrap();
    let st = status(&g);
    assert_eq!(st["current"].as_u64(), Some(3), "{st}");
    assert_eq!(numbers(&st), [1, 2, 3, 4]);
    assert_eq!(st["trial"]["state"], "failed", "{st}");
    assert_eq!(st["trial"]["generation"], 4, "{st}");
    let human = g.ssh("liminix-agent status").unwrap();
    assert!(
        human.stdout.contains("generation 4 FAILED its trial"),
        "{human:?}"
    );
}
