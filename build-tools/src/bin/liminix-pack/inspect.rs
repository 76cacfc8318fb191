use std::io::Read;
use std::path::{Path, PathBuf};

use liminix_build_tools::image::build::inspect;

#[derive(clap::Args)]
pub struct Args {
    /// A bundle, or an image file: uImage, FIT, firmware.bin, squashfs, UBI image, MBR disk
    file: PathBuf,
    /// Print JSON (a bundle's manifest, signers and entry sizes; an image's fields)
    #[arg(long)]
    json: bool,
}

/// The description of an image file, or `None` for a bundle. A disk image is only read as far
/// as its partition table; other images whole.
fn image(path: &Path) -> Result<Option<serde_json::Value>, Box<dyn std::error::Error>> {
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(4096)
        .read_to_end(&mut head)?;
    match inspect::describe(&head) {
        // Anything else is read as a bundle, whose reader names what is wrong with it.
        None => Ok(None),
        Some(v) if v["kind"] == "mbr" => Ok(Some(v)),
        Some(_) => Ok(inspect::describe(&std::fs::read(path)?)),
    }
}

pub fn run(a: Args) -> super::Result {
    if let Some(v) = image(&a.file)? {
        match a.json {
            true => println!("{}", serde_json::to_string_pretty(&v)?),
            false => print!("{}", inspect::text(&v)),
        }
        return Ok(());
    }
    let (h, entries) = liminix_build_tools::pack::index(&a.file)?;
    let m = &h.manifest;
    if a.json {
        let sizes: Vec<_> = entries
            .iter()
            .map(|e| {
                let kind = match e.header.kind {
                    liminix_bundle::EntryKind::StorePath => "path",
                    liminix_bundle::EntryKind::Image => "image",
                };
                serde_json::json!({"kind": kind, "index": e.header.index, "bytes": e.len})
            })
            .collect();
        let signers: Vec<_> = h.signatures.iter().map(|s| s.key.clone()).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"manifest": m, "signers": signers, "entries": sizes})
            )?
        );
        return Ok(());
    }
    println!("board:     {}", m.board);
    if m.has_closure() {
        println!("toplevel:  {}", m.generation.toplevel);
    }
    println!("built:     {} (unix time)", m.generation.build_time);
    println!("epoch:     {}", m.epoch);
    for s in &h.signatures {
        println!("signed by: {}", s.key);
    }
    let packed = |kind| -> u64 {
        entries
            .iter()
            .filter(|e| e.header.kind == kind)
            .map(|e| e.len)
            .sum()
    };
    println!(
        "paths:     {} ({} bytes of NAR, {} bytes packed)",
        m.paths.len(),
        m.total_nar_size(),
        packed(liminix_bundle::EntryKind::StorePath)
    );
    for p in &m.paths {
        println!("  {}  {:>10}  {}", &p.nar_sha256[..12], p.nar_size, p.path);
    }
    if !m.images.is_empty() {
        println!(
            "images:    {} ({} bytes, {} bytes packed)",
            m.images.len(),
            m.total_image_size(),
            packed(liminix_bundle::EntryKind::Image)
        );
    }
    for i in &m.images {
        println!(
            "  {}  {:>10}  {} -> {}",
            &i.sha256[..12],
            i.size,
            i.name,
            i.target
        );
    }
    Ok(())
}
