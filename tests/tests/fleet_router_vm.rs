//! The levitate strategy through the real Ansible: the collection's rolling-update playbook
//! (`liminix_strategy: levitate`) updates the NOR router guest (liminix_vm::router: the root is
//! the squashfs inside the block2mtd `firmware` partition, s6-svscan is PID 1, dropbear answers
//! through QEMU's hostfwd with the host key baked into every firmware, checked strictly).
//!
//! One guest, two boots: check mode (the agent's `apply --dry-run` names the firmware partition
//! as in use, nothing changes), then the update: the agent's `image-plan` checks the bundle and
//! the RAM, `levitate` moves the router onto its maintenance root, `apply --reboot` writes the
//! firmware from there, and the router comes back on firmware B. What the router runs and what
//! the flash holds are checked on the guest and on the disk, not taken from Ansible's word.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use liminix_tests::fleet::{self, Row};
use liminix_tests::lab::text;
use liminix_tests::nor_bed::{NorBed, BOARD_TOML};
use liminix_vm::router::Router;

const BOOT: Duration = Duration::from_secs(240);
const SSH: Duration = Duration::from_secs(60);

/// `ansible-playbook rolling-update.yml` with `strategy` and `bundle` against the router; the
/// output and the summary rows.
fn playbook(
    dir: &Path,
    bed: &NorBed,
    r: &Router,
    (strategy, bundle, full): (&str, &Path, Option<&Path>),
    args: &[&str],
) -> (Output, Vec<Row>) {
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", r.port(), bed.keys.host_public),
    )
    .unwrap();
    let options = format!(
        "-o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
         -o IdentitiesOnly=yes -o LogLevel=ERROR",
        known.display()
    );
    let host = serde_json::json!({
        "ansible_host": "127.0.0.1",
        "ansible_port": r.port(),
        "ansible_user": "root",
        "ansible_ssh_private_key_file": bed.keys.client_key,
        "ansible_ssh_common_args": options,
    });
    let mut vars = serde_json::json!({
        "liminix_strategy": strategy,
        "liminix_bundle": bundle,
    });
    if let Some(full) = full {
        vars["liminix_full_bundle"] = full.display().to_string().into();
    }
    fleet::rolling_update_of_one(dir, host, &vars, args)
}

fn only_row(rows: &[Row], out: &Output) -> Row {
    assert_eq!(rows.len(), 1, "one summary row: {}", text(out));
    rows[0].clone()
}

#[test]
fn ansible_levitates_a_nor_router_and_flashes_firmware_b() {
    let bed = NorBed::new();
    let firmware_a = bed.firmware_with("firmware A", None);
    let firmware_b = bed.firmware_with("firmware B", None);
    let bundle = bed.bundle(&firmware_b, "firmware-B");
    let size = std::fs::metadata(&bundle).unwrap().len();
    let disk = bed.disk("fleet-levitate", &firmware_a);
    let dir = tempfile::tempdir().unwrap();
    fleet::link_collection(dir.path());

    let mut r = Router::boot(disk.path(), &bed.layout, &bed.keys).unwrap();
    r.wait_for_boot(1, BOOT).unwrap();
    r.wait_for_ssh(SSH).unwrap();

    // The apply strategy, for a partition the running system does not read (`persist`, named
    // as an image target by a board file bind-mounted over the built-in one).
    let data = liminix_testdata::pattern(23, 200_000);
    let board = format!("{BOARD_TOML}\n[[image]]\nname = \"data\"\ntarget = \"mtd:persist\"\n");
    let data_bundle = bed.bundle_for(&board, &[("data", &data)], "data");
    r.ssh_with_input(
        "cat > /tmp/board.toml && mount --bind /tmp/board.toml /etc/liminix/board.toml",
        board.as_bytes(),
    )
    .unwrap();
    let (o, rows) = playbook(dir.path(), &bed, &r, ("apply", &data_bundle, None), &[]);
    assert!(o.status.success(), "apply: {}", text(&o));
    let row = only_row(&rows, &o);
    assert_eq!(row.result, "updated", "{row:?}");
    let (o, rows) = playbook(
        dir.path(),
        &bed,
        &r,
        ("apply", &data_bundle, None),
        &["--check"],
    );
    assert!(o.status.success(), "apply --check: {}", text(&o));
    let row = only_row(&rows, &o);
    assert_eq!(
        row.result, "unchanged",
        "the partition holds the image now: {row:?}"
    );
    r.ssh_ok("umount /etc/liminix/board.toml").unwrap();

    // Check mode: the router checks the bundle and compares its flash; nothing changes.
    let (o, rows) = playbook(
        dir.path(),
        &bed,
        &r,
        ("levitate", &bundle, None),
        &["--check"],
    );
    assert!(o.status.success(), "check mode: {}", text(&o));
    let row = only_row(&rows, &o);
    assert_eq!(row.result, "would update", "{row:?}");
    assert_eq!(row.would_send_bytes, Some(size), "{row:?}");
    let untouched = r
        .ssh_ok("test ! -e /run/maintenance && cat /proc/1/comm /etc/banner")
        .unwrap();
    assert_eq!(untouched, "s6-svscan\nfirmware A\n");

    // A patch made against a firmware the router does not hold: refused from its header
    // (base_mismatch), before the router leaves its flash.
    let firmware_c = bed.firmware_with("firmware C", None);
    let patch = bed.patch_bundle(&firmware_b, &firmware_c, "firmware-B-from-C");
    let (o, rows) = playbook(dir.path(), &bed, &r, ("levitate", &patch, None), &[]);
    assert!(
        !o.status.success(),
        "a patch against another base: {}",
        text(&o)
    );
    let row = only_row(&rows, &o);
    assert!(row.result.contains("base_mismatch"), "{row:?}");
    let untouched = r
        .ssh_ok("test ! -e /run/maintenance && cat /proc/1/comm /etc/banner")
        .unwrap();
    assert_eq!(untouched, "s6-svscan\nfirmware A\n");

    // The update, the same patch with the whole bundle to fall back to: image-plan, levitate,
    // apply in the maintenance root, reboot into B.
    let (o, rows) = playbook(
        dir.path(),
        &bed,
        &r,
        ("levitate", &patch, Some(&bundle)),
        &[],
    );
    assert!(o.status.success(), "update: {}\n{}", text(&o), r.serial());
    let row = only_row(&rows, &o);
    assert_eq!(row.result, "updated", "{row:?}");
    assert_eq!(row.sent_bytes, size, "{row:?}");
    r.wait_for_boot(2, BOOT).unwrap();
    assert_eq!(r.banners(), ["firmware A", "firmware B"], "{}", r.serial());
    let now = r.ssh_ok("cat /proc/1/comm /etc/banner").unwrap();
    assert_eq!(now, "s6-svscan\nfirmware B\n");
    r.power_off(Duration::from_secs(30)).unwrap();
    let flash = std::fs::read(disk.path()).unwrap();
    assert!(
        flash[..firmware_b.len()] == firmware_b,
        "the firmware partition does not hold firmware B"
    );
    let persist = bed.layout.firmware as usize;
    assert!(
        flash[persist..persist + data.len()] == data,
        "persist does not hold what the apply strategy wrote"
    );
}
