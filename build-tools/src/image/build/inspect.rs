//! What `liminix-pack inspect` says about an image file, told apart by its first bytes: a
//! uImage (and a `firmware.bin`: the uImage, then a squashfs at the next erase block), a FIT or
//! other device tree, a squashfs superblock, a UBI image, an MBR disk. Each is described as
//! JSON; the text form prints the same fields.

use serde_json::{json, Value};

use super::root::SQUASHFS_MAGIC;
use crate::image::dtb::{self, Node};
use crate::image::{mbr, uimage};

/// The description of `data`, or `None` when it is none of the image kinds (a bundle, say).
pub fn describe(data: &[u8]) -> Option<Value> {
    if data.starts_with(liminix_bundle::stream::MAGIC) {
        return None;
    }
    if data.starts_with(&uimage::MAGIC.to_be_bytes()) {
        return Some(uimage_info(data));
    }
    if dtb::is_dtb(data) {
        return Some(fdt_info(data));
    }
    if data.starts_with(SQUASHFS_MAGIC) {
        return Some(squashfs_info(data));
    }
    if data.starts_with(b"UBI#") {
        return Some(ubi_info(data));
    }
    if data.len() >= 512 && data[510..512] == [0x55, 0xaa] {
        return Some(mbr_info(data));
    }
    None
}

fn uimage_info(data: &[u8]) -> Value {
    let (h, payload) = match uimage::read(data) {
        Ok(r) => r,
        Err(e) => return json!({"kind": "uimage", "error": e.to_string()}),
    };
    let mut v = json!({
        "kind": "uimage",
        "name": h.name,
        "arch": h.arch.fit_name(),
        "type": h.payload.fit_name(),
        "compression": h.compression.fit_name(),
        "load": format!("{:#x}", h.load),
        "entry": format!("{:#x}", h.entry),
        "time": h.time,
        "data_size": payload.len(),
    });
    let end = uimage::HEADER_LEN + payload.len();
    // firmware.bin: the squashfs starts at the first erase-block boundary after the uImage;
    // the padding before it is 0xff, so the smallest block size that finds the magic is it.
    for shift in 12..=20 {
        let block = 1usize << shift;
        let at = end.next_multiple_of(block);
        if data.get(at..at + 4) == Some(SQUASHFS_MAGIC.as_slice()) {
            v["kind"] = json!("firmware");
            v["erase_block"] = json!(block);
            v["rootfs_offset"] = json!(at);
            v["rootfs"] = squashfs_info(&data[at..]);
            break;
        }
    }
    v
}

fn fdt_info(data: &[u8]) -> Value {
    let root = match dtb::read(data) {
        Ok(r) => r.root,
        Err(e) => return json!({"kind": "dtb", "error": e.to_string()}),
    };
    let Some(images) = root.child("images") else {
        return json!({"kind": "dtb", "nodes": count(&root), "chosen": root.child("chosen").map(props)});
    };
    let imgs: Vec<Value> = images.children.iter().map(fit_image).collect();
    let confs = root.child("configurations");
    json!({
        "kind": "fit",
        "description": root.string("description"),
        "timestamp": root.prop("timestamp").and_then(be32),
        "images": imgs,
        "default": confs.and_then(|c| c.string("default")),
        "configurations": confs.map(|c| c.children.iter().map(props).collect::<Vec<_>>()),
    })
}

fn fit_image(n: &Node) -> Value {
    let hashes: Vec<Value> = n
        .children
        .iter()
        .filter(|c| c.name.starts_with("hash"))
        .map(|c| json!({"algo": c.string("algo"), "value": c.prop("value").map(hex::encode)}))
        .collect();
    json!({
        "node": n.name,
        "description": n.string("description"),
        "type": n.string("type"),
        "arch": n.string("arch"),
        "compression": n.string("compression"),
        "load": n.prop("load").and_then(be32).map(|v| format!("{v:#x}")),
        "entry": n.prop("entry").and_then(be32).map(|v| format!("{v:#x}")),
        "data_size": n.prop("data").map(<[u8]>::len),
        "hashes": hashes,
    })
}

/// Properties of a node as strings where they print as one, else hex.
fn props(n: &Node) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("node".into(), json!(n.name));
    for (k, v) in &n.props {
        let text = v
            .strip_suffix(&[0])
            .filter(|t| t.iter().all(|b| (0x20..0x7f).contains(b)))
            .map(|t| String::from_utf8_lossy(t).into_owned());
        m.insert(k.clone(), json!(text.unwrap_or_else(|| hex::encode(v))));
    }
    Value::Object(m)
}

fn count(n: &Node) -> usize {
    1 + n.children.iter().map(count).sum::<usize>()
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

fn le16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn le64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

fn squashfs_info(d: &[u8]) -> Value {
    let comp = match le16(d, 20) {
        Some(1) => "gzip",
        Some(2) => "lzma",
        Some(3) => "lzo",
        Some(4) => "xz",
        Some(5) => "lz4",
        Some(6) => "zstd",
        _ => "unknown",
    };
    json!({
        "kind": "squashfs",
        "version": format!("{}.{}", le16(d, 28).unwrap_or(0), le16(d, 30).unwrap_or(0)),
        "inodes": le32(d, 4),
        "mkfs_time": le32(d, 8),
        "block_size": le32(d, 12),
        "compression": comp,
        "bytes_used": le64(d, 40),
    })
}

fn ubi_info(data: &[u8]) -> Value {
    // No header records the PEB size: the next EC header's magic gives it.
    let peb = (12..=21)
        .map(|s| 1usize << s)
        .find(|&p| data.get(p..p + 4) == Some(b"UBI#".as_slice()))
        .unwrap_or(data.len());
    let Ok(peb32) = u32::try_from(peb) else {
        return json!({"kind": "ubi", "error": "PEB size not found"});
    };
    match liminix_ubi::image::inspect(data, peb32) {
        Ok(i) => json!({
            "kind": "ubi",
            "peb_size": peb,
            "pebs": i.pebs,
            "vid_hdr_offset": i.vid_hdr_offset,
            "data_offset": i.data_offset,
            "image_seq": i.image_seq,
            "volumes": i.volumes.iter().map(|v| json!({
                "id": v.id,
                "name": v.name,
                "type": format!("{:?}", v.kind).to_lowercase(),
                "reserved_pebs": v.reserved_pebs,
                "autoresize": v.autoresize,
                "lebs": v.lebs,
            })).collect::<Vec<_>>(),
        }),
        Err(e) => json!({"kind": "ubi", "peb_size": peb, "error": e.to_string()}),
    }
}

fn mbr_info(d: &[u8]) -> Value {
    let parts: Vec<Value> = (0..4)
        .filter_map(|i| {
            let e = &d[446 + i * 16..446 + (i + 1) * 16];
            let (start, sectors) = (le32(e, 8)?, le32(e, 12)?);
            (e[4] != 0).then(|| {
                json!({
                    "number": i + 1,
                    "bootable": e[0] == 0x80,
                    "type": format!("{:02x}", e[4]),
                    "start": start,
                    "sectors": sectors,
                    "bytes": u64::from(sectors) * mbr::SECTOR,
                })
            })
        })
        .collect();
    json!({
        "kind": "mbr",
        "label_id": le32(d, 440).map(|v| format!("{v:#010x}")),
        "partitions": parts,
    })
}

/// The text form: one `key: value` line per field, nested fields indented.
pub fn text(v: &Value) -> String {
    let mut out = String::new();
    lines(v, 0, &mut out);
    out
}

fn lines(v: &Value, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        lines(x, depth + 1, out);
                    }
                    Value::Null => {}
                    _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(x))),
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                out.push_str(&format!("{pad}- [{i}]\n"));
                lines(x, depth + 1, out);
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(v))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
