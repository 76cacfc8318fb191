//! The outputs written to flash: `firmware.bin` for a raw NOR partition, the UBIFS root of a
//! UBI volume, a whole UBI image, and the Zyxel firmware FIT. Each is refused when it does not
//! fit the partition or volume the board gives it.

use std::path::{Path, PathBuf};

use liminix_boards::{RootFs, TargetRef};
use liminix_ubi::image::{write_image, Geometry, ImageParams, VolumeSpec};
use liminix_ubi::VolumeKind;
use sha2::{Digest, Sha256};

use super::outputs::{read_file, write_file};
use super::{fits, io_err, root_image, BuildError, Ctx};
use crate::image::commands::{self, MtdFlash, UbiFlash};
use crate::image::zyxel::{self, ZyxelFitSpec};

/// `data` followed by 0xff (erased flash) up to a multiple of `block`.
fn pad_to(mut data: Vec<u8>, block: u64) -> Vec<u8> {
    let len = data.len() as u64;
    let padded = len.div_ceil(block).saturating_mul(block);
    data.resize(padded as usize, 0xff);
    data
}

/// Records `file` for every board image whose target (or slot-a target) is `target`.
fn for_bundle(ctx: &mut Ctx, target: &str, file: &Path) {
    let board = ctx.req.board;
    for i in &board.images {
        let t = i.target.as_deref().or_else(|| {
            board
                .slots
                .first()?
                .targets
                .get(&i.name)
                .map(String::as_str)
        });
        if t == Some(target) {
            ctx.built
                .bundle_images
                .insert(i.name.clone(), file.to_owned());
        }
    }
}

fn tftp_load(ctx: &Ctx) -> Result<u64, BuildError> {
    ctx.boot
        .tftp_load_address
        .ok_or_else(|| BuildError::Input("the board has no [boot] tftp_load_address".into()))
}

pub(super) fn mtdimage(ctx: &mut Ctx, partition: &str, dir: &Path) -> Result<(), BuildError> {
    let (chip, p) =
        ctx.req.board.partition(partition).ok_or_else(|| {
            BuildError::Input(format!("partition {partition} is not on the board"))
        })?;
    let (erase, size) = (chip.erase_size, p.size);
    let squashfs = read_file(&root_image(ctx, RootFs::Squashfs)?)?;
    let mut firmware = pad_to(ctx.kernel.file.clone(), erase);
    firmware.extend_from_slice(&pad_to(squashfs, erase));
    let place = format!("partition {partition}");
    fits(
        "mtdimage",
        "firmware.bin",
        firmware.len() as u64,
        place,
        size,
    )?;
    let out = dir.join("firmware.bin");
    write_file(&out, &firmware)?;
    let flash_address = ctx
        .boot
        .flash_address
        .ok_or_else(|| BuildError::Input("the board has no [boot] flash_address".into()))?;
    let script = commands::flash_scr_mtd(&MtdFlash {
        tftp: ctx.req.tftp.clone(),
        file: "firmware.bin".into(),
        load_address: tftp_load(ctx)?,
        flash_address,
        partition_size: size,
        command_line: ctx.command_line.clone(),
    });
    write_file(&dir.join("flash.scr"), script.as_bytes())?;
    for_bundle(ctx, &format!("mtd:{partition}"), &out);
    Ok(())
}

pub(super) fn ubimage(ctx: &mut Ctx, volume: &str, dir: &Path) -> Result<(), BuildError> {
    let board = ctx.req.board;
    let target = format!("ubi:{volume}");
    let limit = board
        .images
        .iter()
        .find(|i| i.target.as_deref() == Some(target.as_str()))
        .and_then(|i| board.resolve(&i.name, None).ok())
        .map(|r| r.max_size);
    let root = root_image(ctx, RootFs::Ubifs)?;
    let size = std::fs::metadata(&root)
        .map_err(io_err("reading", &root))?
        .len();
    if let Some(limit) = limit {
        fits(
            "ubimage",
            "the UBIFS root",
            size,
            format!("volume {volume}"),
            limit,
        )?;
    }
    let out = dir.join("rootfs");
    std::fs::copy(&root, &out).map_err(io_err("copying", &root))?;
    let script = commands::flash_scr_ubi(&UbiFlash {
        tftp: ctx.req.tftp.clone(),
        file: "rootfs".into(),
        load_address: tftp_load(ctx)?,
        volume: volume.to_owned(),
    });
    write_file(&dir.join("flash.scr"), script.as_bytes())?;
    for_bundle(ctx, &target, &out);
    Ok(())
}

/// Writes `dir/ubi.img`: a UBI image for `partition` holding the root in `volume`.
pub(super) fn ubivolume(
    ctx: &mut Ctx,
    partition: &str,
    volume: &str,
    autoresize: bool,
    dir: &Path,
) -> Result<PathBuf, BuildError> {
    let board = ctx.req.board;
    let u = board
        .ubi
        .clone()
        .ok_or_else(|| BuildError::Input("ubivolume needs the board's [ubi] section".into()))?;
    let (_, p) = board
        .partition(partition)
        .ok_or_else(|| BuildError::Input(format!("partition {partition} is not on the board")))?;
    let part_size = p.size;
    let root = read_file(&root_image(ctx, ctx.boot.root_fs)?)?;
    let small = |v: u64, what: &str| {
        u32::try_from(v)
            .map_err(|_| BuildError::Input(format!("UBI {what} {v} does not fit 32 bits")))
    };
    // The VID header sits in the second min-I/O unit, as ubinize puts it without sub-pages.
    let geometry = Geometry {
        peb_size: small(u.peb_size, "PEB size")?,
        min_io: small(u.min_io, "min I/O")?,
        subpage: small(u.min_io, "min I/O")?,
        vid_hdr_offset: None,
    };
    let layout = geometry.layout()?;
    if u64::from(layout.leb_size) != u.leb_size {
        return Err(BuildError::Input(format!(
            "the board's LEB size {} is not the {} its PEB and min I/O give",
            u.leb_size, layout.leb_size
        )));
    }
    let mut vol = VolumeSpec::new(0, volume, VolumeKind::Dynamic, &root);
    vol.autoresize = autoresize;
    // ubinize draws the image sequence number at random; a hash of the contents keeps it
    // fixed for the same inputs.
    let digest = Sha256::digest(&root);
    let params = ImageParams {
        image_seq: u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]),
        erase_counter: 0,
    };
    let mut img = Vec::new();
    write_image(&geometry, params, &[vol], &mut img)?;
    let place = format!("partition {partition}");
    fits(
        "ubivolume",
        "the UBI image",
        img.len() as u64,
        place,
        part_size,
    )?;
    let out = dir.join("ubi.img");
    write_file(&out, &img)?;
    Ok(out)
}

pub(super) fn zyxel(ctx: &mut Ctx, compat: &str, slot: &str, dir: &Path) -> Result<(), BuildError> {
    let board = ctx.req.board;
    let bad = |m: String| BuildError::Input(format!("zyxel-nwa-fit: {m}"));
    let s = board
        .slots
        .iter()
        .find(|s| s.name == slot)
        .ok_or_else(|| bad(format!("no slot {slot}")))?;
    let compat = liminix_boards::boot::parse_hex(compat)
        .ok_or_else(|| bad(format!("compat_models {compat:?} is not hex")))?;
    let mut kernel_part = None;
    let mut volume = None;
    for t in s.targets.values() {
        match TargetRef::parse(t) {
            Ok(TargetRef::Raw(p)) => kernel_part = Some(p.to_owned()),
            Ok(TargetRef::Ubi(v)) => volume = Some(v.to_owned()),
            Err(_) => {}
        }
    }
    let kernel_part = kernel_part.ok_or_else(|| bad(format!("slot {slot} has no kernel")))?;
    let volume = volume.ok_or_else(|| bad(format!("slot {slot} has no UBI volume")))?;
    let ubi_part = s
        .ubi
        .clone()
        .ok_or_else(|| bad(format!("slot {slot} has no UBI")))?;
    let size_of = |p: &str| board.partition(p).map(|(_, p)| p.size).unwrap_or(0);
    let (kernel_half, ubi_half) = (size_of(&kernel_part), size_of(&ubi_part));
    let klen = ctx.kernel.file.len() as u64;
    let place = format!("the kernel half ({kernel_part})");
    fits("zyxel-nwa-fit", "the kernel FIT", klen, place, kernel_half)?;
    let ubi = read_file(&ubivolume(
        ctx,
        &ubi_part,
        &volume,
        true,
        &ctx.work.clone(),
    )?)?;
    // The description OpenWrt and Liminix give the vendor-UI blob.
    let description = "Zyxel FIT (Flattened Image Tree)";
    let fit = zyxel::firmware_fit(&ZyxelFitSpec {
        kernel: &ctx.kernel.file,
        kernel_half,
        ubi: &ubi,
        ubi_half,
        compat_models: &compat,
        description,
        time: ctx.req.time,
    })?;
    write_file(&dir.join("firmware.itb"), &fit)?;
    let kernel_out = dir.join("kernel");
    write_file(&kernel_out, &ctx.kernel.file)?;
    let rootfs_out = dir.join("rootfs");
    let root = root_image(ctx, RootFs::Ubifs)?;
    std::fs::copy(&root, &rootfs_out).map_err(io_err("copying", &root))?;
    for_bundle(ctx, &format!("mtd:{kernel_part}"), &kernel_out);
    for_bundle(ctx, &format!("ubi:{volume}"), &rootfs_out);
    Ok(())
}
