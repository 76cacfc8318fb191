//! The blob writer: header, memory reservation block, structure block, strings block, in the
//! order dtc lays them out, version 17 (readable by anything that reads version 16).

use super::{Dtb, DtbError, Node, BEGIN_NODE, END, END_NODE, MAGIC, MAX_DEPTH, PROP};

const HEADER_LEN: usize = 40;
const VERSION: u32 = 17;
const LAST_COMPATIBLE_VERSION: u32 = 16;

/// Writes the blob of `dtb`. Property names are stored once each in the strings block.
pub fn write(dtb: &Dtb) -> Result<Vec<u8>, DtbError> {
    if !dtb.root.name.is_empty() {
        return Err(DtbError::Write(format!(
            "the root node is named {:?}; it must have no name",
            dtb.root.name
        )));
    }
    let mut w = Writer::default();
    w.node(&dtb.root, 1)?;
    put32(&mut w.structure, END);
    let mut reservations = Vec::with_capacity((dtb.reservations.len() + 1) * 16);
    for &(address, size) in dtb.reservations.iter().chain([&(0, 0)]) {
        reservations.extend(address.to_be_bytes());
        reservations.extend(size.to_be_bytes());
    }
    let rsv_at = HEADER_LEN;
    let struct_at = rsv_at + reservations.len();
    let strings_at = struct_at + w.structure.len();
    let total = strings_at + w.strings.len();
    let field = |n: usize| {
        u32::try_from(n).map_err(|_| DtbError::Write(format!("the blob would be {n} bytes")))
    };
    let header = [
        MAGIC,
        field(total)?,
        field(struct_at)?,
        field(strings_at)?,
        field(rsv_at)?,
        VERSION,
        LAST_COMPATIBLE_VERSION,
        dtb.boot_cpuid_phys,
        field(w.strings.len())?,
        field(w.structure.len())?,
    ];
    let mut blob = Vec::with_capacity(total);
    for v in header {
        put32(&mut blob, v);
    }
    blob.extend(reservations);
    blob.extend(w.structure);
    blob.extend(w.strings);
    Ok(blob)
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend(v.to_be_bytes());
}

/// Zero bytes up to the next multiple of 4, as every structure token starts aligned.
fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

#[derive(Default)]
struct Writer {
    structure: Vec<u8>,
    strings: Vec<u8>,
    /// (name, offset in `strings`) of every name stored so far.
    names: Vec<(String, u32)>,
}

impl Writer {
    fn node(&mut self, node: &Node, depth: usize) -> Result<(), DtbError> {
        if depth > MAX_DEPTH {
            return Err(DtbError::Write(format!(
                "nodes nest deeper than {MAX_DEPTH}"
            )));
        }
        if node.name.contains('\0') || (depth > 1 && node.name.is_empty()) {
            return Err(DtbError::Write(format!(
                "node name {:?} is empty or holds a NUL",
                node.name
            )));
        }
        put32(&mut self.structure, BEGIN_NODE);
        self.structure.extend(node.name.as_bytes());
        self.structure.push(0);
        pad4(&mut self.structure);
        for (i, (name, value)) in node.props.iter().enumerate() {
            if node.props[..i].iter().any(|(n, _)| n == name) {
                return Err(DtbError::Write(format!(
                    "node {:?} has the property {name:?} twice",
                    node.name
                )));
            }
            self.prop(name, value)?;
        }
        for c in &node.children {
            self.node(c, depth + 1)?;
        }
        put32(&mut self.structure, END_NODE);
        Ok(())
    }

    fn prop(&mut self, name: &str, value: &[u8]) -> Result<(), DtbError> {
        let len = u32::try_from(value.len())
            .map_err(|_| DtbError::Write(format!("property {name:?} is too long")))?;
        let offset = self.name(name)?;
        put32(&mut self.structure, PROP);
        put32(&mut self.structure, len);
        put32(&mut self.structure, offset);
        self.structure.extend(value);
        pad4(&mut self.structure);
        Ok(())
    }

    /// The strings-block offset of `name`, stored on first use.
    fn name(&mut self, name: &str) -> Result<u32, DtbError> {
        if name.is_empty() || name.contains('\0') {
            return Err(DtbError::Write(format!(
                "property name {name:?} is empty or holds a NUL"
            )));
        }
        if let Some((_, at)) = self.names.iter().find(|(n, _)| n == name) {
            return Ok(*at);
        }
        let at = u32::try_from(self.strings.len())
            .map_err(|_| DtbError::Write("the strings block is too long".into()))?;
        self.strings.extend(name.as_bytes());
        self.strings.push(0);
        self.names.push((name.to_owned(), at));
        Ok(at)
    }
}
