//! The CPU family a board runs, and the Rust target the agent for it is built for.

use serde::{Deserialize, Serialize};

/// The CPU families of the supported boards; each has one static agent build
/// (`scripts/build-agents.sh`, `docs/agents.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cpu {
    X86_64,
    Aarch64,
    /// ARMv7 with hard float (the Turris Omnia's Armada 385).
    Armv7,
    /// 32-bit little-endian MIPS (MT7620, MT7628, MT7621).
    Mipsel,
    /// 32-bit big-endian MIPS (QCA9531 of the GL-AR750).
    Mips,
}

impl Cpu {
    pub const ALL: [Cpu; 5] = [
        Cpu::X86_64,
        Cpu::Aarch64,
        Cpu::Armv7,
        Cpu::Mipsel,
        Cpu::Mips,
    ];

    /// The name board files and command lines use.
    pub fn name(self) -> &'static str {
        match self {
            Cpu::X86_64 => "x86_64",
            Cpu::Aarch64 => "aarch64",
            Cpu::Armv7 => "armv7",
            Cpu::Mipsel => "mipsel",
            Cpu::Mips => "mips",
        }
    }

    /// The Rust target triple the agent for this CPU is built for.
    pub fn triple(self) -> &'static str {
        match self {
            Cpu::X86_64 => "x86_64-unknown-linux-musl",
            Cpu::Aarch64 => "aarch64-unknown-linux-musl",
            Cpu::Armv7 => "armv7-unknown-linux-gnueabihf",
            Cpu::Mipsel => "mipsel-unknown-linux-gnu",
            Cpu::Mips => "mips-unknown-linux-gnu",
        }
    }

    pub fn from_name(name: &str) -> Option<Cpu> {
        Cpu::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn from_triple(triple: &str) -> Option<Cpu> {
        Cpu::ALL.into_iter().find(|c| c.triple() == triple)
    }
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
