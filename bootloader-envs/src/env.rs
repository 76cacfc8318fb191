//! The variables of an environment: ordered `name=value` pairs held as raw bytes.
//!
//! U-Boot stores variables as `name=value\0` strings followed by one more `\0`. Names and
//! values are byte strings (U-Boot never interprets an encoding), so they are kept as
//! `Vec<u8>`. New variables are inserted before the first variable whose name sorts after
//! theirs; that is where libubootenv puts them, and U-Boot's own `saveenv` writes
//! everything sorted, so an environment edited here looks the same to both.

use crate::error::{EnvError, Result};

/// An ordered set of environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What [`Env::parse_data`] found besides the variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// Entries without `=` (skipped, as U-Boot and libubootenv do).
    pub skipped: usize,
    /// Offset of the terminating empty string within the data area.
    pub end: usize,
}

/// Checks a name the way U-Boot's `setenv` does: non-empty, no `=`, no NUL.
pub fn check_name(name: &[u8]) -> Result<()> {
    let why = if name.is_empty() {
        "empty"
    } else if name.contains(&b'=') {
        "contains '='"
    } else if name.contains(&0) {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(EnvError::BadName {
        name: String::from_utf8_lossy(name).into_owned(),
        why,
    })
}

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a data area (the bytes after the CRC and flags).
    ///
    /// Stops at the first empty string. Bytes after it are ignored whatever they are
    /// (U-Boot zero-fills, mkenvimage pads with 0xFF, libubootenv leaves stale bytes). A
    /// later duplicate of a name replaces the earlier value in place.
    pub fn parse_data(data: &[u8]) -> Result<(Env, ParseReport)> {
        let mut env = Env::new();
        let mut report = ParseReport::default();
        let mut pos = 0;
        while pos < data.len() && data[pos] != 0 {
            let len = data[pos..]
                .iter()
                .position(|&b| b == 0)
                .ok_or(EnvError::Unterminated(data.len()))?;
            let entry = &data[pos..pos + len];
            match entry.iter().position(|&b| b == b'=') {
                Some(eq) if eq > 0 => env.put(&entry[..eq], &entry[eq + 1..]),
                _ => report.skipped += 1,
            }
            pos += len + 1;
        }
        report.end = pos;
        Ok((env, report))
    }

    /// Parses `name=value` lines (the `printenv` / mkenvimage input format).
    ///
    /// Empty lines and lines starting with `#` are skipped; any other line without `=`
    /// is an error.
    pub fn from_text(text: &[u8]) -> Result<Env> {
        let mut env = Env::new();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let eq =
                line.iter()
                    .position(|&b| b == b'=')
                    .ok_or_else(|| EnvError::MissingEquals {
                        line: i + 1,
                        text: String::from_utf8_lossy(line).into_owned(),
                    })?;
            env.set(&line[..eq], &line[eq + 1..])?;
        }
        Ok(env)
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `name` as UTF-8 text (lossy), if set.
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Sets `name` to `value` (replacing in place, or inserting in sorted position).
    pub fn set(&mut self, name: &[u8], value: &[u8]) -> Result<()> {
        check_name(name)?;
        if value.contains(&0) {
            return Err(EnvError::BadValue {
                name: String::from_utf8_lossy(name).into_owned(),
            });
        }
        self.put(name, value);
        Ok(())
    }

    /// Removes `name`; returns whether it was set.
    pub fn remove(&mut self, name: &[u8]) -> bool {
        let before = self.vars.len();
        self.vars.retain(|(n, _)| n != name);
        before != self.vars.len()
    }

    /// Iterates over `(name, value)` in stored order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.vars.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True if no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Bytes the variables take in a data area, including the final empty string.
    pub fn encoded_len(&self) -> usize {
        self.vars
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum::<usize>()
            + 1
    }

    /// Serialises into a data area of exactly `area` bytes, padded with `pad`.
    pub fn encode_data(&self, area: usize, pad: u8) -> Result<Vec<u8>> {
        let needed = self.encoded_len();
        if needed > area {
            return Err(EnvError::TooLarge {
                needed,
                available: area,
            });
        }
        let mut out = Vec::with_capacity(area);
        for (n, v) in &self.vars {
            out.extend_from_slice(n);
            out.push(b'=');
            out.extend_from_slice(v);
            out.push(0);
        }
        out.push(0);
        out.resize(area, pad);
        Ok(out)
    }

    fn put(&mut self, name: &[u8], value: &[u8]) {
        if let Some(slot) = self.vars.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value.to_vec();
            return;
        }
        let at = self
            .vars
            .iter()
            .position(|(n, _)| n.as_slice() > name)
            .unwrap_or(self.vars.len());
        self.vars.insert(at, (name.to_vec(), value.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_stops_at_empty_string_and_ignores_tail() {
        let data = b"b=2\0a=1\0\0garbage=x\0\xff\xff";
        let (env, rep) = Env::parse_data(data).unwrap();
        assert_eq!(env.get(b"a"), Some(&b"1"[..]));
        assert_eq!(env.get(b"garbage"), None);
        assert_eq!(rep.end, 8);
        // sorted insertion puts a before b
        let names: Vec<_> = env.iter().map(|(n, _)| n.to_vec()).collect();
        assert_eq!(names, vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn parse_skips_entries_without_equals_and_dedups() {
        let (env, rep) = Env::parse_data(b"x=1\0noeq\0=v\0x=2\0\0").unwrap();
        assert_eq!(rep.skipped, 2);
        assert_eq!(env.len(), 1);
        assert_eq!(env.get(b"x"), Some(&b"2"[..]));
    }

    #[test]
    fn unterminated_data_is_an_error() {
        assert!(matches!(
            Env::parse_data(b"a=1\0b=2"),
            Err(EnvError::Unterminated(7))
        ));
        // an area that ends right after a NUL-terminated entry is accepted
        assert_eq!(Env::parse_data(b"a=1\0").unwrap().0.len(), 1);
    }

    #[test]
    fn set_validates_and_sorts() {
        let mut env = Env::new();
        env.set(b"zz", b"1").unwrap();
        env.set(b"aa", b"with spaces = and equals").unwrap();
        env.set(b"mm", b"").unwrap();
        assert!(env.set(b"a=b", b"1").is_err());
        assert!(env.set(b"", b"1").is_err());
        assert!(env.set(b"n", b"a\0b").is_err());
        let data = env.encode_data(64, 0).unwrap();
        assert!(data.starts_with(b"aa=with spaces = and equals\0mm=\0zz=1\0\0"));
        assert_eq!(data.len(), 64);
        assert!(env.remove(b"mm"));
        assert!(!env.remove(b"mm"));
    }

    #[test]
    fn too_large_is_reported_with_sizes() {
        let mut env = Env::new();
        env.set(b"k", b"0123456789").unwrap();
        // "k=0123456789\0" + "\0" = 14 bytes
        assert_eq!(env.encoded_len(), 14);
        assert!(env.encode_data(14, 0).is_ok());
        match env.encode_data(13, 0) {
            Err(EnvError::TooLarge { needed, available }) => {
                assert_eq!((needed, available), (14, 13))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_requires_equals() {
        let env = Env::from_text(b"# c\n\na=1\r\nb=x=y\n").unwrap();
        assert_eq!(env.get(b"b"), Some(&b"x=y"[..]));
        assert!(matches!(
            Env::from_text(b"a=1\nbad\n"),
            Err(EnvError::MissingEquals { line: 2, .. })
        ));
    }
}
