use std::io::Write;
use std::path::{Path, PathBuf};

use liminix_build_tools::image::timestamp;
use liminix_build_tools::output::{self, Inputs};
use liminix_build_tools::pack::PackError;
use liminix_recovery::network::{check_ip, Network};
use liminix_recovery::root::applets;
use liminix_recovery::{cpio, Maintenance, Parts};

#[derive(clap::Args)]
#[command(
    after_help = "Writes the maintenance root (levitate's) as a gzip-compressed newc cpio: a kernel's\n\
    initramfs, for the recovery stick and tftpboot outputs. Reproducible with SOURCE_DATE_EPOCH."
)]
pub struct Args {
    /// The static liminix-agent for the device's CPU (also flashcp, fw_printenv, fw_setenv)
    #[arg(long, value_name = "FILE")]
    agent: PathBuf,
    /// busybox for the device's CPU (static, or with its libraries below --lib-root)
    #[arg(long, value_name = "FILE")]
    busybox: PathBuf,
    /// dropbear for the device's CPU
    #[arg(long, value_name = "FILE")]
    dropbear: PathBuf,
    /// root's authorized_keys file
    #[arg(long, value_name = "FILE")]
    authorized_keys: PathBuf,
    /// A dropbear host key (repeatable); without one, dropbear makes a key at the first login
    #[arg(long = "host-key", value_name = "FILE")]
    host_keys: Vec<PathBuf>,
    /// An address with its prefix length for --dev (repeatable), e.g. 192.168.8.1/24
    #[arg(long = "address", value_name = "CIDR")]
    addresses: Vec<String>,
    /// The default gateway
    #[arg(long, value_name = "IP")]
    gateway: Option<String>,
    /// The interface the addresses go on
    #[arg(long, value_name = "IF", default_value = "eth0")]
    dev: String,
    /// Where dropbear's shared libraries are found (a sysroot of the device's CPU)
    #[arg(long, value_name = "DIR", default_value = "/")]
    lib_root: PathBuf,
    /// An interface that gets its address by DHCP (repeatable), e.g. the stick's LAN port
    #[arg(long = "dhcp", value_name = "IF")]
    dhcp: Vec<String>,
    /// The archive to write (maintenance.cpio.gz)
    #[arg(long, value_name = "FILE", required_unless_present = "stick")]
    out: Option<PathBuf>,
    #[command(flatten)]
    stick: super::stick::StickArgs,
}

pub fn run(a: Args) -> super::Result {
    let mut network = Network::default();
    for cidr in &a.addresses {
        network.add_address(&a.dev, cidr)?;
    }
    for dev in &a.dhcp {
        network.add_dhcp(dev)?;
    }
    if let Some(gw) = &a.gateway {
        check_ip(gw)?;
        network.add_route(&format!("default via {gw} dev {}", a.dev))?;
    }
    let authorized_keys =
        std::fs::read(&a.authorized_keys).map_err(io("reading", &a.authorized_keys))?;
    let parts = Parts {
        applets: applets(&a.busybox),
        agent: a.agent.clone(),
        busybox: a.busybox.clone(),
        dropbear: a.dropbear.clone(),
        lib_root: a.lib_root.clone(),
        host_keys: a.host_keys.clone(),
        authorized_keys,
        network,
    };
    let mut inputs = Inputs::default();
    for f in [&a.agent, &a.busybox, &a.dropbear, &a.authorized_keys]
        .into_iter()
        .chain(&a.host_keys)
    {
        inputs.file(f);
    }
    a.stick.inputs(&mut inputs);
    for out in a.out.iter().chain(&a.stick.stick) {
        output::check_file(out, &inputs)?;
    }
    let mut root = Maintenance::build(&parts)?;
    a.stick.add_to(&mut root.tree)?;
    let mut archive = Vec::new();
    cpio::write_gz(&root.tree, timestamp()?, &mut archive)?;
    if let Some(out) = &a.out {
        output::write_file(out, 0o644, |f, tmp| {
            f.write_all(&archive).map_err(io("writing", tmp))
        })?;
    }
    eprintln!(
        "maintenance root: {} entries, {} bytes compressed, {} KiB in RAM once unpacked",
        root.tree.len(),
        archive.len(),
        root.ram_bytes() / 1024
    );
    a.stick.write(archive)
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PackError + 'a {
    move |source| PackError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}
