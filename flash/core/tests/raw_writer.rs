//! Raw writer behaviour on the simulator: incremental writes, NAND bad
//! blocks, padding, size refusal, verification and bitflips.

mod common;

use common::{change_blocks, factory_load, pattern, raw_boots};
use liminix_flash::flash::read_image;
use liminix_flash::progress::{Progress, Stage};
use liminix_flash::raw::{write_raw, RawError, RawOptions};
use liminix_flash::{Flash, MemImage, NoProgress, SimFlash};

const EB: usize = 4096;

fn write(flash: &mut SimFlash, img: &[u8]) -> Result<liminix_flash::RawReport, RawError> {
    write_raw(
        flash,
        &MemImage(img.to_vec()),
        &RawOptions::default(),
        &mut NoProgress,
    )
}

#[test]
fn only_changed_blocks_are_erased_and_programmed() {
    for mut flash in [
        SimFlash::nor(24, EB as u32),
        SimFlash::nand(24, EB as u32, 512),
    ] {
        let old = pattern(1, 20 * EB);
        factory_load(&mut flash, &old);
        let new = change_blocks(&old, EB, &[3, 11, 19]);
        let r = write(&mut flash, &new).unwrap();
        assert_eq!(
            (r.blocks, r.unchanged_blocks, r.rewritten_blocks),
            (20, 17, 3)
        );
        assert_eq!(flash.stats().erases, 3, "erased blocks = changed blocks");
        assert_eq!(flash.stats().erased_bytes, 3 * EB as u64);
        let per_block = if flash.geometry().is_nand {
            EB / 512
        } else {
            1
        };
        assert_eq!(flash.stats().programs, 3 * per_block as u64);
        assert_eq!(raw_boots(&mut flash, &old, &new), Some("new"));
        flash.reset_stats();
        let again = write(&mut flash, &new).unwrap();
        assert_eq!(again.rewritten_blocks, 0);
        assert_eq!(
            flash.stats(),
            Default::default(),
            "identical image: no operation at all"
        );
    }
}

#[test]
fn nand_skips_bad_blocks_and_pads_the_last_page() {
    let mut flash = SimFlash::nand(16, EB as u32, 512);
    flash.set_bad(0);
    flash.set_bad(5);
    let img = pattern(2, 6 * EB + 700);
    let r = write(&mut flash, &img).unwrap();
    assert_eq!(r.skipped_bad_blocks, 2);
    // Block 0 is bad: image block 0 lands in physical block 1, and block 5 is skipped.
    assert_eq!(&flash.contents()[EB..2 * EB], &img[..EB]);
    assert_eq!(&flash.contents()[6 * EB..7 * EB], &img[4 * EB..5 * EB]);
    assert!(flash.contents()[5 * EB..6 * EB].iter().all(|&b| b == 0xFF));
    // The tail: one page of 700-512 data bytes padded with 0xFF, later pages unprogrammed.
    let tail = 8 * EB;
    assert_eq!(&flash.contents()[tail..tail + 700], &img[6 * EB..]);
    assert!(flash.contents()[tail + 700..tail + EB]
        .iter()
        .all(|&b| b == 0xFF));
    let pages = (6 * EB / 512 + 2) as u64;
    assert_eq!(
        flash.stats().programs,
        pages,
        "all-0xFF pages are not programmed"
    );
    assert_eq!(
        read_image(&mut flash, img.len() as u64).unwrap().unwrap(),
        img
    );
    // The empty pages really are still programmable.
    flash.program((tail + 1024) as u64, &[0u8; 512]).unwrap();
}

#[test]
fn too_large_image_is_refused_before_any_operation() {
    let mut flash = SimFlash::nand(10, EB as u32, 512);
    flash.set_bad(2);
    flash.set_bad(7);
    let img = pattern(3, 9 * EB); // fits 10 blocks, not the 8 good ones
    let err = write(&mut flash, &img).unwrap_err();
    match err {
        RawError::TooLarge {
            image,
            capacity,
            bad_blocks,
        } => assert_eq!(
            (image, capacity, bad_blocks),
            (9 * EB as u64, 8 * EB as u64, 2)
        ),
        e => panic!("unexpected {e}"),
    }
    assert_eq!(flash.rail().ops(), 0);
    assert_eq!(flash.stats(), Default::default());
    assert!(
        write(&mut flash, &img[..8 * EB]).is_ok(),
        "exactly the good capacity fits"
    );
}

#[test]
fn read_back_catches_silent_corruption() {
    let mut flash = SimFlash::nor(8, EB as u32);
    flash.corrupt_program(3 * EB as u64 + 100);
    let img = pattern(4, 5 * EB);
    match write(&mut flash, &img) {
        Err(RawError::Verify { off }) => assert_eq!(off, 3 * EB as u64 + 100),
        other => panic!("corruption not caught: {other:?}"),
    }
}

#[test]
fn bitflips_are_counted_and_flipped_blocks_scrubbed() {
    let mut flash = SimFlash::nand(8, EB as u32, 512);
    let img = pattern(5, 4 * EB);
    factory_load(&mut flash, &img);
    flash.add_bitflip(2 * EB as u64 + 9);
    let r = write(&mut flash, &img).unwrap();
    assert!(r.corrected_bitflips >= 1, "{r:?}");
    assert_eq!(
        r.rewritten_blocks, 1,
        "the block that needed ECC is refreshed"
    );
    assert_eq!(flash.stats().erases, 1);
    let mut no_scrub = SimFlash::nand(8, EB as u32, 512);
    factory_load(&mut no_scrub, &img);
    no_scrub.add_bitflip(9);
    let opts = RawOptions {
        scrub_bitflips: false,
        ..RawOptions::default()
    };
    let r = write_raw(
        &mut no_scrub,
        &MemImage(img.clone()),
        &opts,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!((r.rewritten_blocks, no_scrub.stats().erases), (0, 0));
    assert!(r.corrected_bitflips >= 1);
}

#[test]
fn block_failing_erase_is_retired_and_data_slides() {
    let mut flash = SimFlash::nand(10, EB as u32, 512);
    flash.fail_erase(2);
    let img = pattern(6, 5 * EB);
    let r = write(&mut flash, &img).unwrap();
    assert_eq!(r.retired_blocks, vec![2 * EB as u64]);
    assert!(flash.is_bad(2 * EB as u64).unwrap());
    assert_eq!(
        read_image(&mut flash, img.len() as u64).unwrap().unwrap(),
        img
    );
    let mut nor = SimFlash::nor(10, EB as u32);
    nor.fail_erase(1);
    assert!(
        matches!(write(&mut nor, &img), Err(RawError::Flash(_))),
        "NOR has nowhere to slide to"
    );
}

#[derive(Default)]
struct Recorder {
    stages: Vec<(Stage, u64)>,
    last: u64,
    notes: usize,
}

impl Progress for Recorder {
    fn begin(&mut self, stage: Stage, total: u64) {
        self.stages.push((stage, total));
        self.last = 0;
    }
    fn advance(&mut self, done: u64) {
        assert!(done >= self.last || done == 0);
        self.last = done;
    }
    fn note(&mut self, _msg: &str) {
        self.notes += 1;
    }
}

#[test]
fn progress_reports_stages_and_bad_blocks() {
    let mut flash = SimFlash::nand(8, EB as u32, 512);
    flash.set_bad(1);
    let img = pattern(7, 3 * EB + 10);
    let mut p = Recorder::default();
    write_raw(
        &mut flash,
        &MemImage(img.clone()),
        &RawOptions::default(),
        &mut p,
    )
    .unwrap();
    let n = img.len() as u64;
    assert_eq!(
        p.stages,
        vec![
            (Stage::Comparing, n),
            (Stage::Writing, n),
            (Stage::Verifying, n)
        ]
    );
    assert_eq!(p.last, n);
    assert_eq!(
        p.notes, 1,
        "the bad block is noted once, by the compare pass"
    );
}

#[test]
fn nor_program_chunk_is_configurable() {
    let mut flash = SimFlash::nor(4, EB as u32);
    let opts = RawOptions {
        program_chunk: Some(1024),
        ..RawOptions::default()
    };
    write_raw(
        &mut flash,
        &MemImage(pattern(8, 2 * EB)),
        &opts,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(flash.stats().programs, 8);
}

#[test]
fn uncorrectable_old_block_is_rewritten() {
    let mut flash = SimFlash::nand(8, EB as u32, 512);
    let img = pattern(9, 4 * EB);
    factory_load(&mut flash, &img);
    flash.add_uncorrectable(EB as u64 + 600);
    let mut buf = vec![0u8; EB];
    assert!(flash.read(EB as u64, &mut buf).is_err());
    let r = write(&mut flash, &img).unwrap();
    assert_eq!((r.rewritten_blocks, r.unchanged_blocks), (1, 3));
    assert_eq!(
        read_image(&mut flash, img.len() as u64).unwrap().unwrap(),
        img
    );
}

#[test]
fn an_image_that_does_not_hash_as_verified_is_refused_before_any_write() {
    let mut flash = SimFlash::nand(8, EB as u32, 512);
    let old = pattern(1, 4 * EB);
    factory_load(&mut flash, &old);
    let new = pattern(2, 4 * EB);
    let opts = RawOptions {
        expect_sha256: Some(liminix_flash::image::sha256(&old)),
        ..RawOptions::default()
    };
    flash.reset_stats();
    let e = write_raw(&mut flash, &MemImage(new.clone()), &opts, &mut NoProgress).unwrap_err();
    assert!(matches!(e, RawError::NotVerified { .. }), "{e}");
    assert_eq!((flash.stats().erases, flash.stats().programs), (0, 0));
    let opts = RawOptions {
        expect_sha256: Some(liminix_flash::image::sha256(&new)),
        ..RawOptions::default()
    };
    write_raw(&mut flash, &MemImage(new), &opts, &mut NoProgress).unwrap();
}
