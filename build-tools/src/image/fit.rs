//! FIT images: a flattened device tree holding the kernel and its device tree blob, each with
//! hash nodes U-Boot checks before booting, and one configuration that pairs them.
//!
//! Crate: `vm-fdt` (rust-vmm; Firecracker builds its guests' device trees with it) writes the
//! blob. It is a writer only, has no dependencies, and refuses bad node and property names,
//! unbalanced nodes and oversized blobs. FIT needs nothing beyond plain nodes and properties, so
//! a device-tree compiler is not called for.

use sha2::{Digest, Sha256};
use vm_fdt::FdtWriter;

use super::{Arch, Compression, ImageError, Payload};

/// The image node names; `/configurations/conf-1` refers to them by these.
pub const KERNEL_NODE: &str = "kernel";
pub const FDT_NODE: &str = "fdt-1";
pub const CONFIG_NODE: &str = "conf-1";

/// The checksum in each image's `hash-N` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Crc32,
}

impl Hash {
    fn algo(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Crc32 => "crc32",
        }
    }

    fn value(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Crc32 => crc32fast::hash(data).to_be_bytes().to_vec(),
        }
    }
}

/// The kernel as it goes into the FIT: `data` already compressed as `compression` says.
#[derive(Clone, Debug)]
pub struct Kernel<'a> {
    pub data: &'a [u8],
    pub compression: Compression,
    pub load: u32,
    pub entry: u32,
}

/// Everything a kernel-plus-fdt FIT holds.
#[derive(Clone, Debug)]
pub struct Fit<'a> {
    pub description: &'a str,
    pub arch: Arch,
    /// Seconds since 1970 (`image::timestamp`).
    pub time: u32,
    pub kernel: Kernel<'a>,
    pub fdt: &'a [u8],
    /// One `hash-N` node per entry, in this order, under each image.
    pub hashes: &'a [Hash],
}

/// The FIT blob.
pub fn write(fit: &Fit) -> Result<Vec<u8>, ImageError> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_u32("timestamp", fit.time)?;
    w.property_string("description", fit.description)?;
    // Addresses (load, entry) are one 32-bit cell, as every supported board's U-Boot reads them.
    w.property_u32("#address-cells", 1)?;
    images(&mut w, fit)?;
    configurations(&mut w, fit)?;
    w.end_node(root)?;
    Ok(w.finish()?)
}

fn images(w: &mut FdtWriter, fit: &Fit) -> Result<(), ImageError> {
    let node = w.begin_node("images")?;
    kernel(w, fit)?;
    fdt(w, fit)?;
    w.end_node(node)?;
    Ok(())
}

fn kernel(w: &mut FdtWriter, fit: &Fit) -> Result<(), ImageError> {
    let k = &fit.kernel;
    let node = w.begin_node(KERNEL_NODE)?;
    w.property_string("description", "Linux kernel")?;
    w.property("data", k.data)?;
    w.property_string("type", Payload::Kernel.fit_name())?;
    w.property_string("arch", fit.arch.fit_name())?;
    w.property_string("os", "linux")?;
    w.property_string("compression", k.compression.fit_name())?;
    w.property_u32("load", k.load)?;
    w.property_u32("entry", k.entry)?;
    hashes(w, k.data, fit.hashes)?;
    w.end_node(node)?;
    Ok(())
}

fn fdt(w: &mut FdtWriter, fit: &Fit) -> Result<(), ImageError> {
    let node = w.begin_node(FDT_NODE)?;
    w.property_string("description", "Flattened device tree blob")?;
    w.property("data", fit.fdt)?;
    w.property_string("type", Payload::FlatDt.fit_name())?;
    w.property_string("arch", fit.arch.fit_name())?;
    w.property_string("compression", Compression::None.fit_name())?;
    hashes(w, fit.fdt, fit.hashes)?;
    w.end_node(node)?;
    Ok(())
}

fn hashes(w: &mut FdtWriter, data: &[u8], hashes: &[Hash]) -> Result<(), ImageError> {
    for (i, hash) in hashes.iter().enumerate() {
        let node = w.begin_node(&format!("hash-{}", i + 1))?;
        w.property("value", &hash.value(data))?;
        w.property_string("algo", hash.algo())?;
        w.end_node(node)?;
    }
    Ok(())
}

fn configurations(w: &mut FdtWriter, fit: &Fit) -> Result<(), ImageError> {
    let node = w.begin_node("configurations")?;
    w.property_string("default", CONFIG_NODE)?;
    let conf = w.begin_node(CONFIG_NODE)?;
    w.property_string("description", fit.description)?;
    w.property_string("kernel", KERNEL_NODE)?;
    w.property_string("fdt", FDT_NODE)?;
    w.end_node(conf)?;
    w.end_node(node)?;
    Ok(())
}
