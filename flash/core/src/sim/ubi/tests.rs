use super::*;
use crate::power::Unsynced;
use crate::ubi::read_volume;

#[test]
fn update_skips_ff_and_marks_until_finished() {
    let mut u = SimUbi::new(10, 16);
    let id = u.make_volume("a", 40, VolKind::Dynamic).unwrap();
    assert_eq!(u.volumes().unwrap()[0].reserved_bytes, 48);
    let mut data = vec![1u8; 16];
    data.extend([0xFF; 16]);
    data.extend([2u8, 0xFF, 3]);
    let before = u.rail().ops();
    let mut w = u.start_update(id, data.len() as u64).unwrap();
    w.write(&data).unwrap();
    drop(w);
    assert!(u.volumes().unwrap()[0].corrupted);
    assert!(matches!(u.open_read(id), Err(UbiError::Corrupted(_))));
    let mut w = u.start_update(id, data.len() as u64).unwrap();
    w.write(&data[..5]).unwrap();
    w.write(&data[5..]).unwrap();
    w.finish().unwrap();
    // Dropped update: start + first LEB (the partial last LEB was still
    // buffered). Completed one: start + 2 mapped LEBs + finish.
    assert_eq!(u.rail().ops() - before, 2 + 4);
    assert_eq!(read_volume(&mut u, id, 35).unwrap().unwrap(), data);
}

#[test]
fn static_volume_writes_ff_and_reads_exact_length() {
    let mut u = SimUbi::new(10, 16);
    let id = u.make_volume("k", 64, VolKind::Static).unwrap();
    let data = [[7u8; 16], [0xFF; 16], [0xFF; 16]].concat();
    let before = u.leb_writes();
    let mut w = u.start_update(id, 40).unwrap();
    w.write(&data[..40]).unwrap();
    w.finish().unwrap();
    assert_eq!(
        u.leb_writes() - before,
        3,
        "static LEBs are written even if 0xFF"
    );
    let mut out = Vec::new();
    u.open_read(id).unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(out, &data[..40]);
    assert_eq!(u.volumes().unwrap()[0].kind, VolKind::Static);
}

#[test]
fn rename_onto_existing_name_deletes_it_and_swap_keeps_both() {
    let mut u = SimUbi::new(10, 16);
    let a = u.load_volume("a", 16, b"old");
    let b = u.load_volume("a.new", 16, b"new");
    u.rename_volumes(&[(b, "a"), (a, "a.old")]).unwrap();
    assert_eq!(u.volume_by_name("a").unwrap().unwrap().id, b);
    assert_eq!(u.volume_by_name("a.old").unwrap().unwrap().id, a);
    u.rename_volumes(&[(a, "a")]).unwrap();
    assert_eq!(u.volumes().unwrap().len(), 1);
    assert_eq!(u.avail_bytes().unwrap(), 9 * 16);
}

#[test]
fn refused_requests_cost_no_op_and_space_is_checked() {
    let mut u = SimUbi::new(4, 16);
    u.make_volume("a", 48, VolKind::Dynamic).unwrap();
    let ops = u.rail().ops();
    assert!(matches!(
        u.make_volume("b", 32, VolKind::Dynamic),
        Err(UbiError::NoSpace { .. })
    ));
    assert!(matches!(
        u.make_volume("a", 1, VolKind::Static),
        Err(UbiError::NameExists(_))
    ));
    assert!(matches!(
        u.start_update(0, 49),
        Err(UbiError::TooLarge { .. })
    ));
    assert_eq!(u.rail().ops(), ops);
}

#[test]
fn a_cut_takes_back_unsynced_changes_when_the_rail_says_so() {
    for (unsynced, names) in [
        (Unsynced::Lost, vec!["a"]),
        (Unsynced::FirstKept(1), vec!["a", "b"]),
        (Unsynced::Kept, vec!["a", "b", "c"]),
    ] {
        let mut u = SimUbi::new(10, 16);
        u.rail().set_unsynced(unsynced);
        u.load_volume("a", 16, b"factory");
        u.make_volume("b", 16, VolKind::Dynamic).unwrap();
        u.make_volume("c", 16, VolKind::Dynamic).unwrap();
        u.rail().cut_now();
        u.rail().reboot();
        let got: Vec<String> = u.volumes().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(got, names, "{unsynced:?}");
        assert_eq!(read_volume(&mut u, 0, 7).unwrap().unwrap(), b"factory");
        u.make_volume("d", 16, VolKind::Dynamic).unwrap();
        u.sync().unwrap();
        u.rail().cut_now();
        u.rail().reboot();
        assert!(u.volume_by_name("d").unwrap().is_some(), "synced");
    }
}

#[test]
fn torn_vtbl_ops_follow_the_tear_mode() {
    for (tear, exists) in [(VtblTear::OldWins, false), (VtblTear::NewWins, true)] {
        let mut u = SimUbi::new(4, 16);
        u.set_vtbl_tear(tear);
        u.rail().cut_after(0);
        assert!(u
            .make_volume("x", 16, VolKind::Dynamic)
            .unwrap_err()
            .is_power_cut());
        u.rail().reboot();
        assert_eq!(u.volume_by_name("x").unwrap().is_some(), exists);
    }
}
