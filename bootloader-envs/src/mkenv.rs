//! An image builder that reproduces `mkenvimage` byte for byte.
//!
//! mkenvimage copies its input lines verbatim (no sorting, no de-duplication, lines
//! without `=` kept), turns a backslash-newline into a literal newline inside the value,
//! skips empty lines and lines starting with `#`, writes flags = 1 for `-r`, and pads
//! with 0xFF unless `-p` says otherwise. Useful to make test fixtures and factory images.

use crate::error::{EnvError, Result};
use crate::layout::Layout;

/// Builds the data area from mkenvimage-style text, keeping entries as they are.
pub fn data_from_text(text: &[u8], area: usize, pad: u8) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(area);
    let mut entry: Vec<u8> = Vec::new();
    let mut lines = text.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if let Some(cont) = line.strip_suffix(b"\\") {
            if lines.peek().is_some() {
                entry.extend_from_slice(cont);
                entry.push(b'\n');
                continue;
            }
        }
        entry.extend_from_slice(line);
        if !(entry.is_empty() || entry[0] == b'#') {
            out.extend_from_slice(&entry);
            out.push(0);
        }
        entry.clear();
    }
    out.push(0);
    if out.len() > area {
        return Err(EnvError::TooLarge {
            needed: out.len(),
            available: area,
        });
    }
    out.resize(area, pad);
    Ok(out)
}

/// A whole copy as `mkenvimage [-r] [-b] [-p pad] -s size` writes it.
pub fn image_from_text(layout: &Layout, text: &[u8], pad: u8) -> Result<Vec<u8>> {
    let data = data_from_text(text, layout.data_len(), pad)?;
    Ok(layout.wrap(&data, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_raw_lines_and_continuations() {
        let d = data_from_text(b"z=1\n#c\n\nnoeq\nx=a\\\nb\n", 24, 0xFF).unwrap();
        assert_eq!(&d[..16], b"z=1\0noeq\0x=a\nb\0\0");
        assert!(d[16..].iter().all(|&b| b == 0xFF));
    }
}
