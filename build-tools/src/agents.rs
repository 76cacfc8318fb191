//! The static agents an `update.sh` output carries, one per CPU family (`share/liminix/agents/
//! <triple>/liminix-agent` with its sha256), and how an ELF header names the CPU it runs on.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use liminix_boards::Cpu;
use sha2::{Digest, Sha256};

/// File name of an agent below its target triple's directory.
pub const AGENT_FILE: &str = "liminix-agent";
/// Its sha256, in `sha256sum` format.
pub const SHA_FILE: &str = "liminix-agent.sha256";

#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error("no {cpu} agent at {path}: run `bash scripts/build-agents.sh`, or name the directory holding <triple>/liminix-agent with --agents-dir")]
    Missing { cpu: Cpu, path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not an agent for {cpu}: it is {found}")]
    WrongCpu {
        path: PathBuf,
        cpu: Cpu,
        found: String,
    },
    #[error("{path} has sha256 {actual}, but {sha_file} says {expected}")]
    Hash {
        path: PathBuf,
        sha_file: PathBuf,
        actual: String,
        expected: String,
    },
    #[error("unknown CPU {0:?} (known: x86_64, aarch64, armv7, mipsel, mips, or all)")]
    UnknownCpu(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AgentsError + '_ {
    move |source| AgentsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The fields of an ELF header that tell which CPU an executable is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elf {
    pub class64: bool,
    pub little_endian: bool,
    pub machine: u16,
    pub flags: u32,
}

const EM_MIPS: u16 = 8;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
/// ARM EABI: the executable passes floats in VFP registers (hard float).
const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;

/// Bytes of the header [`Elf::parse`] needs: the 32-bit header, and a 64-bit one up to `e_flags`.
pub const HEADER_LEN: usize = 52;

impl Elf {
    /// Reads the identification, `e_machine` and `e_flags` of an ELF header.
    pub fn parse(b: &[u8]) -> Option<Elf> {
        if b.len() < HEADER_LEN || &b[..4] != b"\x7fELF" {
            return None;
        }
        let class64 = match b[4] {
            1 => false,
            2 => true,
            _ => return None,
        };
        let little_endian = match b[5] {
            1 => true,
            2 => false,
            _ => return None,
        };
        let u16_at = |o: usize| {
            let v = [b[o], b[o + 1]];
            if little_endian {
                u16::from_le_bytes(v)
            } else {
                u16::from_be_bytes(v)
            }
        };
        let u32_at = |o: usize| {
            let v = [b[o], b[o + 1], b[o + 2], b[o + 3]];
            if little_endian {
                u32::from_le_bytes(v)
            } else {
                u32::from_be_bytes(v)
            }
        };
        Some(Elf {
            class64,
            little_endian,
            machine: u16_at(18),
            flags: u32_at(if class64 { 48 } else { 36 }),
        })
    }

    /// The CPU family whose agent runs where this executable runs.
    pub fn cpu(&self) -> Option<Cpu> {
        match (self.machine, self.class64, self.little_endian) {
            (EM_X86_64, true, true) => Some(Cpu::X86_64),
            (EM_AARCH64, true, true) => Some(Cpu::Aarch64),
            (EM_ARM, false, true) if self.flags & EF_ARM_ABI_FLOAT_HARD != 0 => Some(Cpu::Armv7),
            (EM_MIPS, false, true) => Some(Cpu::Mipsel),
            (EM_MIPS, false, false) => Some(Cpu::Mips),
            _ => None,
        }
    }

    /// For messages: `32-bit little-endian, e_machine 8, e_flags 0x70001007`.
    pub fn describe(&self) -> String {
        format!(
            "{}-bit {}-endian, e_machine {}, e_flags {:#x}",
            if self.class64 { 64 } else { 32 },
            if self.little_endian { "little" } else { "big" },
            self.machine,
            self.flags
        )
    }
}

/// The CPU family of a device, from `uname -m` and the ELF header of its busybox. The header
/// decides (the kernel may be 64-bit under a 32-bit userland); `uname -m` rules out ARM cores
/// older than ARMv7, and stands alone only where it cannot be ambiguous.
pub fn device_cpu(machine: &str, elf: Option<&Elf>) -> Option<Cpu> {
    match elf.and_then(Elf::cpu) {
        Some(Cpu::Armv7) if !arm_v7_or_later(machine) => None,
        Some(cpu) => Some(cpu),
        None if elf.is_some() => None,
        None => match machine {
            "x86_64" => Some(Cpu::X86_64),
            "aarch64" => Some(Cpu::Aarch64),
            _ => None,
        },
    }
}

fn arm_v7_or_later(machine: &str) -> bool {
    machine.starts_with("armv7") || machine.starts_with("armv8") || machine == "aarch64"
}

/// One agent an `update.sh` output carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carried {
    pub cpu: Cpu,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

fn sha256_of(path: &Path) -> Result<String, AgentsError> {
    let mut file = fs::File::open(path).map_err(io_at(path))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            return Ok(hex::encode(hash.finalize()));
        }
        hash.update(&buf[..n]);
    }
}

fn elf_of(path: &Path) -> Result<Option<Elf>, AgentsError> {
    let mut head = [0u8; HEADER_LEN];
    let mut file = fs::File::open(path).map_err(io_at(path))?;
    Ok(match file.read_exact(&mut head) {
        Ok(()) => Elf::parse(&head),
        Err(_) => None,
    })
}

/// Checks that `path` is an executable for `cpu`.
fn check_cpu(path: &Path, cpu: Cpu) -> Result<(), AgentsError> {
    let elf = elf_of(path)?;
    if elf.as_ref().and_then(Elf::cpu) == Some(cpu) {
        return Ok(());
    }
    Err(AgentsError::WrongCpu {
        path: path.to_owned(),
        cpu,
        found: elf.map_or("not an ELF executable".into(), |e| e.describe()),
    })
}

/// Parses `--agents`: `all`, or CPU names separated by commas.
pub fn parse_cpus(spec: &str) -> Result<Vec<Cpu>, AgentsError> {
    if spec == "all" {
        return Ok(Cpu::ALL.to_vec());
    }
    let mut cpus = Vec::new();
    for name in spec.split(',').map(str::trim) {
        let cpu = Cpu::from_name(name).ok_or_else(|| AgentsError::UnknownCpu(name.into()))?;
        if !cpus.contains(&cpu) {
            cpus.push(cpu);
        }
    }
    Ok(cpus)
}

/// Copies the agent of each CPU from `from/<triple>/liminix-agent` to `to/<triple>/` with its
/// sha256 file, after checking that it is an executable for that CPU. Nothing is copied unless
/// every one is there.
pub fn install(from: &Path, to: &Path, cpus: &[Cpu]) -> Result<Vec<Carried>, AgentsError> {
    let mut sources = Vec::new();
    for &cpu in cpus {
        let path = from.join(cpu.triple()).join(AGENT_FILE);
        if !path.is_file() {
            return Err(AgentsError::Missing { cpu, path });
        }
        check_cpu(&path, cpu)?;
        sources.push((cpu, path));
    }
    sources
        .into_iter()
        .map(|(cpu, source)| {
            let dir = to.join(cpu.triple());
            fs::create_dir_all(&dir).map_err(io_at(&dir))?;
            let path = dir.join(AGENT_FILE);
            let size = fs::copy(&source, &path).map_err(io_at(&path))?;
            let sha256 = sha256_of(&path)?;
            let sha_file = dir.join(SHA_FILE);
            fs::write(&sha_file, format!("{sha256}  {AGENT_FILE}\n")).map_err(io_at(&sha_file))?;
            Ok(Carried {
                cpu,
                path,
                size,
                sha256,
            })
        })
        .collect()
}

/// The agents below `dir`, each checked against its sha256 file.
pub fn carried(dir: &Path) -> Result<Vec<Carried>, AgentsError> {
    let mut found = Vec::new();
    for cpu in Cpu::ALL {
        let path = dir.join(cpu.triple()).join(AGENT_FILE);
        if !path.is_file() {
            continue;
        }
        let sha_file = dir.join(cpu.triple()).join(SHA_FILE);
        let text = fs::read_to_string(&sha_file).map_err(io_at(&sha_file))?;
        let expected = text.split_whitespace().next().unwrap_or("").to_owned();
        let actual = sha256_of(&path)?;
        if actual != expected {
            return Err(AgentsError::Hash {
                path,
                sha_file,
                actual,
                expected,
            });
        }
        let size = fs::metadata(&path).map_err(io_at(&path))?.len();
        found.push(Carried {
            cpu,
            path,
            size,
            sha256: actual,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
