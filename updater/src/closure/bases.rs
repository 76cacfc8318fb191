//! Which older store path the agent offers as the base of a delta for a wanted one.
//!
//! Nix names store paths `<hash>-<pname>-<version>`, so a version bump renames the path: the
//! base is matched on the package name without its version, split as Nix's `parseDrvName`
//! splits (the version starts at the first `-` not followed by a letter), and on the output
//! (`-bin`, `-dev`, `-lib` … at the end of the version), so `openssl-3.0.13-bin` pairs with
//! `openssl-3.0.14-bin` and not with `openssl-3.0.14`. Among several candidates the agent
//! prefers the same name (a rebuild), then a path of the booted generation, then of the
//! current one, then of the newest generation, then the highest version.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use liminix_bundle::storepath::StorePath;

use crate::closure::generations::Generations;
use crate::root::{DeviceRoot, STORE};

/// `(pname, output)` of a store path name: `gcc-lib-13.2.0-lib` is `("gcc-lib", "lib")`.
pub fn package_key(name: &str) -> (&str, &str) {
    let b = name.as_bytes();
    let split = (0..b.len())
        .find(|&i| b[i] == b'-' && b.get(i + 1).is_some_and(|c| !c.is_ascii_alphabetic()));
    let Some(i) = split else {
        return (name, "");
    };
    let version = &name[i + 1..];
    let output = version
        .rsplit_once('-')
        .map(|(_, o)| o)
        .filter(|o| !o.is_empty() && o.bytes().all(|c| c.is_ascii_alphabetic()))
        .unwrap_or("");
    (&name[..i], output)
}

/// What the agent knows about the generations, for ranking candidates.
pub struct Context {
    /// Store path (device form) to (in a booted generation, in the current one, newest
    /// generation number listing it).
    listed: BTreeMap<String, (bool, bool, u32)>,
}

impl Context {
    /// Reads the generations' closures; a device without them ranks by name and version only.
    pub fn load(root: &DeviceRoot, gens: &Generations) -> Context {
        let booted = crate::closure::gc::booted_generations(root, gens).unwrap_or_default();
        let current = gens.current();
        let mut listed: BTreeMap<String, (bool, bool, u32)> = BTreeMap::new();
        for (n, closure) in gens.closures().unwrap_or_default() {
            for p in closure {
                let e = listed.entry(p).or_default();
                e.0 |= booted.contains(&n);
                e.1 |= current == Some(n);
                e.2 = e.2.max(n);
            }
        }
        Context { listed }
    }

    fn rank(&self, p: &StorePath) -> (bool, bool, u32) {
        let key = format!("{STORE}/{}", p.base_name());
        self.listed.get(&key).copied().unwrap_or_default()
    }
}

/// The best base for `want` among `present`, if any has its package key.
pub fn choose<'a>(
    ctx: &Context,
    want: &StorePath,
    present: &'a [StorePath],
) -> Option<&'a StorePath> {
    let key = package_key(want.name());
    present
        .iter()
        .filter(|q| *q != want && package_key(q.name()) == key)
        .max_by(|a, b| {
            let same = |p: &StorePath| p.name() == want.name();
            let (ra, rb) = (ctx.rank(a), ctx.rank(b));
            same(a)
                .cmp(&same(b))
                .then(ra.0.cmp(&rb.0))
                .then(ra.1.cmp(&rb.1))
                .then(ra.2.cmp(&rb.2))
                .then_with(|| version_cmp(a.name(), b.name()))
                // Deterministic among equals.
                .then_with(|| b.base_name().cmp(&a.base_name()))
        })
}

/// Compares names as versions: runs of digits by value, everything else bytewise.
fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (n, m) = (run(x), run(y));
                let trim = |s: &[u8]| {
                    let z = s.iter().take_while(|&&c| c == b'0').count();
                    s[z..].to_vec()
                };
                let (p, q) = (trim(&x[..n]), trim(&y[..m]));
                let o = p.len().cmp(&q.len()).then(p.cmp(&q));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[n..];
                y = &y[m..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_as_nix_does() {
        assert_eq!(package_key("busybox-1.36.1"), ("busybox", ""));
        assert_eq!(package_key("openssl-3.0.13-bin"), ("openssl", "bin"));
        assert_eq!(package_key("gcc-lib-13.2.0-lib"), ("gcc-lib", "lib"));
        assert_eq!(
            package_key("system-configuration-mips"),
            ("system-configuration-mips", "")
        );
        assert_eq!(package_key("s6-rc-0.5.4.2"), ("s6-rc", ""));
        assert_eq!(package_key("etc"), ("etc", ""));
        assert_eq!(package_key("hello-2.12.1-rc1"), ("hello", ""));
    }

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(version_cmp("libx-1.10", "libx-1.9"), Ordering::Greater);
        assert_eq!(version_cmp("libx-1.09", "libx-1.9"), Ordering::Equal);
        assert_eq!(version_cmp("libx-1.9a", "libx-1.9"), Ordering::Greater);
    }

    fn sp(digest: char, name: &str) -> StorePath {
        StorePath::from_base_name(&format!("{}-{name}", digest.to_string().repeat(32))).unwrap()
    }

    #[test]
    fn same_name_then_generations_then_version() {
        let want = sp('a', "libfoo-2.0");
        let present = vec![
            sp('b', "libfoo-1.0"),
            sp('c', "libfoo-1.5"),
            sp('d', "libfoo-dev-1.9"),
            sp('f', "libbar-2.0"),
        ];
        let mut ctx = Context {
            listed: BTreeMap::new(),
        };
        assert_eq!(
            choose(&ctx, &want, &present),
            Some(&present[1]),
            "highest version"
        );
        let listed = |p: &StorePath| format!("{STORE}/{}", p.base_name());
        ctx.listed.insert(listed(&present[0]), (false, true, 3));
        assert_eq!(
            choose(&ctx, &want, &present),
            Some(&present[0]),
            "current generation"
        );
        ctx.listed.insert(listed(&present[1]), (true, false, 2));
        assert_eq!(
            choose(&ctx, &want, &present),
            Some(&present[1]),
            "booted generation"
        );
        let rebuilt = [&present[..], &[sp('g', "libfoo-2.0")]].concat();
        assert_eq!(
            choose(&ctx, &want, &rebuilt),
            Some(&rebuilt[4]),
            "a rebuild"
        );
        assert_eq!(choose(&ctx, &sp('h', "zlib-1"), &present), None);
    }
}
