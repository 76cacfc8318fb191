//! Real NAND through the kernel: an x86_64 Linux VM (QEMU TCG) with nandsim split into
//! two partitions, each with its first block marked bad. libubootenv's fw_setenv edits
//! a redundant environment on /dev/mtd0, ours the same on /dev/mtd1 (through
//! liminix-mtd's ioctls, skipping the bad block); after every step the outputs and the
//! good blocks of the two partitions must be identical; then the same with a redundant
//! environment in two UBI volumes per side (UBI_IOCVOLUP through liminix-ubi) (except after steps where
//! libubootenv reads a file through stdio and leaves heap garbage after the terminator).
//! Last, zyxel-bootconfig edits a bootconfig on a real MTD partition. About 20 s.

mod common;

use liminix_vm::VmBuilder;

/// 256 MiB, 128 KiB blocks, 2 KiB pages; two 1 MiB partitions; block 0 of each bad.
const NANDSIM: &str = "first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 parts=8,8,32,32,4 badblocks=0,8";

/// Run by the harness's `sh -e` after nandsim and ubi are loaded; steps report their exit
/// status instead of ending the script.
const SCRIPT: &str = r#"set +e
mkdir -p /var/lock /tmp
cat /proc/mtd
for n in 0 1; do
  printf '/dev/mtd%s 0x0 0x20000 0x20000 2\n/dev/mtd%s 0x40000 0x20000 0x20000 2\n' $n $n > /tmp/cfg$n
done
printf 'bootcmd=run boot_a\nbootdelay=3\nslot=a\n' > /tmp/defaults
printf '# script\nslot=b\nupgrade_available=1\nbootcount=0\nbootdelay=\n' > /tmp/script
A=/tmp/cfg0; B=/tmp/cfg1
dump() { # $1 = real|mine
  if [ $A = /tmp/cfg0 ]; then
    n=0; [ $1 = mine ] && n=1
    dd if=/dev/mtd$n bs=131072 skip=1 count=5 2>/dev/null
  else
    n=0; [ $1 = mine ] && n=1
    cat /dev/ubi${n}_0 /dev/ubi${n}_1
  fi
}
step() {
  name=$1; shift
  fw_$name -c $A "$@" >/tmp/r.out 2>/tmp/r.err; rr=$?
  /bin/bootenv-tools fw_$name -c $B "$@" >/tmp/m.out 2>/tmp/m.err; rm=$?
  dump real >/tmp/r.img
  dump mine >/tmp/m.img
  o=same; cmp -s /tmp/r.out /tmp/m.out || o=DIFF
  e=same; cmp -s /tmp/r.err /tmp/m.err || e=DIFF
  i=same; cmp -s /tmp/r.img /tmp/m.img || i=DIFF
  echo "STEP $name $* :: rc $rr $rm out $o err $e img $i"
  cat /tmp/m.out
}
step printenv -f /tmp/defaults
step setenv -f /tmp/defaults slot a
step setenv bootdelay 1
step setenv extra "with spaces = x"
echo STRICT
step setenv slot b upgrade_available 1
step printenv
step setenv extra
step setenv bootdelay 1
step printenv -n slot bootdelay
# libubootenv reads the script through stdio; its heap then leaves garbage after the
# terminator, so from here only outputs are compared.
echo LOOSE
step setenv -s /tmp/script
step printenv
echo UBI
# two UBI devices on mtd2 (real tool) and mtd3 (ours), two 128 KiB volumes each
/usr/sbin/ubiattach -m 2 -d 0 -b 1 && /usr/sbin/ubiattach -m 3 -d 1 -b 1 || echo UBI-ATTACH-FAILED
for d in 0 1; do
  /usr/sbin/ubimkvol /dev/ubi$d -N env_a -s 0x20000 >/dev/null && /usr/sbin/ubimkvol /dev/ubi$d -N env_b -s 0x20000 >/dev/null || echo UBI-MKVOL-FAILED
  printf '/dev/ubi%s:env_a 0x0 0x20000\n/dev/ubi%s:env_b 0x0 0x20000\n' $d $d > /tmp/ucfg$d
done
A=/tmp/ucfg0; B=/tmp/ucfg1
step setenv -f /tmp/defaults slot a
step setenv bootdelay 1
echo STRICT
step setenv slot b
step setenv upgrade_available 1 bootcount 0
step printenv
step setenv upgrade_available
step printenv
echo ZYXEL
Z="/bin/bootenv-tools zyxel-bootconfig /dev/mtd4"
$Z get-status
$Z set-image-status 0 valid && $Z set-active-image 0 && $Z set-image-status 1 new
$Z get-status
dd if=/dev/mtd4 bs=1 count=4 2>/dev/null | od -An -tx1
echo VM-DONE
"#;

#[test]
fn fw_setenv_on_nandsim_matches_libubootenv() {
    common::need("/usr/bin/fw_setenv", "libubootenv-tool");
    common::need("/usr/bin/fw_printenv", "libubootenv-tool");
    let out = VmBuilder::new()
        .modprobe("nandsim", NANDSIM)
        .modprobe("ubi", "")
        .executable(env!("CARGO_BIN_EXE_bootenv-tools"), "/bin/bootenv-tools")
        .executable("/usr/bin/fw_printenv", "/usr/bin/fw_printenv")
        .executable("/usr/bin/fw_setenv", "/usr/bin/fw_setenv")
        .host_tool("ubiattach")
        .host_tool("ubimkvol")
        .script(SCRIPT)
        .timeout(180)
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    out.assert_success();
    let con = out.serial;
    assert!(con.contains("VM-DONE"), "VM did not finish:\n{con}");
    assert!(con.contains("NAND simulator partition 1"), "{con}");
    let mut strict = false;
    let mut steps = 0;
    for line in con.lines() {
        match line {
            "STRICT" => strict = true,
            "LOOSE" | "UBI" => strict = false,
            _ => {}
        }
        let Some(rest) = line.strip_prefix("STEP ") else {
            continue;
        };
        steps += 1;
        let f: Vec<&str> = rest
            .rsplit(" :: ")
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // rc R M out X err Y img Z
        assert_eq!(f[1], f[2], "exit status differs: {line}");
        assert_eq!(f[4], "same", "stdout differs: {line}");
        assert_eq!(f[6], "same", "stderr differs: {line}");
        assert_eq!(f[1], "0", "step failed: {line}\n{con}");
        if strict {
            assert_eq!(f[8], "same", "flash contents differ: {line}\n{con}");
        }
    }
    assert!(
        !con.contains("UBI-ATTACH-FAILED") && !con.contains("UBI-MKVOL-FAILED"),
        "{con}"
    );
    assert_eq!(steps, 18, "{con}");
    // the printenv after the script shows its effect
    let tail = con.split("\nUBI\n").next().unwrap();
    let tail = tail.rsplit("STEP printenv  :: ").next().unwrap();
    let vars: Vec<&str> = tail.lines().skip(1).collect();
    assert_eq!(
        vars,
        [
            "bootcmd=run boot_a",
            "bootcount=0",
            "slot=b",
            "upgrade_available=1"
        ],
        "{con}"
    );
    assert!(!tail.contains("bootdelay="), "{con}");
    // zyxel-bootconfig on a real MTD partition (erase + write through liminix-mtd)
    let z = con.split("\nZYXEL\n").nth(1).unwrap();
    assert!(
        z.starts_with(
            "Active Image: 1\nImage 0 Status: invalid\nImage 1 Status: invalid\n\
             Active Image: 0\nImage 0 Status: valid\nImage 1 Status: new\n 48 00 ff ff\n"
        ),
        "{z}"
    );
    // and the UBI run ends with the expected variables
    let ubi = con.split("\nUBI\n").nth(1).unwrap();
    let last = ubi.rsplit("STEP printenv  :: ").next().unwrap();
    let vars: Vec<&str> = last
        .split("\nZYXEL\n")
        .next()
        .unwrap()
        .lines()
        .skip(1)
        .collect();
    assert_eq!(
        vars,
        ["bootcmd=run boot_a", "bootcount=0", "bootdelay=1", "slot=b"],
        "{con}"
    );
}
