//! Editing a device tree blob: read it into a tree, change nodes and properties, and write it
//! back. Everything not changed (memory reservations, the boot CPU, every node and property in
//! order) is kept; the blob's free space is not, since U-Boot copies the tree into a padded
//! buffer of its own before it edits it for the kernel, and a kexec'd kernel gets the blob as
//! its own segment. The build host edits a board's blob for its images; the device edits the
//! running kernel's `/sys/firmware/fdt` to hand it to the next kernel. The bytes may be
//! untrusted: every offset is checked, nothing panics.

mod write;

pub use write::write;

/// `0xd00dfeed`, the first word of every blob.
pub const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
/// Deeper trees are refused, as Linux and vm-fdt refuse them (and the reader recurses per level).
const MAX_DEPTH: usize = 64;
/// The oldest layout whose header has every field read here (version 16 and later).
const OLDEST_VERSION: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum DtbError {
    #[error("not a device tree blob: {0}")]
    Malformed(String),
    #[error("device tree node {path} has no {property}")]
    Missing { path: String, property: String },
    #[error("device tree property {path}/{property} is {len} bytes, not one or two cells")]
    BadCells {
        path: String,
        property: String,
        len: usize,
    },
    #[error("{what} {value:#x} does not fit the {cells} cell(s) of {path}")]
    TooWide {
        what: &'static str,
        value: u64,
        cells: u32,
        path: String,
    },
    #[error("/chosen/{property} would hold a NUL, which ends a device tree string")]
    Nul { property: String },
    #[error("cannot write the device tree: {0}")]
    Write(String),
}

/// One node: its name (with unit address), properties in blob order, children in blob order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
    pub children: Vec<Node>,
}

impl Node {
    pub fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets `name` to `value`, in place when present, else last.
    pub fn set(&mut self, name: &str, value: Vec<u8>) {
        match self.props.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.props.push((name.to_owned(), value)),
        }
    }

    /// A string property without its NUL.
    pub fn string(&self, name: &str) -> Option<String> {
        let v = self.prop(name)?;
        let v = v.strip_suffix(&[0]).unwrap_or(v);
        Some(String::from_utf8_lossy(v).into_owned())
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The child `name`, made empty at the end when it is not there.
    pub fn child_mut(&mut self, name: &str) -> &mut Node {
        let i = match self.children.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.children.push(Node {
                    name: name.to_owned(),
                    ..Node::default()
                });
                self.children.len() - 1
            }
        };
        &mut self.children[i]
    }
}

/// A whole blob: the header fields kept across an edit, and the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dtb {
    pub reservations: Vec<(u64, u64)>,
    pub boot_cpuid_phys: u32,
    pub root: Node,
}

fn be32(b: &[u8], at: usize) -> Result<u32, DtbError> {
    at.checked_add(4)
        .and_then(|end| b.get(at..end))
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| DtbError::Malformed(format!("offset {at:#x} is past the end")))
}

fn be64(b: &[u8], at: usize) -> Result<u64, DtbError> {
    let hi = u64::from(be32(b, at)?);
    Ok(hi << 32 | u64::from(be32(b, at + 4)?))
}

/// The NUL-ended string at `at`.
fn cstr(b: &[u8], at: usize) -> Result<String, DtbError> {
    let rest = b
        .get(at..)
        .ok_or_else(|| DtbError::Malformed(format!("string at {at:#x} is past the end")))?;
    let len = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| DtbError::Malformed(format!("string at {at:#x} has no end")))?;
    String::from_utf8(rest[..len].to_vec())
        .map_err(|_| DtbError::Malformed(format!("string at {at:#x} is not UTF-8")))
}

fn align4(n: usize) -> Result<usize, DtbError> {
    n.checked_add(3)
        .map(|v| v & !3)
        .ok_or_else(|| DtbError::Malformed("offset overflows".into()))
}

/// Whether `data` starts with the FDT magic.
pub fn is_dtb(data: &[u8]) -> bool {
    be32(data, 0).is_ok_and(|m| m == MAGIC)
}

/// Reads a blob.
pub fn read(blob: &[u8]) -> Result<Dtb, DtbError> {
    if be32(blob, 0)? != MAGIC {
        return Err(DtbError::Malformed(format!("magic {:#x}", be32(blob, 0)?)));
    }
    let total = be32(blob, 4)? as usize;
    let blob = blob
        .get(..total)
        .ok_or_else(|| DtbError::Malformed(format!("total size {total} is past the end")))?;
    let version = be32(blob, 20)?;
    if version < OLDEST_VERSION {
        return Err(DtbError::Malformed(format!("version {version}")));
    }
    let strings = be32(blob, 12)? as usize;
    let mut s = Structure {
        blob,
        strings,
        at: be32(blob, 8)? as usize,
        depth: 0,
    };
    let root = s.root()?;
    Ok(Dtb {
        reservations: reservations(blob, be32(blob, 16)? as usize)?,
        boot_cpuid_phys: be32(blob, 28)?,
        root,
    })
}

fn reservations(blob: &[u8], mut at: usize) -> Result<Vec<(u64, u64)>, DtbError> {
    let mut v = Vec::new();
    loop {
        let (addr, size) = (be64(blob, at)?, be64(blob, at + 8)?);
        if addr == 0 && size == 0 {
            return Ok(v);
        }
        v.push((addr, size));
        at += 16;
    }
}

/// A cursor over the structure block.
struct Structure<'a> {
    blob: &'a [u8],
    strings: usize,
    at: usize,
    depth: usize,
}

impl Structure<'_> {
    fn token(&mut self) -> Result<u32, DtbError> {
        loop {
            let t = be32(self.blob, self.at)?;
            self.at += 4;
            if t != NOP {
                return Ok(t);
            }
        }
    }

    fn root(&mut self) -> Result<Node, DtbError> {
        match self.token()? {
            BEGIN_NODE => {}
            t => return Err(DtbError::Malformed(format!("structure starts with {t}"))),
        }
        let root = self.node()?;
        match self.token()? {
            END => Ok(root),
            t => Err(DtbError::Malformed(format!(
                "token {t} after the root node"
            ))),
        }
    }

    /// The node whose BEGIN_NODE token was just read.
    fn node(&mut self) -> Result<Node, DtbError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(DtbError::Malformed(format!(
                "nodes nest deeper than {MAX_DEPTH}"
            )));
        }
        let name = cstr(self.blob, self.at)?;
        self.at = align4(self.at + name.len() + 1)?;
        let mut node = Node {
            name,
            ..Node::default()
        };
        loop {
            match self.token()? {
                PROP => node.props.push(self.prop()?),
                BEGIN_NODE => node.children.push(self.node()?),
                END_NODE => {
                    self.depth -= 1;
                    return Ok(node);
                }
                t => {
                    return Err(DtbError::Malformed(format!(
                        "token {t} at {:#x} in node {:?}",
                        self.at - 4,
                        node.name
                    )))
                }
            }
        }
    }

    fn prop(&mut self) -> Result<(String, Vec<u8>), DtbError> {
        let len = be32(self.blob, self.at)? as usize;
        let name_at = self
            .strings
            .checked_add(be32(self.blob, self.at + 4)? as usize)
            .ok_or_else(|| DtbError::Malformed("string offset overflows".into()))?;
        let start = self.at + 8;
        let value = start
            .checked_add(len)
            .and_then(|end| self.blob.get(start..end))
            .ok_or_else(|| {
                DtbError::Malformed(format!("property at {start:#x} runs past the end"))
            })?
            .to_vec();
        self.at = align4(start + len)?;
        Ok((cstr(self.blob, name_at)?, value))
    }
}

/// `#address-cells` or `#size-cells` of `node` (at `path`), which must be 1 or 2.
pub fn cells(node: &Node, path: &str, property: &str) -> Result<u32, DtbError> {
    let v = node.prop(property).ok_or_else(|| DtbError::Missing {
        path: path.to_owned(),
        property: property.to_owned(),
    })?;
    let bad = || DtbError::BadCells {
        path: path.to_owned(),
        property: property.to_owned(),
        len: v.len(),
    };
    let n = match v {
        [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => return Err(bad()),
    };
    match n {
        1 | 2 => Ok(n),
        _ => Err(bad()),
    }
}

/// `value` as `cells` big-endian 32-bit cells, refused when it does not fit.
pub fn encode(what: &'static str, value: u64, cells: u32, path: &str) -> Result<Vec<u8>, DtbError> {
    match cells {
        2 => Ok(value.to_be_bytes().to_vec()),
        _ => u32::try_from(value)
            .map(|v| v.to_be_bytes().to_vec())
            .map_err(|_| DtbError::TooWide {
                what,
                value,
                cells,
                path: path.to_owned(),
            }),
    }
}

/// Reserves `[address, address + size)` for a phram device: the node
/// `/reserved-memory/phram-rootfs@ADDRESS` (`compatible = "phram"`, `reg`, `no-map`), with
/// `/reserved-memory` made, when missing, with the root's cell counts and an identity `ranges`.
pub fn reserve_phram(dtb: &mut Dtb, address: u64, size: u64) -> Result<(), DtbError> {
    let root_ac = cells(&dtb.root, "/", "#address-cells")?;
    let root_sc = cells(&dtb.root, "/", "#size-cells")?;
    let parent = dtb.root.child_mut("reserved-memory");
    if parent.prop("#address-cells").is_none() {
        parent.set("#address-cells", root_ac.to_be_bytes().to_vec());
        parent.set("#size-cells", root_sc.to_be_bytes().to_vec());
        parent.set("ranges", Vec::new());
    }
    let path = "/reserved-memory";
    let ac = cells(parent, path, "#address-cells")?;
    let sc = cells(parent, path, "#size-cells")?;
    let mut reg = encode("phram address", address, ac, path)?;
    reg.extend(encode("phram size", size, sc, path)?);
    let name = format!("phram-rootfs@{address:x}");
    parent.children.retain(|c| c.name != name);
    let node = parent.child_mut(&name);
    node.set("compatible", b"phram\0".to_vec());
    node.set("reg", reg);
    node.set("no-map", Vec::new());
    Ok(())
}

/// Sets the string property `/chosen/<property>` (making `/chosen` when missing).
pub fn set_chosen(dtb: &mut Dtb, property: &str, value: &str) -> Result<(), DtbError> {
    if value.contains('\0') {
        return Err(DtbError::Nul {
            property: property.to_owned(),
        });
    }
    let mut v = value.as_bytes().to_vec();
    v.push(0);
    dtb.root.child_mut("chosen").set(property, v);
    Ok(())
}
