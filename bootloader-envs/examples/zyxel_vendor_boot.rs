//! The Zyxel vendor U-Boot's boot decision, as a program for VM tests: reads the
//! bootconfig erase block of an MTD device, applies
//! [`liminix_bootenv::zyxel::vendor_boot_decision_block`] (docs/formats/zyxel-bootconfig.md:
//! a NEW image is marked invalid before it is booted) and writes the block back when
//! the model rewrites it, as the vendor loader does. Prints the image it would boot.
//!
//! Usage: `zyxel_vendor_boot /dev/mtdN`

use std::path::Path;
use std::process::ExitCode;

use liminix_bootenv::devices::MtdFlash;
use liminix_bootenv::flash::Flash;
use liminix_bootenv::zyxel::vendor_boot_decision_block;

fn run(dev: &str) -> Result<(u8, bool), String> {
    let mtd = liminix_mtd::MtdDevice::open(Path::new(dev), true).map_err(|e| e.to_string())?;
    let mut flash = MtdFlash(mtd);
    let mut block = vec![0u8; flash.info().erase_size as usize];
    flash
        .read_at(0, &mut block)
        .map_err(|e| format!("read the bootconfig block: {e}"))?;
    let (image, rewrite) = vendor_boot_decision_block(&block).map_err(|e| e.to_string())?;
    if let Some(b) = &rewrite {
        flash
            .erase(0, b.len() as u64)
            .and_then(|()| flash.write_at(0, b))
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
