//! Entry names: tar stores bytes, Linux names are bytes, so nothing here
//! assumes UTF-8.

/// A normalised entry path: its components, none of them empty, `.` or
/// `..`, none containing `/` or NUL. The empty list is the layer root.
pub(crate) type Components = Vec<Vec<u8>>;

/// Normalises a tar entry name (or a hard link's target) lexically:
/// leading `/` and `./` dropped, `.` and empty components skipped, `..`
/// removing the previous component.
///
/// A `..` that would climb above the root is refused rather than clamped:
/// no well-formed layer has one, and Docker refuses it too (moby's
/// `breakoutError`; the class of CVE-2007-4131 and of every tar-slip bug).
pub(crate) fn normalize(raw: &[u8]) -> Result<Components, &'static str> {
    if raw.contains(&0) {
        return Err("the name contains a NUL byte");
    }
    let mut out: Components = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("the name climbs out of the layer root with `..`");
                }
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// Joins components with `/`, no leading slash: the key under which the
/// applier remembers paths.
pub(crate) fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    out
}

/// `parent/name`, or `name` at the root.
pub(crate) fn child(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parent.len() + name.len() + 1);
    if !parent.is_empty() {
        out.extend_from_slice(parent);
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<Vec<String>, &'static str> {
        normalize(s.as_bytes()).map(|v| {
            v.into_iter()
                .map(|c| String::from_utf8(c).unwrap())
                .collect()
        })
    }

    #[test]
    fn normalize_strips_absolute_and_dot_components() {
        assert_eq!(n("/etc/passwd").unwrap(), ["etc", "passwd"]);
        assert_eq!(n("./etc//./passwd/").unwrap(), ["etc", "passwd"]);
        assert_eq!(n("dne/../.wh.etc").unwrap(), [".wh.etc"]);
        assert_eq!(n("..gitme").unwrap(), ["..gitme"]);
        assert!(n("./").unwrap().is_empty());
        assert!(n("").unwrap().is_empty());
    }

    #[test]
    fn normalize_refuses_climbing_out() {
        assert!(n("..").is_err());
        assert!(n("../victim/x").is_err());
        assert!(n("/../victim/x").is_err());
        assert!(n("a/../../x").is_err());
        assert!(normalize(b"a\0b").is_err());
    }

    #[test]
    fn normalize_keeps_non_utf8_bytes() {
        assert_eq!(
            normalize(b"d/\xff\xfe").unwrap(),
            vec![b"d".to_vec(), vec![0xff, 0xfe]]
        );
    }
}
