use std::path::PathBuf;

use clap::Args;
use liminix_agent::error::AgentError;
use liminix_agent::error::Result;
use liminix_agent::levitate::{
    carry_config, check_ram, describe, initramfs, prepare_carrying, prepared, running_kernel,
    switch, LevitateError,
};
use liminix_agent::root::DeviceRoot;
use liminix_kexec::BootSpec;
use liminix_recovery::network::{check_ip, Network};
use liminix_recovery::system::Choices;

use crate::cli::Global;

#[derive(Args)]
#[command(
    after_help = "Copies a maintenance system (this agent, busybox, dropbear with the device's host keys\n\
    and root's authorized keys, the current addresses and routes) to /run/maintenance, then asks\n\
    PID 1 (s6-svscan) to stop: its .s6-svscan/finish runs /run/maintenance/exec, which ends every\n\
    process and starts the maintenance system as PID 1. ssh answers again at the same address\n\
    with the same host key; the flash is free: `flashcp -v firmware.bin mtd:firmware`, then\n\
    `reboot`. Refused when the root would not fit in MemAvailable with 8 MiB to spare."
)]
pub struct LevitateArgs {
    /// Only prepare: write /run/maintenance (with --kexec: load the kernel and stop, for
    /// `liminix-agent kexec` to start later); PID 1 keeps running
    #[arg(long)]
    pub no_switch: bool,
    /// Boot the running kernel again (kexec) with the maintenance root as its initramfs and
    /// the running command line, instead of handing over through PID 1
    #[arg(long)]
    pub kexec: bool,
    /// With --kexec: this kernel image instead of ROOT/boot/vmlinuz-$(uname -r)
    #[arg(long, value_name = "FILE", requires = "kexec")]
    pub kernel: Option<PathBuf>,
    /// With --kexec: words added to the command line
    #[arg(long, value_name = "S", requires = "kexec")]
    pub append: Option<String>,
    /// The dropbear to copy (default: the running one, else /bin, /sbin, /usr/bin, /usr/sbin)
    #[arg(long, value_name = "FILE")]
    pub dropbear: Option<PathBuf>,
    /// The busybox to copy (default: ROOT/bin/busybox)
    #[arg(long, value_name = "FILE")]
    pub busybox: Option<PathBuf>,
    /// Use this address (on --dev) instead of the current ones (repeatable)
    #[arg(long = "address", value_name = "CIDR")]
    pub addresses: Vec<String>,
    /// With --address: the default gateway
    #[arg(long, value_name = "IP", requires = "addresses")]
    pub gateway: Option<String>,
    /// With --address: the interface
    #[arg(long, value_name = "IF", default_value = "eth0")]
    pub dev: String,
    /// Move FILE (below /run, e.g. a bundle kept by `image-plan --keep`) into the maintenance
    /// root, where it has the same path
    #[arg(long, value_name = "FILE", conflicts_with = "kexec")]
    pub carry: Option<PathBuf>,
}

pub fn run(g: &Global, a: &LevitateArgs) -> Result<()> {
    let root = g.device()?;
    let choices = Choices {
        busybox: a.busybox.clone(),
        dropbear: a.dropbear.clone(),
        network: given_network(a).map_err(LevitateError::from)?,
    };
    let agent = std::env::current_exe().map_err(liminix_agent::error::AgentError::io(
        "finding",
        "/proc/self/exe",
    ))?;
    if a.kexec {
        return kexec(g, a, &root, &agent, &choices);
    }
    let prepared = prepare_carrying(&root, &agent, &choices, a.carry.as_deref())?;
    if g.json {
        let v = serde_json::json!({"prepared": prepared, "switched": !a.no_switch});
        println!("{v}");
    } else {
        println!(
            "maintenance root ready in {}: {} entries, {} KiB of RAM ({} KiB available), {} host key(s), addresses: {}",
            prepared.dir.display(),
            prepared.entries,
            prepared.ram_bytes / 1024,
            prepared.available_bytes / 1024,
            prepared.host_keys,
            if prepared.addresses.is_empty() { "none".to_string() } else { prepared.addresses.join(", ") },
        );
    }
    if a.no_switch {
        return Ok(());
    }
    switch(&root)?;
    if !g.json {
        println!("PID 1 is stopping: log in again in a few seconds (same address, same host key)");
    }
    Ok(())
}

fn given_network(
    a: &LevitateArgs,
) -> std::result::Result<Option<Network>, liminix_recovery::RecoveryError> {
    if a.addresses.is_empty() {
        return Ok(None);
    }
    let mut net = Network::default();
    for cidr in &a.addresses {
        net.add_address(&a.dev, cidr)?;
    }
    if let Some(gw) = &a.gateway {
        check_ip(gw)?;
        net.add_route(&format!("default via {gw} dev {}", a.dev))?;
    }
    Ok(Some(net))
}

/// The maintenance root as the initramfs of a kexec'd kernel: nothing is written to disk, and
/// the RAM check counts the compressed archive too (the kernel holds it until it is unpacked).
fn kexec(
    g: &Global,
    a: &LevitateArgs,
    root: &DeviceRoot,
    agent: &std::path::Path,
    choices: &Choices,
) -> Result<()> {
    let (parts, mut maintenance) = describe(root, agent, choices)?;
    // A fresh kernel has loaded no module: carry the running system's (and its flash set-up).
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let carried = liminix_recovery::carry::from_system(root.dir(), &release, &[])
        .and_then(|c| c.add_to(&mut maintenance.tree).map(|()| c))
        .map_err(LevitateError::from)?;
    carry_config(root, &mut maintenance)?;
    let archive = initramfs(&maintenance)?;
    let needed = maintenance.ram_bytes().saturating_add(archive.len() as u64);
    let available = check_ram(root, needed)?;
    let (kernel, kernel_path) = kernel(root, a.kernel.as_deref())?;
    let command_line = liminix_kexec::carried_command_line(root.dir(), a.append.as_deref())?;
    let spec = BootSpec {
        kernel,
        initramfs: Some(archive),
        command_line,
    };
    let loaded = liminix_kexec::load(root.dir(), &spec)?;
    let report = prepared(&parts, &maintenance, kernel_path, available);
    if g.json {
        let v = serde_json::json!({"prepared": report, "kexec": true, "modules": carried.modules,
            "command_line": loaded.command_line, "switched": !a.no_switch});
        println!("{v}");
    } else {
        println!(
            "maintenance root loaded as the initramfs of {}: {} entries, {} KiB of RAM, {} module(s) carried, command line: {}",
            report.dir.display(),
            report.entries,
            needed / 1024,
            carried.modules.len(),
            loaded.command_line
        );
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    if a.no_switch {
        return Ok(());
    }
    liminix_agent::steplog::log(root, "kexec: levitate into the maintenance root");
    match liminix_kexec::execute(loaded) {
        Ok(never) => match never {},
        Err(e) => Err(e.into()),
    }
}

/// The kernel to boot: `--kernel`, else ROOT/boot/vmlinuz-RELEASE, else the uImage at the start
/// of the router's `firmware` (or `kernel`) partition, unwrapped where the loader wants the
/// kernel itself (x86 bzImage, ARM zImage, MIPS ELF).
fn kernel(root: &DeviceRoot, given: Option<&std::path::Path>) -> Result<(Vec<u8>, PathBuf)> {
    if let Some(k) = given {
        let data = std::fs::read(k).map_err(AgentError::io("reading", k))?;
        return Ok((data, k.to_path_buf()));
    }
    let tried = match running_kernel(root) {
        Ok(p) => {
            let data = std::fs::read(&p).map_err(AgentError::io("reading", &p))?;
            return Ok((data, p));
        }
        Err(AgentError::Levitate(LevitateError::NoKernel { tried, .. })) => tried,
        Err(e) => return Err(e),
    };
    let (uimage, from) = liminix_agent::levitate::firmware_kernel(root)
        .map_err(|detail| LevitateError::NoKernel { tried, detail })?;
    let (kernel, _) = liminix_agent::trial::nor::kernel_of(&from, &uimage)?;
    Ok((kernel, PathBuf::from(from)))
}
