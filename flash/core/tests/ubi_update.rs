//! UBI update strategies on the simulator: swap with rollback copy, in-place
//! fallback, size and space checks before any write, journal interlock.

mod common;

use common::{pattern, ubi_boots};
use liminix_flash::journal::{Phase, Strategy};
use liminix_flash::ubi_update::{gc_old, plan, rollback, PlanError, UbiPlan};
use liminix_flash::{
    update_ubi, JournalStore, MemImage, NoProgress, PowerRail, SimJournal, SimUbi, TxError, Ubi,
    UbiOptions,
};

const LEB: u64 = 1024;

fn device(total_lebs: u64, old: &[u8], reserved: u64) -> (SimUbi, SimJournal, PowerRail) {
    let rail = PowerRail::new();
    let mut ubi = SimUbi::new(total_lebs, LEB).with_rail(rail.clone());
    ubi.load_volume("rootfs", reserved, old);
    (ubi, SimJournal::new(rail.clone()), rail)
}

fn run(
    ubi: &mut SimUbi,
    j: &mut SimJournal,
    img: &[u8],
    opts: &UbiOptions,
) -> Result<liminix_flash::txn::UbiReport, TxError> {
    run_src(ubi, j, &MemImage(img.to_vec()), opts)
}

/// `rootfs` on `ubi0` updated from any image source.
fn run_src(
    ubi: &mut SimUbi,
    j: &mut SimJournal,
    src: &dyn liminix_flash::ImageSource,
    opts: &UbiOptions,
) -> Result<liminix_flash::txn::UbiReport, TxError> {
    update_ubi(ubi, j, "ubi0", "rootfs", src, opts, &mut NoProgress)
}

#[test]
fn swap_keeps_old_for_rollback_until_gc() {
    let old = pattern(1, 10 * LEB as usize);
    let new = pattern(2, 12 * LEB as usize - 5);
    let (mut ubi, mut j, _) = device(40, &old, 16 * LEB);
    let r = run(&mut ubi, &mut j, &new, &UbiOptions::default()).unwrap();
    assert_eq!(r.strategy, Strategy::UbiSwap);
    assert_eq!(r.old_kept_as.as_deref(), Some("rootfs.old"));
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &old, &new), Some("new"));
    assert_eq!(ubi_boots(&mut ubi, "rootfs.old", &old, &new), Some("old"));
    assert_eq!(
        ubi.volume_by_name("rootfs")
            .unwrap()
            .unwrap()
            .reserved_bytes,
        16 * LEB,
        "size kept"
    );
    assert!(j.load_all().unwrap().is_empty());
    assert!(rollback(&mut ubi, "rootfs").unwrap());
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &old, &new), Some("old"));
    assert_eq!(ubi_boots(&mut ubi, "rootfs.old", &old, &new), Some("new"));
    assert!(gc_old(&mut ubi, "rootfs").unwrap());
    assert!(!gc_old(&mut ubi, "rootfs").unwrap());
    assert_eq!(ubi.avail_bytes().unwrap(), 24 * LEB);
}

#[test]
fn second_update_replaces_the_previous_rollback_copy() {
    let v1 = pattern(1, 4 * LEB as usize);
    let v2 = pattern(2, 4 * LEB as usize);
    let v3 = pattern(3, 4 * LEB as usize);
    let (mut ubi, mut j, _) = device(20, &v1, 5 * LEB);
    run(&mut ubi, &mut j, &v2, &UbiOptions::default()).unwrap();
    run(&mut ubi, &mut j, &v3, &UbiOptions::default()).unwrap();
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &v2, &v3), Some("new"));
    assert_eq!(ubi_boots(&mut ubi, "rootfs.old", &v1, &v2), Some("new"));
    assert_eq!(ubi.volumes().unwrap().len(), 2, "v1 is gone");
}

#[test]
fn tight_space_removes_stale_old_copy_first() {
    let v1 = pattern(1, 4 * LEB as usize);
    let v2 = pattern(2, 4 * LEB as usize);
    let v3 = pattern(3, 4 * LEB as usize);
    // 5 (rootfs) + 5 (.old) + 1 free after the first update: not room for another 5.
    let (mut ubi, mut j, _) = device(11, &v1, 5 * LEB);
    run(&mut ubi, &mut j, &v2, &UbiOptions::default()).unwrap();
    let p = plan(&mut ubi, "rootfs", v3.len() as u64, &UbiOptions::default()).unwrap();
    assert!(matches!(&p, UbiPlan::Swap { remove_first, .. } if remove_first.len() == 1));
    run(&mut ubi, &mut j, &v3, &UbiOptions::default()).unwrap();
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &v2, &v3), Some("new"));
    assert_eq!(ubi_boots(&mut ubi, "rootfs.old", &v1, &v2), Some("new"));
}

#[test]
fn no_space_refused_without_in_place_and_used_with_it() {
    let old = pattern(1, 6 * LEB as usize);
    let new = pattern(2, 7 * LEB as usize);
    let (mut ubi, mut j, rail) = device(12, &old, 8 * LEB);
    let err = run(&mut ubi, &mut j, &new, &UbiOptions::default()).unwrap_err();
    assert!(
        matches!(err, TxError::Plan(PlanError::NoSpace { .. })),
        "{err}"
    );
    assert_eq!(rail.ops(), 0, "refused before any write");
    let opts = UbiOptions {
        allow_in_place: true,
        ..UbiOptions::default()
    };
    let r = run(&mut ubi, &mut j, &new, &opts).unwrap();
    assert_eq!(r.strategy, Strategy::UbiInPlace);
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &old, &new), Some("new"));
    assert_eq!(ubi.volumes().unwrap().len(), 1);
}

#[test]
fn too_large_for_volume_is_refused_before_any_write() {
    let old = pattern(1, 2 * LEB as usize);
    let (mut ubi, mut j, rail) = device(40, &old, 4 * LEB);
    let big = pattern(2, 5 * LEB as usize);
    let opts = UbiOptions {
        force_in_place: true,
        ..UbiOptions::default()
    };
    let err = run(&mut ubi, &mut j, &big, &opts).unwrap_err();
    assert!(
        matches!(err, TxError::Plan(PlanError::TooLarge { .. })),
        "{err}"
    );
    let fixed = UbiOptions {
        volume_bytes: Some(4 * LEB),
        ..UbiOptions::default()
    };
    let err = run(&mut ubi, &mut j, &big, &fixed).unwrap_err();
    assert!(
        matches!(err, TxError::Plan(PlanError::TooLarge { .. })),
        "{err}"
    );
    assert_eq!(rail.ops(), 0);
    // Without a fixed size the swap grows the new volume to fit.
    run(&mut ubi, &mut j, &big, &UbiOptions::default()).unwrap();
    assert_eq!(
        ubi.volume_by_name("rootfs")
            .unwrap()
            .unwrap()
            .reserved_bytes,
        5 * LEB
    );
}

#[test]
fn first_install_without_existing_volume() {
    let rail = PowerRail::new();
    let mut ubi = SimUbi::new(10, LEB).with_rail(rail.clone());
    let mut j = SimJournal::new(rail);
    let img = pattern(9, 3 * LEB as usize + 1);
    let r = run(&mut ubi, &mut j, &img, &UbiOptions::default()).unwrap();
    assert_eq!(r.old_kept_as, None);
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &[], &img), Some("new"));
}

#[test]
fn pending_record_blocks_a_new_transaction() {
    let old = pattern(1, 2 * LEB as usize);
    let (mut ubi, mut j, rail) = device(20, &old, 4 * LEB);
    let rec = liminix_flash::TxRecord {
        target: "ubi0".into(),
        volume: Some("rootfs".into()),
        strategy: Strategy::UbiSwap,
        image_sha256: hex::encode([0u8; 32]),
        image_size: 1,
        phase: Phase::Writing,
        source_hint: None,
    };
    j.store(&rec).unwrap();
    let before = rail.ops();
    let err = run(&mut ubi, &mut j, &old, &UbiOptions::default()).unwrap_err();
    assert!(matches!(err, TxError::Pending(_)));
    assert_eq!(rail.ops(), before);
}

#[test]
fn leftover_staging_volume_is_cleared_first() {
    let old = pattern(1, 2 * LEB as usize);
    let new = pattern(2, 2 * LEB as usize);
    let (mut ubi, mut j, _) = device(20, &old, 4 * LEB);
    ubi.load_volume("rootfs.new", 4 * LEB, b"junk");
    run(&mut ubi, &mut j, &new, &UbiOptions::default()).unwrap();
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &old, &new), Some("new"));
    assert!(ubi.volume_by_name("rootfs.new").unwrap().is_none());
}

/// Hashes fine on the first read, then fails half-way through the second.
struct FlakySource {
    data: Vec<u8>,
    opens: std::cell::Cell<u32>,
}

impl liminix_flash::ImageSource for FlakySource {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn open(&self) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        self.opens.set(self.opens.get() + 1);
        let cut = if self.opens.get() == 1 {
            self.data.len()
        } else {
            self.data.len() / 2
        };
        let failing = std::io::Read::chain(&self.data[..cut], FailingReader);
        Ok(Box::new(failing))
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

struct FailingReader;

impl std::io::Read for FailingReader {
    fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("staging disk read error"))
    }
}

#[test]
fn ordinary_error_mid_swap_is_rolled_back_at_once() {
    let old = pattern(1, 4 * LEB as usize);
    let (mut ubi, mut j, _) = device(20, &old, 5 * LEB);
    let src = FlakySource {
        data: pattern(2, 4 * LEB as usize),
        opens: Default::default(),
    };
    let err = run_src(&mut ubi, &mut j, &src, &UbiOptions::default()).unwrap_err();
    assert!(err.to_string().contains("staging disk read error"), "{err}");
    assert!(j.load_all().unwrap().is_empty(), "nothing left to recover");
    assert!(ubi.volume_by_name("rootfs.new").unwrap().is_none());
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &old, &src.data), Some("old"));
}

#[test]
fn static_volume_stays_static_and_reads_exact_length() {
    let rail = PowerRail::new();
    let mut ubi = SimUbi::new(30, LEB).with_rail(rail.clone());
    let old = pattern(1, 3 * LEB as usize + 100);
    ubi.load_volume_kind("kernel", 8 * LEB, liminix_flash::VolKind::Static, &old);
    let mut j = SimJournal::new(rail);
    let mut new = pattern(2, 2 * LEB as usize);
    new.extend([0xFF; 300]);
    let src = MemImage(new.clone());
    update_ubi(
        &mut ubi,
        &mut j,
        "ubi0",
        "kernel",
        &src,
        &UbiOptions::default(),
        &mut NoProgress,
    )
    .unwrap();
    let v = ubi.volume_by_name("kernel").unwrap().unwrap();
    assert_eq!(v.kind, liminix_flash::VolKind::Static);
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut ubi.open_read(v.id).unwrap(), &mut all).unwrap();
    assert_eq!(all, new, "exactly the image, trailing 0xFF included");
}

#[test]
fn swap_hashes_while_writing_and_compares_the_read_back() {
    let old = pattern(1, 10 * LEB as usize);
    let new = pattern(2, 12 * LEB as usize - 5);
    let (mut ubi, mut j, _) = device(40, &old, 16 * LEB);
    let src = common::Passes::new(new.clone());
    let r = run_src(&mut ubi, &mut j, &src, &UbiOptions::default()).unwrap();
    assert_eq!(
        src.opens.get(),
        2,
        "one write pass, one read-back comparison"
    );
    assert_eq!(r.sha256, liminix_flash::image::sha256(&new));
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &old, &new), Some("new"));

    // The file changes between the write and the read-back: no switch.
    let newer = pattern(3, 12 * LEB as usize - 5);
    let mut src = common::Passes::new(newer.clone());
    src.changed = pattern(4, 12 * LEB as usize - 5);
    src.swap_at = 2;
    let err = run_src(&mut ubi, &mut j, &src, &UbiOptions::default()).unwrap_err();
    assert!(matches!(err, TxError::Verify { .. }), "{err}");
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &old, &new), Some("new"));
    assert!(ubi.volume_by_name("rootfs.new").unwrap().is_none());
    assert!(j.load_all().unwrap().is_empty(), "rolled back at once");
}

#[test]
fn in_place_records_the_hash_before_the_first_write() {
    let old = pattern(1, 10 * LEB as usize);
    let new = pattern(2, 10 * LEB as usize);
    let (mut ubi, mut j, _) = device(12, &old, 10 * LEB);
    let opts = UbiOptions {
        force_in_place: true,
        ..UbiOptions::default()
    };
    let src = common::Passes::new(new.clone());
    let r = run_src(&mut ubi, &mut j, &src, &opts).unwrap();
    assert_eq!(r.strategy, Strategy::UbiInPlace);
    assert_eq!(src.opens.get(), 3, "hash, write, read-back comparison");
    assert_eq!(ubi_boots(&mut ubi, "rootfs", &old, &new), Some("new"));

    // Changed between hashing and writing: the recorded hash no longer
    // describes what was written, so the transaction fails and stays journalled.
    let mut src = common::Passes::new(old.clone());
    src.changed = pattern(5, 10 * LEB as usize);
    src.swap_at = 2;
    let err = run_src(&mut ubi, &mut j, &src, &opts).unwrap_err();
    assert!(matches!(err, TxError::Verify { .. }), "{err}");
    let rec = &j.load_all().unwrap()[0];
    assert_eq!(
        rec.image_sha256,
        hex::encode(liminix_flash::image::sha256(&old))
    );
}

#[test]
fn an_image_that_does_not_hash_as_verified_never_becomes_the_volume() {
    let old = pattern(1, 10 * LEB as usize);
    let new = pattern(2, 10 * LEB as usize);
    let wrong = Some(liminix_flash::image::sha256(&old));
    for force_in_place in [false, true] {
        let (mut ubi, mut j, _) = device(40, &old, 10 * LEB);
        let opts = UbiOptions {
            force_in_place,
            expect_sha256: wrong,
            ..UbiOptions::default()
        };
        let err = run(&mut ubi, &mut j, &new, &opts).unwrap_err();
        assert!(matches!(err, TxError::NotVerified { .. }), "{err}");
        assert_eq!(ubi_boots(&mut ubi, "rootfs", &old, &new), Some("old"));
        assert!(ubi.volume_by_name("rootfs.new").unwrap().is_none());
        assert!(j.load_all().unwrap().is_empty(), "nothing left to recover");
    }
}
