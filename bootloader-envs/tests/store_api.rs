//! The engine as the agent uses it: open from fw_env.config, change several variables in
//! one write, and the error cases.

use std::path::Path;

use liminix_bootenv::devices::open_config;
use liminix_bootenv::{EnvError, Layout};

fn setup(dir: &Path, redundant: bool) -> std::path::PathBuf {
    let img = dir.join("env.img");
    std::fs::write(&img, vec![0xFFu8; 0x8000]).unwrap();
    let cfg = dir.join("fw_env.config");
    let mut text = format!("# test\n{} 0x0 4000 4000\n", img.display());
    if redundant {
        text += &format!("{} 0x4000 0x4000 0x4000\n", img.display());
    }
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn blank_storage_is_bad_crc_then_update_is_one_write() {
    let d = tempfile::tempdir().unwrap();
    let cfg = setup(d.path(), true);
    let mut st = open_config(&cfg, true).unwrap();
    assert!(matches!(st.load(), Err(EnvError::BadCrc { copies: 2 })));
    let mut env = liminix_bootenv::Env::new();
    env.set(b"boot_slot", b"a").unwrap();
    assert_eq!(st.save(&env).unwrap().copy, 1);
    let before = std::fs::read(d.path().join("env.img")).unwrap();
    st.update(|e| {
        e.set(b"boot_slot", b"b")?;
        e.set(b"upgrade_available", b"1")?;
        e.set(b"bootcount", b"0")?;
        Ok(())
    })
    .unwrap();
    let after = std::fs::read(d.path().join("env.img")).unwrap();
    // exactly one copy (copy 0) changed; copy 1 still holds the old environment
    assert!(before[0x4000..] == after[0x4000..]);
    let l = st.load().unwrap();
    assert_eq!((l.copy, l.flags), (0, Some(1)));
    assert_eq!(l.env.get_str("boot_slot").as_deref(), Some("b"));
    assert_eq!(l.env.len(), 3);
}

#[test]
fn too_large_and_bad_names_leave_storage_untouched() {
    let d = tempfile::tempdir().unwrap();
    let cfg = setup(d.path(), false);
    let mut st = open_config(&cfg, true).unwrap();
    let mut env = liminix_bootenv::Env::new();
    env.set(b"a", b"1").unwrap();
    st.save(&env).unwrap();
    let before = std::fs::read(d.path().join("env.img")).unwrap();
    let r = st.update(|e| e.set(b"huge", &vec![b'x'; 0x4000]));
    assert!(
        matches!(r, Err(EnvError::TooLarge { needed, available }) if needed > available && available == 0x4000 - 4)
    );
    assert!(matches!(
        st.update(|e| e.set(b"x=y", b"1")),
        Err(EnvError::BadName { .. })
    ));
    assert!(std::fs::read(d.path().join("env.img")).unwrap() == before);
    assert_eq!(
        *st.layout(),
        Layout::new(0x4000, false, liminix_bootenv::Endian::native()).unwrap()
    );
}

#[test]
fn config_errors_are_reported() {
    let d = tempfile::tempdir().unwrap();
    assert!(matches!(
        open_config(&d.path().join("none"), false),
        Err(EnvError::Io { .. })
    ));
    let cfg = d.path().join("c");
    std::fs::write(&cfg, "# only comments\n").unwrap();
    assert!(matches!(
        open_config(&cfg, false),
        Err(EnvError::Config { .. })
    ));
    std::fs::write(&cfg, format!("{}/missing.img 0 4000\n", d.path().display())).unwrap();
    assert!(matches!(open_config(&cfg, false), Err(EnvError::Io { .. })));
}
