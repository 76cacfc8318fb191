//! `kexec`: boot a kernel from a file without going through the boot loader. The running
//! command line is carried over unless replaced or extended; `--load-only` stops after the
//! kernel accepted the image, so the reboot can come later (or never: `--unload`).

use std::path::{Path, PathBuf};

use clap::Args;
use liminix_agent::error::{AgentError, Result};
use liminix_kexec::{BootSpec, KexecError, Loaded, Method};

use crate::cli::Global;

#[derive(Args)]
#[command(
    long_about = "Boot KERNEL now, from RAM, without the boot loader (kexec).\n\n\
        x86_64 hands the kernel to the running one (kexec_file_load: bzImage). 32-bit ARM and \
        MIPS have only kexec_load: the agent lays out the segments itself from ROOT/proc/iomem \
        and the running device tree ROOT/sys/firmware/fdt (ARMv7 zImage; MIPS ELF vmlinux or a \
        legacy uImage, the start of a router's firmware partition). The command line and \
        initramfs reach ARM kernels through /chosen of that device tree, MIPS kernels through \
        firmware-style arguments a stub of the agent's passes (docs/kexec.md).\n\n\
        File systems are synced first; nothing is unmounted and no service is stopped.",
    after_help = "Examples:\n  \
        liminix-agent kexec --kernel /boot/zImage --initrd /run/maintenance.cpio --append 'single'\n  \
        liminix-agent kexec --kernel vmlinux --load-only --json   # check that the kernel takes it\n  \
        liminix-agent kexec            # start the kernel loaded with --load-only\n  \
        liminix-agent kexec --unload"
)]
pub struct KexecArgs {
    /// The kernel image to boot (bzImage, ARM zImage, MIPS ELF, uImage); without it, the one
    /// loaded earlier with --load-only starts
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// The initramfs (a cpio, compressed as the kernel accepts)
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// The whole command line of the new kernel (default: the running kernel's, /proc/cmdline)
    #[arg(long, value_name = "S", conflicts_with = "append", requires = "kernel")]
    pub command_line: Option<String>,
    /// Words added to the running kernel's command line
    #[arg(long, value_name = "S", requires = "kernel")]
    pub append: Option<String>,
    /// Load the kernel and stop: `liminix-agent kexec` without --kernel starts it later
    #[arg(long, requires = "kernel")]
    pub load_only: bool,
    /// Forget a loaded kernel
    #[arg(long, conflicts_with_all = ["kernel", "initrd", "command_line", "append", "load_only"])]
    pub unload: bool,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(AgentError::io("reading", path))
}

fn command_line(root: &Path, a: &KexecArgs) -> Result<String> {
    if let Some(s) = &a.command_line {
        return Ok(s.clone());
    }
    liminix_kexec::carried_command_line(root, a.append.as_deref()).map_err(kexec_error)
}

pub fn run(g: &Global, a: &KexecArgs) -> Result<()> {
    let root = g.device()?;
    if a.unload {
        liminix_kexec::unload().map_err(kexec_error)?;
        eprintln!("no kernel is loaded for kexec any more");
        return Ok(());
    }
    let Some(kernel) = &a.kernel else {
        eprintln!("syncing and starting the kernel loaded earlier");
        liminix_agent::steplog::log(&root, "kexec: starting the kernel loaded earlier");
        return match liminix_kexec::execute_loaded() {
            Ok(never) => match never {},
            Err(e) => Err(kexec_error(e)),
        };
    };
    let spec = BootSpec {
        kernel: read(kernel)?,
        initramfs: a.initrd.as_deref().map(read).transpose()?,
        command_line: command_line(root.dir(), a)?,
    };
    let loaded = liminix_kexec::load(root.dir(), &spec).map_err(kexec_error)?;
    report(g, &loaded, a.load_only);
    if a.load_only {
        return Ok(());
    }
    liminix_agent::steplog::log(&root, &format!("kexec: starting {}", kernel.display()));
    match liminix_kexec::execute(loaded) {
        Ok(never) => match never {},
        Err(e) => Err(kexec_error(e)),
    }
}

fn report(g: &Global, loaded: &Loaded, load_only: bool) {
    let (method, segments) = match &loaded.method {
        Method::File => ("kexec_file_load", Vec::new()),
        Method::Segments(l) => ("kexec_load", l.segments.clone()),
    };
    let entry = match &loaded.method {
        Method::Segments(l) => Some(format!("{:#x}", l.entry)),
        Method::File => None,
    };
    if g.json {
        let segs: Vec<_> = segments
            .iter()
            .map(|s| {
                serde_json::json!({"what": s.what, "address": format!("{:#x}", s.address),
                    "size": s.size, "bytes": s.data.len()})
            })
            .collect();
        let doc = serde_json::json!({"format": loaded.format.name(), "method": method,
            "entry": entry, "segments": segs, "command_line": loaded.command_line,
            "executing": !load_only});
        println!("{doc}");
    } else {
        eprintln!("loaded the {} with {method}", loaded.format.name());
        for s in &segments {
            eprintln!(
                "  {:#010x}  {:>10} bytes  {}",
                s.address,
                s.data.len(),
                s.what
            );
        }
        eprintln!("  command line: {}", loaded.command_line);
        let carried = |s: &liminix_kexec::Segment| {
            s.what == "device tree" || s.what == liminix_kexec::mips_boot::WHAT
        };
        if method == "kexec_load" && !segments.iter().any(carried) {
            eprintln!(
                "liminix-agent: warning: no ROOT/sys/firmware/fdt: the new kernel gets no command \
                 line or initramfs location from us (docs/kexec.md)"
            );
        }
        if !load_only {
            eprintln!("syncing and starting it now");
        }
    }
    // The reboot ends this process: what was printed must be out first.
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

fn kexec_error(e: KexecError) -> AgentError {
    AgentError::Kexec(e)
}
