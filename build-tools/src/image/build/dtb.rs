//! Flattened device trees read into nodes and written back: the FIT kernel's DTB gets the
//! command line in `/chosen` as Liminix puts it there, and `inspect` lists a FIT's nodes. The
//! reader walks the structure block's tokens (begin node, property, end node, nop, end);
//! `vm-fdt` writes the result.

use vm_fdt::FdtWriter;

/// `0xd00dfeed`, the first word of every blob.
pub const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

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

    /// A string property without its NUL.
    pub fn string(&self, name: &str) -> Option<String> {
        let v = self.prop(name)?;
        let v = v.strip_suffix(&[0]).unwrap_or(v);
        Some(String::from_utf8_lossy(v).into_owned())
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn child_mut(&mut self, name: &str) -> &mut Node {
        match self.children.iter().position(|c| c.name == name) {
            Some(i) => &mut self.children[i],
            None => {
                self.children.push(Node {
                    name: name.to_owned(),
                    ..Node::default()
                });
                let last = self.children.len() - 1;
                &mut self.children[last]
            }
        }
    }

    fn set(&mut self, name: &str, value: Vec<u8>) {
        match self.props.iter_mut().find(|(n, _)| n == name) {
            Some(p) => p.1 = value,
            None => self.props.push((name.to_owned(), value)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DtbError {
    #[error("not a device tree blob: {0}")]
    Format(String),
    #[error("writing the device tree: {0}")]
    Write(#[from] vm_fdt::Error),
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Whether `data` starts with the FDT magic.
pub fn is_dtb(data: &[u8]) -> bool {
    be32(data, 0) == Some(MAGIC)
}

/// The tree of `blob` (its root node, named "").
pub fn read(blob: &[u8]) -> Result<Node, DtbError> {
    let bad = |why: &str| DtbError::Format(why.to_owned());
    if !is_dtb(blob) {
        return Err(bad("no 0xd00dfeed magic"));
    }
    let field = |at| {
        be32(blob, at)
            .map(|v| v as usize)
            .ok_or_else(|| bad("header cut short"))
    };
    let (total, off_struct, off_strings) = (field(4)?, field(8)?, field(12)?);
    if total > blob.len() {
        return Err(bad("total size runs past the end of the data"));
    }
    let strings = blob
        .get(off_strings..total)
        .ok_or_else(|| bad("strings block"))?;
    let mut walk = Walk {
        blob: blob.get(..total).ok_or_else(|| bad("total size"))?,
        at: off_struct,
        strings,
    };
    let mut stack: Vec<Node> = Vec::new();
    loop {
        match walk.token()? {
            BEGIN_NODE => stack.push(Node {
                name: walk.name()?,
                ..Node::default()
            }),
            PROP => {
                let (name, value) = walk.prop()?;
                stack
                    .last_mut()
                    .ok_or_else(|| bad("property outside a node"))?
                    .props
                    .push((name, value));
            }
            END_NODE => {
                let done = stack.pop().ok_or_else(|| bad("unbalanced end of node"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            NOP => {}
            END => return Err(bad("end of structure before the root closed")),
            t => return Err(DtbError::Format(format!("unknown token {t}"))),
        }
    }
}

struct Walk<'a> {
    blob: &'a [u8],
    at: usize,
    strings: &'a [u8],
}

impl Walk<'_> {
    fn token(&mut self) -> Result<u32, DtbError> {
        let t = be32(self.blob, self.at)
            .ok_or_else(|| DtbError::Format("structure cut short".into()))?;
        self.at += 4;
        Ok(t)
    }

    fn name(&mut self) -> Result<String, DtbError> {
        let rest = self.blob.get(self.at..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| DtbError::Format("node name without NUL".into()))?;
        let name = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.at += (len + 1).next_multiple_of(4);
        Ok(name)
    }

    fn prop(&mut self) -> Result<(String, Vec<u8>), DtbError> {
        let len = self.token()? as usize;
        let name_off = self.token()? as usize;
        let value = self
            .blob
            .get(self.at..self.at.saturating_add(len))
            .ok_or_else(|| DtbError::Format("property value cut short".into()))?
            .to_vec();
        self.at += len.next_multiple_of(4);
        let rest = self.strings.get(name_off..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        Ok((String::from_utf8_lossy(&rest[..end]).into_owned(), value))
    }
}

/// The blob of `root` (memory reservations are not carried: the boards' DTBs have none that
/// U-Boot does not add itself).
pub fn write(root: &Node) -> Result<Vec<u8>, DtbError> {
    let mut w = FdtWriter::new()?;
    node(&mut w, root)?;
    Ok(w.finish()?)
}

fn node(w: &mut FdtWriter, n: &Node) -> Result<(), DtbError> {
    let id = w.begin_node(&n.name)?;
    for (name, value) in &n.props {
        w.property(name, value)?;
    }
    for c in &n.children {
        node(w, c)?;
    }
    w.end_node(id)?;
    Ok(())
}

/// `blob` with `/chosen/<property>` set to `command_line`.
pub fn with_chosen(blob: &[u8], property: &str, command_line: &str) -> Result<Vec<u8>, DtbError> {
    let mut root = read(blob)?;
    let mut value = command_line.as_bytes().to_vec();
    value.push(0);
    root.child_mut("chosen").set(property, value);
    write(&root)
}
