//! What the writable-root guest's persist filesystem holds, written into a host directory the
//! way Liminix lays it out: store paths under `nix/store`, one shared `base` (busybox, s6,
//! dropbear, the agent, the kernel and preinit under `boot/`) and one small toplevel per
//! generation (`bin/activate`, `bin/init`, `etc/nix-store-paths`).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{BOOT_PREFIX, MARK_GOOD};
use crate::initramfs::Initramfs;
use crate::kernel::Kernel;
use crate::router::{Keys, RootTree, GATEWAY, GUEST_ADDRESS};
use crate::VmError;

/// Modules the preinit loads, in order (crc32c before ext4, which asks the crypto API for it).
const MODULES: [&str; 6] = [
    "virtio_pci",
    // Seeds the kernel's random pool at once: dropbear waits for it before answering.
    "virtio_rng",
    "virtio_blk",
    "virtio_net",
    "crc32c_generic",
    "ext4",
];

/// The guest's preinit, as Liminix's: mount the persist filesystem at /target/persist, bind its
/// `nix` to /target/nix, run `activate /target`, enter /target and exec init. A `liminix.trial=N`
/// word on the command line picks generation N's activate and init instead of /persist's.
const PREINIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /target /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "@FAILED@ $*"; poweroff -f; }
for m in @MODULES@; do modprobe "$m" || fail "modprobe $m"; done
for i in $(seq 100); do [ -e /dev/vda ] && break; sleep 0.1; done
[ -e /dev/vda ] || fail "no /dev/vda"
mount -t tmpfs -o mode=0755 target /target || fail "tmpfs"
mkdir -p /target/persist /target/nix
mount -t ext4 /dev/vda /target/persist || fail "mount /dev/vda"
mount --bind /target/persist/nix /target/nix || fail "bind nix"
trial=$(sed -n 's/.*liminix\.trial=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$trial" ]; then
  activate=/persist/generations/$trial/activate
  init=/persist/generations/$trial/init
else
  activate=/persist/activate
  init=/persist/init
fi
/target$activate /target || fail "$activate"
mount --move /dev /target/dev
umount /proc /sys
exec switch_root /target $init
"#;

/// The preinit initramfs for `kernel` (busybox and the modules above).
pub fn preinit(kernel: &Kernel) -> Result<Vec<u8>, VmError> {
    crate::require("/bin/busybox", "busybox-static")?;
    let mut fs = Initramfs::new();
    fs.copy(Path::new("/bin/busybox"), "/bin/busybox")?;
    fs.symlink("/bin/sh", "busybox");
    let script = PREINIT
        .replace("@FAILED@", super::PREINIT_FAILED)
        .replace("@MODULES@", &MODULES.join(" "));
    fs.bytes("/init", script.as_bytes(), 0o755);
    let modules: Vec<String> = MODULES.iter().map(|m| m.to_string()).collect();
    fs.modules(kernel, &modules)?;
    Ok(fs.finish())
}

/// A store path name for `name`: 32 characters of Nix's base-32 alphabet from its sha256.
pub fn store_path(name: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest
        .iter()
        .take(32)
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    format!("/nix/store/{hash}-{name}")
}

/// The store of one test on the host: `DIR/nix/store`, the store root `liminix-pack` reads.
pub struct Store {
    dir: tempfile::TempDir,
    base: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VmError + '_ {
    VmError::io(path)
}

/// What a generation's init does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Boots: filesystems, network, banner, s6-svscan with dropbear and a health service that
    /// runs `liminix-agent mark-good` on a trial boot.
    Good,
    /// Exits at once: PID 1 dies and the kernel panics (and, with `panic=1`, resets).
    Exits,
}

impl Store {
    /// A store holding the base path: a [`RootTree`] with `agent`, `keys`, board
    /// `qemu-nor-router`, `trusted_key` (a signing key's public file) in
    /// /etc/liminix/trusted-keys, and `kernel` with `initramfs` in boot/.
    pub fn new(
        keys: &Keys,
        agent: &Path,
        trusted_key: &Path,
        kernel: &Path,
        initramfs: &[u8],
    ) -> Result<Self, VmError> {
        let dir = tempfile::Builder::new()
            .prefix("liminix-writable-store")
            .tempdir()
            .map_err(io(Path::new("tempdir")))?;
        let tree = RootTree::build("base", keys, agent)?;
        let pubkey = std::fs::read(trusted_key).map_err(io(trusted_key))?;
        tree.file("/etc/liminix/trusted-keys/test.pub", &pubkey, 0o644)?;
        let image = std::fs::read(kernel).map_err(io(kernel))?;
        tree.file("/boot/kernel", &image, 0o644)?;
        tree.file("/boot/initramfs", initramfs, 0o644)?;
        let base = store_path("liminix-try-base");
        let host = dir.path().join(base.trim_start_matches('/'));
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        crate::run_command(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(tree.path())
                .arg(&host),
        )?;
        Ok(Store { dir, base })
    }

    /// The store root (the directory holding `nix/store`).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    fn host(&self, store_path: &str) -> PathBuf {
        self.dir.path().join(store_path.trim_start_matches('/'))
    }

    /// Writes the toplevel of generation `label` and returns its store path. Its banner on the
    /// console is `BOOT_PREFIX label` followed by the trial marker when it boots on trial.
    pub fn generation(&self, label: &str, init: Init) -> Result<String, VmError> {
        let top = store_path(&format!("liminix-system-{label}"));
        let host = self.host(&top);
        for d in ["bin", "etc"] {
            std::fs::create_dir_all(host.join(d)).map_err(io(&host))?;
        }
        let write = |rel: &str, text: String, mode: u32| -> Result<(), VmError> {
            use std::os::unix::fs::PermissionsExt;
            let p = host.join(rel);
            std::fs::write(&p, text).map_err(io(&p))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(io(&p))
        };
        write("bin/activate", activate(&self.base), 0o755)?;
        let init_text = match init {
            Init::Good => good_init(label),
            Init::Exits => format!(
                "#!/bin/sh\necho \"{BOOT_PREFIX} {label}: this init exits, PID 1 dies\"\nexit 1\n"
            ),
        };
        write("bin/init", init_text, 0o755)?;
        write("etc/nix-store-paths", format!("{}\n", self.base), 0o644)?;
        Ok(top)
    }
}

/// Liminix's activate makes the root tree below its argument; here every top-level entry of
/// the base path becomes a link, the kernel's filesystems real directories.
fn activate(base: &str) -> String {
    format!(
        r#"#!/bin/sh
set -e
t="${{1%/}}"
for p in "$t{base}"/*; do
  n="${{p##*/}}"
  case "$n" in
    proc|sys|dev|run|tmp) mkdir -p "$t/$n" ;;
    init) ;;
    *) ln -sfn "{base}/$n" "$t/$n" ;;
  esac
done
"#
    )
}

/// Stage 1 of a bootable generation, and its health service: on a trial boot it waits for
/// dropbear and runs `mark-good`, and says so on the console.
fn good_init(label: &str) -> String {
    format!(
        r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs tmp /tmp
cp -a /etc/s6/scandir /run/service
mkdir -p /run/service/health
cat > /run/service/health/run <<'EOF'
#!/bin/sh
if grep -q 'liminix\.trial=' /proc/cmdline; then
  liminix-agent mark-good --check 'test -e /run/dropbear.pid' --deadline 60 >/dev/console 2>&1
  echo "{MARK_GOOD} rc=$?" >/dev/console
fi
exec sleep 2147483647
EOF
chmod 755 /run/service/health/run
ip link set lo up
ip link set eth0 up
ip addr add {GUEST_ADDRESS} dev eth0
ip route add default via {GATEWAY}
echo "{BOOT_PREFIX} {label} $(grep -o 'liminix\.trial=[0-9]*' /proc/cmdline)"
exec s6-svscan /run/service </dev/null
"#
    )
}

/// The persist filesystem `dir` as an ext4 image of `bytes` at `disk` (`mkfs.ext4 -d`; no
/// metadata checksums, so the guest needs no crc32c for its journal).
pub fn ext4_image(dir: &Path, disk: &Path, bytes: u64) -> Result<(), VmError> {
    crate::require_program("mkfs.ext4", "e2fsprogs")?;
    let f = std::fs::File::create(disk).map_err(io(disk))?;
    f.set_len(bytes).map_err(io(disk))?;
    crate::run_command(
        std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-O", "^metadata_csum", "-L", "persist", "-d"])
            .arg(dir)
            .arg(disk),
    )?;
    Ok(())
}
