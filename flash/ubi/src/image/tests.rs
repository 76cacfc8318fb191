use super::headers::{VtblRecord, VTBL_RECORD_SIZE};
use super::*;

fn geometry(peb_size: u32, min_io: u32, subpage: u32) -> Geometry {
    Geometry {
        peb_size,
        min_io,
        subpage,
        vid_hdr_offset: None,
    }
}

#[test]
fn crc_check_value_and_empty_record() {
    assert_eq!(ubi_crc(b"123456789"), 0x340B_C6D9);
    let empty = VtblRecord::empty();
    assert_eq!(&empty[..168], &[0u8; 168][..]);
    assert_eq!(&empty[168..], &0xF116_C36Bu32.to_be_bytes());
}

#[test]
fn layouts_of_the_documented_flashes() {
    let rows = [
        ((0x20000, 2048, 2048), (2048, 4096, 126_976, 128)),
        ((0x20000, 2048, 512), (512, 2048, 129_024, 128)),
        ((0x10000, 1, 1), (64, 128, 65_408, 128)),
        ((0x4000, 512, 512), (512, 1024, 15_360, 89)),
    ];
    for ((peb, io, sub), (vid, data, leb, vols)) in rows {
        let l = geometry(peb, io, sub).layout().unwrap();
        assert_eq!(
            (l.vid_hdr_offset, l.data_offset, l.leb_size, l.max_volumes),
            (vid, data, leb, vols),
            "PEB {peb} min I/O {io} sub-page {sub}"
        );
    }
}

#[test]
fn refuses_bad_geometry() {
    for g in [
        geometry(0x20000, 2048, 4096),
        geometry(0x20000, 3000, 512),
        geometry(1024, 2048, 2048),
        Geometry {
            vid_hdr_offset: Some(20),
            ..geometry(0x20000, 2048, 2048)
        },
    ] {
        assert!(
            matches!(g.layout(), Err(ImageError::Geometry { .. })),
            "{g:?}"
        );
    }
}

fn vol<'a>(id: u32, name: &str, data: &'a [u8]) -> VolumeSpec<'a> {
    VolumeSpec::new(id, name, VolumeKind::Dynamic, data)
}

fn write(volumes: &[VolumeSpec]) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    let params = ImageParams {
        image_seq: 1,
        erase_counter: 0,
    };
    let n = write_image(&geometry(0x10000, 1, 1), params, volumes, &mut out)?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

#[test]
fn refuses_inconsistent_volumes() {
    let too_big = VolumeSpec {
        size: Some(3),
        ..vol(0, "a", b"data")
    };
    let cases: Vec<Vec<VolumeSpec>> = vec![
        vec![vol(0, "a", b"x"), vol(0, "b", b"x")],
        vec![vol(0, "a", b"x"), vol(1, "a", b"x")],
        vec![vol(128, "a", b"x")],
        vec![vol(0, "", b"x")],
        vec![vol(0, &"n".repeat(128), b"x")],
        vec![vol(0, "a", b"")],
        vec![too_big],
        vec![VolumeSpec {
            alignment: 0,
            ..vol(0, "a", b"x")
        }],
        vec![vol(0, "a\0b", b"x")],
    ];
    for volumes in cases {
        assert!(
            matches!(write(&volumes), Err(ImageError::Volume { .. })),
            "{volumes:?}"
        );
    }
    let auto = |id, name| VolumeSpec {
        autoresize: true,
        ..vol(id, name, b"x")
    };
    assert!(matches!(
        write(&[auto(0, "a"), auto(1, "b")]),
        Err(ImageError::TwoAutoresize(0, 1))
    ));
}

#[test]
fn one_peb_per_leb_after_the_two_table_copies() {
    let data = vec![7u8; 65_408 + 1];
    let img = write(&[vol(3, "v", &data)]).unwrap();
    assert_eq!(img.len(), 4 * 0x10000);
    let table = &img[128..128 + 128 * VTBL_RECORD_SIZE];
    assert_eq!(
        table,
        &img[0x10000 + 128..0x10000 + 128 + 128 * VTBL_RECORD_SIZE]
    );
    let rec = &table[3 * VTBL_RECORD_SIZE..4 * VTBL_RECORD_SIZE];
    assert_eq!(&rec[0..4], &2u32.to_be_bytes(), "reserved PEBs");
    assert_eq!(&rec[16..18], b"v\0");
    let last = &img[3 * 0x10000..];
    assert_eq!(last[128], 7);
    assert!(last[129..].iter().all(|&b| b == 0xFF));
}

/// NAND, LEB 126976: alignment must be a multiple of the 2048-byte page;
/// alignment 8192 leaves 122880 usable bytes per LEB, so 250000 bytes need 3
/// LEBs while ubinize's rule reserves ceil(250000 / 126976) = 2.
#[test]
fn nand_alignment_rules() {
    let g = Geometry {
        peb_size: 0x20000,
        min_io: 2048,
        subpage: 2048,
        vid_hdr_offset: None,
    };
    let data = vec![1u8; 250_000];
    let aligned = |size| VolumeSpec {
        alignment: 8192,
        size,
        ..vol(0, "a", &data)
    };
    let params = ImageParams {
        image_seq: 1,
        erase_counter: 0,
    };
    let unpaged = VolumeSpec {
        alignment: 1024,
        ..aligned(None)
    };
    let err = write_image(&g, params, &[unpaged], Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains("multiple of min I/O 2048"),
        "{err}"
    );
    let err = write_image(&g, params, &[aligned(None)], Vec::new()).unwrap_err();
    assert!(err.to_string().contains("fills 3 aligned LEBs"), "{err}");
    write_image(&g, params, &[aligned(Some(3 * 126_976))], Vec::new()).unwrap();
}

#[test]
fn inspect_finds_damage() {
    let data = vec![7u8; 100_000];
    let good = write(&[VolumeSpec {
        kind: VolumeKind::Static,
        ..vol(2, "k", &data)
    }])
    .unwrap();
    let info = inspect(&good, 0x10000).unwrap();
    assert_eq!((info.pebs, info.volumes[0].lebs), (4, 2));
    assert_eq!(info.volumes[0].static_bytes, 100_000);

    let flip = |at: usize| {
        let mut img = good.clone();
        img[at] ^= 1;
        inspect(&img, 0x10000).unwrap_err().to_string()
    };
    assert!(flip(3 * 0x10000 + 200).contains("data CRC mismatch"));
    assert!(flip(2 * 0x10000 + 10).contains("PEB 2: no valid EC header"));
    assert!(flip(0x10000 + 70).contains("damaged VID header"));
    assert!(flip(128 + 2 * VTBL_RECORD_SIZE).contains("record 2: CRC mismatch"));
    let mut seq2 = good.clone();
    seq2[24..28].copy_from_slice(&9u32.to_be_bytes());
    let crc = ubi_crc(&seq2[..60]);
    seq2[60..64].copy_from_slice(&crc.to_be_bytes());
    let err = inspect(&seq2, 0x10000).unwrap_err().to_string();
    assert!(err.contains("PEB 1: EC header"), "{err}");
    assert!(matches!(
        inspect(&good[..100], 0x10000),
        Err(InspectError::Size { .. })
    ));
}
