//! The Zyxel vendor U-Boot's boot decision, as a program for VM tests: reads the
//! bootconfig erase block of an MTD device, applies
//! [`liminix_bootenv::zyxel::vendor_boot_decision_block`] (docs/formats/zyxel-bootconfig.md:
//! a NEW image is marked invalid before it is booted) and writes the block back when
//! the model rewrites it, as the vendor loader does. Prints the image it would boot.
//!
//! Usage: `zyxel_vendor_boot /dev/mtdN`

use std::path::Path;
use std::process::ExitCode;

use liminix_bootenv::zyxel::vendor_boot_decision_block;
use liminix_flash::{erase_range, Flash, MtdFlash};

fn run(dev: &str) -> Result<(u8, bool), String> {
    let mut flash = MtdFlash::open(Path::new(dev), true).map_err(|e| e.to_string())?;
    let mut block = vec![0u8; flash.geometry().erase_size as usize];
    flash
        .read(0, &mut block)
        .map_err(|e| format!("read the bootconfig block: {e}"))?;
    let (image, rewrite) = vendor_boot_decision_block(&block).map_err(|e| e.to_string())?;
    if let Some(b) = &rewrite {
        erase_range(&mut flash, 0, b.len() as u64)
            .and_then(|()| flash.program(0, b))
            .map_err(|e| format!("write the bootconfig block: {e}"))?;
    }
    Ok((image, rewrite.is_some()))
}

fn main() -> ExitCode {
    let Some(dev) = std::env::args().nth(1) else {
        eprintln!("usage: zyxel_vendor_boot /dev/mtdN");
        return ExitCode::from(2);
    };
    match run(&dev) {
        Ok((image, rewritten)) => {
            let done = if rewritten { "rewritten" } else { "untouched" };
            println!("vendor-uboot image={image} bootconfig={done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zyxel_vendor_boot: {dev}: {e}");
            ExitCode::FAILURE
        }
    }
}
