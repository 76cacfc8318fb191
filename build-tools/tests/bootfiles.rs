//! The /boot files: where `bootfiles::add` puts them, what `extlinux.conf` says, and what is
//! refused. The files travel in the root filesystem image: unsquashfs reads them back out of
//! a squashfs made from the staged tree. (Real U-Boot `sysboot` reads the same files in
//! tests/tests/uboot_boots.rs.)

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use liminix_build_tools::image::bootfiles::{self, BootFiles, BootFilesError};
use liminix_build_tools::image::squashfs::{self, SquashfsSpec};

fn unsquash_cat(image: &Path, file: &str) -> Vec<u8> {
    let out = Command::new("unsquashfs")
        .arg("-cat")
        .arg(image)
        .arg(file)
        .output()
        .expect("unsquashfs (squashfs-tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn extlinux_conf_names_the_files_beside_it() {
    let conf = bootfiles::extlinux_conf("liminix", "console=ttyS0 root=/dev/ubiblock0_0", true);
    assert_eq!(
        conf,
        "menu title Liminix\ntimeout 1\ndefault liminix\n\nlabel liminix\n  kernel /boot/kernel\n  fdt /boot/dtb\n  append console=ttyS0 root=/dev/ubiblock0_0\n"
    );
    let conf = bootfiles::extlinux_conf("x", "quiet", false);
    assert!(!conf.contains("fdt"), "{conf}");
}

#[test]
fn the_files_reach_the_root_filesystem_image() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("boot")).unwrap();
    std::fs::write(root.join("boot/old"), b"kept").unwrap();
    let files = BootFiles::Extlinux {
        kernel: b"kernel bytes",
        dtb: Some(b"dtb bytes"),
        append: "console=ttyS0 root=/dev/mtdblock3",
        label: "liminix",
    };
    bootfiles::add(&root, &files).unwrap();
    bootfiles::add(&root, &BootFiles::Fit { fit: b"fit bytes" }).unwrap();
    let img = t.path().join("root.squashfs");
    let spec = SquashfsSpec {
        compression: squashfs::Compression::Gzip,
        epoch: 0,
        block_size: None,
    };
    squashfs::write(&root, &spec, &img).unwrap();
    assert_eq!(unsquash_cat(&img, "boot/kernel"), b"kernel bytes");
    assert_eq!(unsquash_cat(&img, "boot/dtb"), b"dtb bytes");
    assert_eq!(unsquash_cat(&img, "boot/fit"), b"fit bytes");
    assert_eq!(unsquash_cat(&img, "boot/old"), b"kept");
    let conf = unsquash_cat(&img, "boot/extlinux/extlinux.conf");
    assert_eq!(
        String::from_utf8(conf).unwrap(),
        bootfiles::extlinux_conf("liminix", "console=ttyS0 root=/dev/mtdblock3", true)
    );
}

#[test]
fn a_boot_that_is_not_a_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let fit = BootFiles::Fit { fit: b"fit" };
    std::fs::write(t.path().join("boot"), b"a file").unwrap();
    let e = bootfiles::add(t.path(), &fit).unwrap_err();
    assert!(matches!(e, BootFilesError::NotADirectory { .. }), "{e}");
    assert!(
        e.to_string().contains("boot exists and is not a directory"),
        "{e}"
    );

    // A link would write outside the tree being staged.
    let u = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), u.path().join("boot")).unwrap();
    let e = bootfiles::add(u.path(), &fit).unwrap_err();
    assert!(matches!(e, BootFilesError::NotADirectory { .. }), "{e}");
    assert!(std::fs::read_dir(elsewhere.path())
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_line_break_in_the_append_line_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let files = BootFiles::Extlinux {
        kernel: b"k",
        dtb: None,
        append: "console=ttyS0\nlabel evil",
        label: "liminix",
    };
    let e = bootfiles::add(t.path(), &files).unwrap_err();
    assert!(
        matches!(
            e,
            BootFilesError::LineBreak {
                what: "append line",
                ..
            }
        ),
        "{e}"
    );
    assert!(!t.path().join("boot").exists());
}
