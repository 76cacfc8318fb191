//! libubootenv 0.3.2's in-memory variable list, reproduced for byte-identical results:
//! sorted insertion, `.flags` attributes (and their quirks), script files, and the exact
//! data-area layout its `libuboot_env_store` produces.

use std::io::BufRead;

/// Variable type attribute (`.flags` letters s d x b i m).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VarType {
    #[default]
    String,
    Decimal,
    Hex,
    Bool,
    Ip,
    Mac,
}

/// Access attribute (`.flags` letters a r o c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    #[default]
    Any,
    ReadOnly,
    WriteOnce,
    ChangeDefault,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
    pub ty: VarType,
    pub access: Access,
}

/// Why a set was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SetError {
    /// Name contains `=`.
    Invalid,
    /// Blocked by the variable's attributes.
    Permission,
}

/// The variable list.
#[derive(Debug, Default, Clone)]
pub struct VarList {
    pub vars: Vec<Var>,
}

/// Outcome of parsing a data area the way `libuboot_load` does.
pub enum LoadEnd {
    Ok,
    /// No NUL before the end of the area: libubootenv returns -EIO (keeping what it set).
    Unterminated,
}

impl VarList {
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.value.as_slice())
    }

    /// `libuboot_set_env`: `None` deletes.
    pub fn set(&mut self, name: &[u8], value: Option<&[u8]>) -> Result<(), SetError> {
        if name.contains(&b'=') {
            return Err(SetError::Invalid);
        }
        if let Some(pos) = self.vars.iter().position(|v| v.name == name) {
            if !allowed(&self.vars[pos], value) {
                return Err(SetError::Permission);
            }
            match value {
                None => {
                    self.vars.remove(pos);
                }
                Some(v) => self.vars[pos].value = v.to_vec(),
            }
            return Ok(());
        }
        let Some(value) = value else { return Ok(()) };
        let at = self
            .vars
            .iter()
            .position(|v| v.name.as_slice() > name)
            .unwrap_or(self.vars.len());
        self.vars.insert(
            at,
            Var {
                name: name.to_vec(),
                value: value.to_vec(),
                ty: VarType::String,
                access: Access::Any,
            },
        );
        Ok(())
    }

    /// Parses a valid copy's data area.
    pub fn load_data(&mut self, data: &[u8]) -> LoadEnd {
        let mut flagsvar: Option<Vec<u8>> = None;
        let mut pos = 0;
        let mut end = LoadEnd::Ok;
        while pos < data.len() && data[pos] != 0 {
            let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                end = LoadEnd::Unterminated;
                break;
            };
            let line = &data[pos..pos + len];
            pos += len + 1;
            let Some(eq) = line.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&line[..eq], &line[eq + 1..]);
            if name == b".flags" {
                flagsvar = Some(value.to_vec());
            } else {
                let _ = self.set(name, Some(value));
            }
        }
        // libubootenv applies .flags even when the load then fails.
        if let Some(f) = flagsvar {
            self.apply_flags(&f);
        }
        end
    }

    /// 0.3.2 only honours the first `name:attrs` item: its loop bound is `strlen()` of a
    /// buffer it has just cut with a NUL after the first name.
    fn apply_flags(&mut self, flags: &[u8]) {
        let Some(colon) = flags.iter().position(|&b| b == b':') else {
            return;
        };
        let name = &flags[..colon];
        let rest = &flags[colon + 1..];
        let attrs = &rest[..rest.iter().position(|&b| b == b',').unwrap_or(rest.len())];
        let Some(var) = self.vars.iter_mut().find(|v| v.name == name) else {
            return;
        };
        for &c in attrs {
            match c {
                b's' => var.ty = VarType::String,
                b'd' => var.ty = VarType::Decimal,
                b'x' => var.ty = VarType::Hex,
                b'b' => var.ty = VarType::Bool,
                b'i' => var.ty = VarType::Ip,
                b'm' => var.ty = VarType::Mac,
                b'a' => var.access = Access::Any,
                b'r' => var.access = Access::ReadOnly,
                b'o' => var.access = Access::WriteOnce,
                b'c' => var.access = Access::ChangeDefault,
                _ => {}
            }
        }
    }

    /// `libuboot_load_file`: `name=value` lines, `#` comments, empty value deletes, lines
    /// without `=` ignored, lines read in chunks of at most 1023 bytes like `fgets`.
    pub fn load_script(&mut self, reader: &mut dyn BufRead) -> std::io::Result<()> {
        let mut all = Vec::new();
        reader.read_to_end(&mut all)?;
        for chunk in fgets_chunks(&all, 1023) {
            let mut line = chunk;
            while let [rest @ .., b'\n' | b'\r'] = line {
                line = rest;
            }
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let Some(eq) = line.iter().position(|&b| b == b'=') else {
                continue;
            };
            let value = &line[eq + 1..];
            let _ = self.set(&line[..eq], (!value.is_empty()).then_some(value));
        }
        Ok(())
    }

    /// The data area `libuboot_env_store` builds, or `None` when a variable does not fit
    /// (it returns -ENOMEM). Bytes after the terminator are zero (see the crate docs).
    pub fn store_data(&self, area: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(area);
        for v in &self.vars {
            if v.name.len() + v.value.len() + 2 > area - out.len() {
                return None;
            }
            out.extend_from_slice(&v.name);
            out.push(b'=');
            out.extend_from_slice(&v.value);
            out.push(0);
        }
        let flagged: Vec<&Var> = self
            .vars
            .iter()
            .filter(|v| v.ty != VarType::String || v.access != Access::Any)
            .collect();
        if !flagged.is_empty() {
            let mut f = b".flags=".to_vec();
            for (i, v) in flagged.iter().enumerate() {
                if i > 0 {
                    f.push(b',');
                }
                f.extend_from_slice(&v.name);
                f.push(b':');
                f.push(type_letter(v.ty));
                f.push(access_letter(v.access));
            }
            if f.len() + 1 > area - out.len() {
                return None;
            }
            out.extend_from_slice(&f);
            out.push(0);
        }
        // An exactly full area gets no terminator (the C code writes it past the end).
        if out.len() < area {
            out.push(0);
        }
        out.resize(area, 0);
        Some(out)
    }
}

fn type_letter(t: VarType) -> u8 {
    match t {
        VarType::String => b's',
        VarType::Decimal => b'd',
        VarType::Hex => b'h', // written as 'h' but read back only as 'x'
        VarType::Bool => b'b',
        VarType::Ip => b'i',
        VarType::Mac => b'm',
    }
}

fn access_letter(a: Access) -> u8 {
    match a {
        Access::Any => b'a',
        Access::ReadOnly => b'r',
        Access::WriteOnce => b'o',
        Access::ChangeDefault => b'c',
    }
}

/// `libuboot_validate_flags`, including its quirks: read-only and write-once variables
/// can never be changed or deleted, and decimal/hex typed ones never set (its check
/// compares the first character with NUL).
fn allowed(var: &Var, value: Option<&[u8]>) -> bool {
    if matches!(var.access, Access::ReadOnly | Access::WriteOnce) {
        return false;
    }
    value.is_none() || !matches!(var.ty, VarType::Decimal | VarType::Hex)
}

/// Splits like repeated `fgets(buf, max + 1)`: at each newline, or after `max` bytes.
fn fgets_chunks(all: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = all;
    while !rest.is_empty() {
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(rest.len());
        let n = nl.min(max);
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_quirks() {
        let mut l = VarList::default();
        l.load_data(b"a=1\0b=2\0.flags=a:xr,b:sr\0\0");
        assert_eq!(l.vars[0].ty, VarType::Hex);
        assert_eq!(l.vars[0].access, Access::ReadOnly);
        assert_eq!(l.vars[1].access, Access::Any); // second item ignored by 0.3.2
        assert_eq!(l.set(b"a", Some(b"2")), Err(SetError::Permission));
        assert_eq!(l.set(b"b", None), Ok(()));
        let d = l.store_data(32).unwrap();
        assert_eq!(&d[..16], b"a=1\0.flags=a:hr\0");
        assert_eq!(d[16], 0);
    }

    #[test]
    fn script_lines() {
        let mut l = VarList::default();
        l.set(b"gone", Some(b"x")).unwrap();
        let mut s: &[u8] = b"#c\n\nk=v w=x\r\nnoeq\ngone=\n=empty\n";
        l.load_script(&mut s).unwrap();
        assert_eq!(l.get(b"k"), Some(&b"v w=x"[..]));
        assert_eq!(l.get(b"gone"), None);
        assert_eq!(l.get(b""), Some(&b"empty"[..]));
        assert_eq!(
            fgets_chunks(b"abcdef\ngh", 4),
            vec![&b"abcd"[..], b"ef\n", b"gh"]
        );
    }

    #[test]
    fn store_fits_exactly_without_terminator() {
        let mut l = VarList::default();
        l.set(b"a", Some(b"12")).unwrap(); // "a=12\0" = 5 bytes
        assert_eq!(l.store_data(5).unwrap(), b"a=12\0");
        assert!(l.store_data(4).is_none());
    }
}
