//! Flash benchmark (bench/flash.sh): the static liminix-agent against
//! mtd-utils' flashcp and ubiupdatevol in one QEMU (TCG) guest on nandsim
//! with realistic delays. Counts erased blocks by tracing MEMERASE/MEMERASE64
//! ioctls with strace (one call may erase several blocks, so lengths are
//! added up), times untraced runs separately, and reads the agent's peak RSS
//! from busybox `time -v`. Prints a table with ratios.
//!
//! ```text
//! bench-flash [--raw-mib 16] [--ubi-mib 64] [--changed-pct 10] [--agent STATIC-BINARY]
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;

use liminix_vm::{build_static, StaticTarget, VmBuilder, VmOutput};

const NAND: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 do_delays=1 erase_delay=2 programm_delay=200";
const EB: u64 = 128 * 1024;

struct Params {
    /// A prebuilt static agent instead of the workspace's release build.
    agent: Option<std::path::PathBuf>,
    raw_mib: u64,
    ubi_mib: u64,
    changed_pct: u64,
}

fn parse_args() -> Result<Params, String> {
    let mut p = Params {
        agent: None,
        raw_mib: 16,
        ubi_mib: 64,
        changed_pct: 10,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        if pair[0] == "--agent" {
            p.agent = Some(pair.get(1).ok_or("--agent needs a path")?.into());
            continue;
        }
        let v: u64 = pair
            .get(1)
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{} needs a number", pair[0]))?;
        match pair[0].as_str() {
            "--raw-mib" => p.raw_mib = v,
            "--ubi-mib" => p.ubi_mib = v,
            "--changed-pct" => p.changed_pct = v,
            o => return Err(format!("unknown option {o}")),
        }
    }
    Ok(p)
}

/// The guest script. `run NAME CMD…` prints `bench name=NAME rc= secs= rss_kb=`;
/// `count NAME CMD…` prints `erase name=NAME bytes= calls=` from an strace run.
fn script(p: &Params) -> String {
    let raw_blocks = p.raw_mib * 1024 * 1024 / EB;
    let changed = (raw_blocks * p.changed_pct).div_ceil(100);
    let step = raw_blocks / changed;
    let big_blocks = p.ubi_mib * 1024 * 1024 / EB;
    // The raw partition holds the larger image (RSS run); UBI gets the rest.
    let parts = big_blocks + 8;
    format!(
        r#"
up() {{ cut -d' ' -f1 /proc/uptime; }}
run() {{
  name=$1; shift; t0=$(up); rc=0
  time -v -o /tmp/rss "$@" >/tmp/out 2>&1 || rc=$?
  t1=$(up)
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' /tmp/rss)
  echo "bench name=$name rc=$rc secs=$(echo "$t1 $t0" | awk '{{printf "%.2f", $1-$2}}') rss_kb=${{rss:-0}}"
  [ $rc = 0 ] || sed "s/^/$name-out /" /tmp/out | tail -5
}}
count() {{
  name=$1; shift; rc=0
  strace -f -e trace=ioctl -o /tmp/trace "$@" >/tmp/out 2>&1 || rc=$?
  grep -E 'MEMERASE' /tmp/trace | sed -n 's/.*length=\(0x[0-9a-f]*\).*/\1/p' > /tmp/lens || true
  bytes=0; calls=0
  for l in $(cat /tmp/lens); do bytes=$((bytes + l)); calls=$((calls + 1)); done
  echo "erase name=$name rc=$rc bytes=$bytes calls=$calls"
}}
{NAND} parts={parts}
modprobe ubi
RAWDEV=/dev/mtd0
dd if=/dev/urandom of=/tmp/base bs=1048576 count={raw_mib} 2>/dev/null
dd if=/dev/urandom of=/tmp/all bs=1048576 count={raw_mib} 2>/dev/null
cp /tmp/base /tmp/some
i=0; n=0
while [ $n -lt {changed} ]; do
  dd if=/dev/urandom of=/tmp/some bs=131072 seek=$i count=1 conv=notrunc 2>/dev/null
  i=$((i + {step})); n=$((n + 1))
done
echo "setup raw_blocks={raw_blocks} changed_blocks={changed}"
reset() {{ flash_erase -q $RAWDEV 0 0; flashcp /tmp/base $RAWDEV; }}
for img in some all; do
  reset; run agent-$img liminix-agent flashcp --journal /tmp/j /tmp/$img $RAWDEV
  reset; count agent-$img liminix-agent flashcp --journal /tmp/j /tmp/$img $RAWDEV
  reset; run flashcp-$img flashcp /tmp/$img $RAWDEV
  reset; count flashcp-$img flashcp /tmp/$img $RAWDEV
  reset; run flashcp-p-$img flashcp -p /tmp/$img $RAWDEV
  reset; count flashcp-p-$img flashcp -p /tmp/$img $RAWDEV
done
# Cost model: what one 16 MiB read, one SHA-256 and an all-unchanged agent run cost here.
reset
run probe-read dd if=$RAWDEV of=/dev/null bs=131072 count={raw_blocks}
run probe-sha256 sha256sum /tmp/base
run probe-agent-same liminix-agent flashcp --journal /tmp/j /tmp/base $RAWDEV
rm -f /tmp/base /tmp/all /tmp/some
dd if=/dev/urandom of=/tmp/big bs=1048576 count={ubi_mib} 2>/dev/null
flash_erase -q $RAWDEV 0 0
run agent-raw-big liminix-agent flashcp --journal /tmp/j /tmp/big $RAWDEV
flash_erase -q $RAWDEV 0 0
ubiattach -m 1 -d 0 >/dev/null
ubimkvol /dev/ubi0 -N rootfs -s {ubi_mib}MiB >/dev/null
ubiupdatevol /dev/ubi0_0 /tmp/big
dd if=/dev/urandom of=/tmp/u1 bs=1048576 count={ubi_mib} 2>/dev/null
run ubiupdatevol ubiupdatevol /dev/ubi0_0 /tmp/u1
run agent-ubi liminix-agent ubi-update --journal /tmp/j ubi0:rootfs /tmp/big
id=$(ubinfo -d 0 -N rootfs | sed -n 's/^Volume ID: *\([0-9]*\).*/\1/p')
if head -c {ubi_bytes} /dev/ubi0_$id | cmp -s - /tmp/big; then echo "ubi-check equal=1"; else echo "ubi-check equal=0"; fi
"#,
        raw_mib = p.raw_mib,
        ubi_mib = p.ubi_mib,
        ubi_bytes = p.ubi_mib << 20,
    )
}

#[derive(Default, Debug)]
struct Row {
    rc: String,
    secs: f64,
    rss_kb: u64,
    erase_bytes: Option<u64>,
    erase_calls: u64,
}

fn kv(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn collect(out: &VmOutput) -> BTreeMap<String, Row> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for l in out.lines_starting("bench ") {
        let f = kv(l);
        let r = rows.entry(f["name"].to_string()).or_default();
        r.rc = f["rc"].to_string();
        r.secs = f["secs"].parse().unwrap_or(f64::NAN);
        r.rss_kb = f["rss_kb"].parse().unwrap_or(0);
    }
    for l in out.lines_starting("erase ") {
        let f = kv(l);
        let r = rows.entry(f["name"].to_string()).or_default();
        r.erase_bytes = f["bytes"].parse().ok().filter(|_| f["rc"] == "0");
        r.erase_calls = f["calls"].parse().unwrap_or(0);
    }
    rows
}

fn blocks(r: &Row) -> String {
    match r.erase_bytes {
        Some(b) => format!("{} ({} calls)", b / EB, r.erase_calls),
        None => "-".into(),
    }
}

fn status(r: &Row) -> String {
    match r.rc.as_str() {
        "0" => "ok".into(),
        // busybox `time` exits with the signal number, a shell with 128 + it.
        "11" | "139" => "crashed (SIGSEGV)".into(),
        "6" | "134" => "crashed (SIGABRT)".into(),
        rc => format!("failed rc={rc}"),
    }
}

fn print_table(p: &Params, rows: &BTreeMap<String, Row>, changed: &str) {
    let get = |n: &str| rows.get(n);
    println!(
        "\n### Raw write, {} MiB on nandsim (do_delays=1 erase_delay=2 programm_delay=200)\n",
        p.raw_mib
    );
    println!("| case | tool | status | wall s | erased blocks | time vs flashcp | erased vs flashcp | peak RSS KiB |");
    println!("|---|---|---|---|---|---|---|---|");
    for (img, label) in [
        (
            "some",
            format!("{}% changed ({changed} blocks)", p.changed_pct),
        ),
        ("all", "all blocks changed".to_string()),
    ] {
        let base = get(&format!("flashcp-{img}"));
        for tool in ["agent", "flashcp", "flashcp-p"] {
            let Some(r) = get(&format!("{tool}-{img}")) else {
                continue;
            };
            let ratio_t = base.map_or("-".into(), |b| format!("{:.2}", r.secs / b.secs));
            let ratio_e = match (base.and_then(|b| b.erase_bytes), r.erase_bytes) {
                (Some(b), Some(e)) if b > 0 => format!("{:.2}", e as f64 / b as f64),
                _ => "-".into(),
            };
            let tool_name = match tool {
                "flashcp-p" => "flashcp -p",
                t => t,
            };
            println!(
                "| {label} | {tool_name} | {} | {:.2} | {} | {ratio_t} | {ratio_e} | {} |",
                status(r),
                r.secs,
                blocks(r),
                r.rss_kb
            );
        }
    }
    println!("\n### UBI volume update, {} MiB\n", p.ubi_mib);
    println!("| tool | status | wall s | vs ubiupdatevol | peak RSS KiB |");
    println!("|---|---|---|---|---|");
    let base = get("ubiupdatevol");
    for tool in ["ubiupdatevol", "agent-ubi"] {
        if let Some(r) = get(tool) {
            let ratio = base.map_or("-".into(), |b| format!("{:.2}", r.secs / b.secs));
            let name = if tool == "agent-ubi" {
                "agent ubi-update (swap, read-back)"
            } else {
                tool
            };
            println!(
                "| {name} | {} | {:.2} | {ratio} | {} |",
                status(r),
                r.secs,
                r.rss_kb
            );
        }
    }
    println!("\n### Cost model ({} MiB)\n", p.raw_mib);
    println!("| step | wall s |");
    println!("|---|---|");
    for (name, what) in [
        ("probe-read", "read the partition (dd, 128 KiB blocks)"),
        (
            "probe-sha256",
            "SHA-256 of the image (busybox sha256sum, tmpfs)",
        ),
        (
            "probe-agent-same",
            "agent flashcp, nothing changed (hash, compare-read)",
        ),
    ] {
        if let Some(r) = get(name) {
            println!("| {what} | {:.2} |", r.secs);
        }
    }
    if let (Some(small), Some(big)) = (get("agent-some"), get("agent-raw-big")) {
        println!(
            "\nAgent peak RSS, raw flashcp: {} KiB at {} MiB, {} KiB at {} MiB ({} MiB UBI: {} KiB).",
            small.rss_kb,
            p.raw_mib,
            big.rss_kb,
            p.ubi_mib,
            p.ubi_mib,
            get("agent-ubi").map_or(0, |r| r.rss_kb)
        );
    }
}

fn main() -> ExitCode {
    let p = match parse_args() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench-flash: {e}");
            return ExitCode::from(2);
        }
    };
    let built = match &p.agent {
        Some(a) => Ok(a.clone()),
        None => build_static("liminix-agent", StaticTarget::Bin("liminix-agent")),
    };
    let agent = match built {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-flash: {e}");
            return ExitCode::FAILURE;
        }
    };
    let vm = VmBuilder::new()
        .file(&agent, "/bin/liminix-agent")
        .module("nandsim")
        .module("ubi")
        .host_tool("flash_erase")
        .host_tool("flashcp")
        .host_tool("ubiattach")
        .host_tool("ubimkvol")
        .host_tool("ubiupdatevol")
        .host_tool("ubinfo")
        .host_tool("strace")
        .memory_mb(2048)
        .timeout(3000)
        .script(&script(&p));
    let out = match vm.run() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench-flash: {e}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::var_os("LIMINIX_VM_SERIAL").is_some() || out.status != Some(0) {
        eprintln!("{}", out.serial);
    }
    let rows = collect(&out);
    let changed = out.field("setup ", "changed_blocks").unwrap_or("?");
    print_table(&p, &rows, changed);
    if let Some(eq) = out.field("ubi-check ", "equal") {
        println!("UBI read-back after the agent's update equal to the image: {eq}");
    }
    println!(
        "\nGuest ran {:.0} s in QEMU TCG.",
        out.elapsed.as_secs_f64()
    );
    match out.status {
        Some(0) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
