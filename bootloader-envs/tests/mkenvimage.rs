//! Our layout code against u-boot-tools' `mkenvimage`: byte-identical images, and images
//! made by mkenvimage parse to the same variables (both byte orders, both layouts).

mod common;
use common::{mkenvimage, need_mkenvimage};
use liminix_bootenv::mkenv::image_from_text;
use liminix_bootenv::{Endian, Env, Layout};

const TEXT: &[u8] = b"bootcmd=echo hello; run bootm\n# comment\n\nipaddr=10.0.0.1\nspaced=a b  c = d\nmulti=line1\\\nline2\nzz=last\n";

#[test]
fn identical_bytes_for_every_flag_combination() {
    need_mkenvimage();
    for (args, redundant, endian, pad) in [
        (&["-s", "0x4000"][..], false, Endian::Little, 0xFF),
        (&["-r", "-s", "0x4000"][..], true, Endian::Little, 0xFF),
        (&["-b", "-s", "0x20000"][..], false, Endian::Big, 0xFF),
        (&["-r", "-b", "-s", "0x1000"][..], true, Endian::Big, 0xFF),
        (&["-p", "0", "-s", "0x1000"][..], false, Endian::Little, 0),
    ] {
        let size =
            usize::from_str_radix(args[args.len() - 1].trim_start_matches("0x"), 16).unwrap();
        let layout = Layout::new(size, redundant, endian).unwrap();
        let theirs = mkenvimage(args, TEXT);
        let ours = image_from_text(&layout, TEXT, pad).unwrap();
        assert!(theirs == ours, "mkenvimage {args:?} differs");
    }
}

#[test]
fn parses_mkenvimage_output_in_both_byte_orders() {
    need_mkenvimage();
    let clean = b"bootcmd=bootm 0x9f050000\nipaddr=192.168.1.1\nserverip=192.168.1.254\n";
    let want = Env::from_text(clean).unwrap();
    for (args, redundant, endian) in [
        (&["-s", "0x10000"][..], false, Endian::Little),
        (&["-b", "-s", "0x10000"][..], false, Endian::Big),
        (&["-r", "-b", "-s", "0x10000"][..], true, Endian::Big),
        (&["-r", "-s", "0x10000"][..], true, Endian::Little),
    ] {
        let img = mkenvimage(args, clean);
        let l = Layout::new(0x10000, redundant, endian).unwrap();
        let st = l.inspect(&img);
        assert!(st.crc_ok, "{args:?}");
        assert_eq!(st.flags, redundant.then_some(1));
        assert_eq!(l.parse(&img).unwrap().0, want);
        // the wrong byte order must not validate
        let other = if endian == Endian::Big {
            Endian::Little
        } else {
            Endian::Big
        };
        assert!(
            !Layout::new(0x10000, redundant, other)
                .unwrap()
                .inspect(&img)
                .crc_ok
        );
        // re-encoding the parsed variables with 0xFF padding reproduces the image
        assert!(l.encode(&want, 1, 0xFF).unwrap() == img);
    }
}

#[test]
fn too_large_matches_mkenvimage_refusal() {
    need_mkenvimage();
    let big = format!("k={}\n", "v".repeat(5000));
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '%s' '{big}' | mkenvimage -s 0x1000 -o /dev/null -"
        ))
        .status()
        .unwrap()
        .success();
    assert!(!ok, "mkenvimage accepted an oversized environment");
    let l = Layout::new(0x1000, false, Endian::Little).unwrap();
    assert!(matches!(
        image_from_text(&l, big.as_bytes(), 0xFF),
        Err(liminix_bootenv::EnvError::TooLarge { .. })
    ));
    let env = Env::from_text(big.as_bytes()).unwrap();
    assert!(l.encode(&env, 0, 0).is_err());
}
