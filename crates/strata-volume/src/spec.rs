//! `-v` and `--volumes-from` specs, parsed as Docker's Linux parser does
//! (moby `volume/mounts/linux_parser.go`), a little stricter:
//!
//! | spec                         | mount                                  |
//! |------------------------------|----------------------------------------|
//! | `/ctr`                       | a new anonymous volume at `/ctr`       |
//! | `NAME:/ctr[:MODE]`           | the named volume (made on first use)   |
//! | `/host:/ctr[:MODE]`          | a bind of the host directory           |
//!
//! MODE is a comma-separated list of `ro`, `rw` and (volumes only)
//! `nocopy`. The container path must be absolute, not `/`, and free of
//! `..` and NUL; so must a host path. `/ctr:ro` is refused, as Docker
//! refuses it: a mode needs a source.

use std::path::PathBuf;

use crate::{check_name, Error, ErrorKind, Result};

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A new volume with a random name.
    Anonymous,
    /// A volume by name.
    Named(String),
    /// A host directory, bound as it is.
    Host(PathBuf),
}

/// One parsed `-v` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub source: Source,
    /// Absolute, cleaned: no `.`, no empty components, no trailing `/`.
    pub destination: String,
    pub rw: bool,
    /// Do not fill a new volume from the image.
    pub nocopy: bool,
}

fn invalid(spec: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("invalid volume spec {spec:?}: {why}"),
    )
}

/// Checks an absolute path and returns it cleaned (`//a/./b/` is `/a/b`).
fn clean_abs(spec: &str, what: &str, p: &str) -> Result<String> {
    if p.contains('\0') {
        return Err(invalid(spec, format!("the {what} contains a NUL byte")));
    }
    if !p.starts_with('/') {
        return Err(invalid(spec, format!("the {what} {p:?} is not absolute")));
    }
    let mut out = String::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(invalid(spec, format!("the {what} {p:?} contains `..`"))),
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
    }
    if out.is_empty() {
        return Err(invalid(spec, format!("the {what} cannot be `/`")));
    }
    Ok(out)
}

/// Parses a MODE list: `(rw, nocopy)`.
fn parse_mode(spec: &str, mode: &str) -> Result<(bool, bool)> {
    let (mut rw, mut nocopy) = (None, false);
    for m in mode.split(',') {
        match m {
            "ro" | "rw" if rw.is_some() => {
                return Err(invalid(spec, "more than one of ro and rw"));
            }
            "ro" => rw = Some(false),
            "rw" => rw = Some(true),
            "nocopy" if nocopy => return Err(invalid(spec, "nocopy given twice")),
            "nocopy" => nocopy = true,
            "" => return Err(invalid(spec, "an empty mode")),
            other => {
                return Err(invalid(
                    spec,
                    format!("unknown mode {other:?} (ro, rw, nocopy)"),
                ))
            }
        }
    }
    Ok((rw.unwrap_or(true), nocopy))
}

/// Parses a `-v` spec.
pub fn parse(spec: &str) -> Result<VolumeSpec> {
    if spec.contains('\0') {
        return Err(invalid(spec, "it contains a NUL byte"));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid(spec, "an empty part"));
    }
    let (source, destination, mode) = match parts.as_slice() {
        [dst] => (None, *dst, None),
        [_, m] if parse_mode(spec, m).is_ok() => {
            return Err(invalid(spec, "a mode needs a source (NAME:PATH:MODE)"));
        }
        [src, dst] => (Some(*src), *dst, None),
        [src, dst, m] => (Some(*src), *dst, Some(*m)),
        _ => return Err(invalid(spec, "too many `:`")),
    };
    let destination = clean_abs(spec, "container path", destination)?;
    let (rw, nocopy) = match mode {
        Some(m) => parse_mode(spec, m)?,
        None => (true, false),
    };
    let source = match source {
        None => Source::Anonymous,
        Some(s) if s.starts_with('/') => {
            if nocopy {
                return Err(invalid(spec, "nocopy is for volumes, not host paths"));
            }
            Source::Host(PathBuf::from(clean_abs(spec, "host path", s)?))
        }
        Some(s) => {
            check_name(s).map_err(|e| invalid(spec, e))?;
            Source::Named(s.to_owned())
        }
    };
    Ok(VolumeSpec {
        source,
        destination,
        rw,
        nocopy,
    })
}

/// Parses `--volumes-from C[:ro|:rw]`: the container, and the mode that
/// overrides each mount's own (`None`: keep them).
pub fn parse_volumes_from(spec: &str) -> Result<(String, Option<bool>)> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid --volumes-from {spec:?}: {why}"),
        )
    };
    if spec.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    let (c, mode) = match spec.split_once(':') {
        None => (spec, None),
        Some((c, "ro")) => (c, Some(false)),
        Some((c, "rw")) => (c, Some(true)),
        Some(_) => return Err(bad("the mode must be ro or rw")),
    };
    if c.is_empty() {
        return Err(bad("no container"));
    }
    Ok((c.to_owned(), mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str, d: &str, rw: bool, nocopy: bool) -> VolumeSpec {
        VolumeSpec {
            source: Source::Named(n.into()),
            destination: d.into(),
            rw,
            nocopy,
        }
    }

    #[test]
    fn good_specs() {
        let table = [
            (
                "/data",
                VolumeSpec {
                    source: Source::Anonymous,
                    destination: "/data".into(),
                    rw: true,
                    nocopy: false,
                },
            ),
            ("v:/data", named("v", "/data", true, false)),
            ("v://data/./x/", named("v", "/data/x", true, false)),
            ("v:/data:ro", named("v", "/data", false, false)),
            ("v:/data:nocopy", named("v", "/data", true, true)),
            ("v:/data:ro,nocopy", named("v", "/data", false, true)),
            (
                "/srv/x:/data:ro",
                VolumeSpec {
                    source: Source::Host("/srv/x".into()),
                    destination: "/data".into(),
                    rw: false,
                    nocopy: false,
                },
            ),
        ];
        for (spec, want) in table {
            assert_eq!(parse(spec).unwrap(), want, "{spec}");
        }
    }

    #[test]
    fn hostile_specs_are_refused_with_the_reason() {
        let table = [
            ("", "empty part"),
            (":/data", "empty part"),
            ("v:", "empty part"),
            ("v::ro", "empty part"),
            ("v:/data:", "empty part"),
            ("data", "not absolute"),
            ("v:data", "not absolute"),
            ("v:/", "cannot be `/`"),
            ("/", "cannot be `/`"),
            ("v:/a/../etc", "contains `..`"),
            ("/a/..", "contains `..`"),
            ("/srv/../etc:/data", "contains `..`"),
            ("v:/da\0ta", "NUL"),
            ("v:/data:ro:x", "too many `:`"),
            ("a:b:c:d:e", "too many `:`"),
            ("/data:ro", "a mode needs a source"),
            ("v:/data:rw,ro", "more than one of ro and rw"),
            ("v:/data:nocopy,nocopy", "twice"),
            ("v:/data:z", "unknown mode"),
            ("v:/data:ro,", "empty mode"),
            ("/srv:/data:nocopy", "not host paths"),
            ("../v:/data", "invalid volume name"),
            ("a/b:/data", "invalid volume name"),
            (".v:/data", "invalid volume name"),
        ];
        let too_long = format!("{}:/data", "v".repeat(300));
        let e = parse(&too_long).unwrap_err().to_string();
        assert!(e.contains("at most 245"), "{e}");
        for (spec, want) in table {
            let e = parse(spec).expect_err(spec).to_string();
            assert!(e.contains(want), "{spec:?}: {e}");
            assert!(e.contains("invalid volume spec"), "{spec:?}: {e}");
        }
    }

    #[test]
    fn volumes_from() {
        assert_eq!(parse_volumes_from("c").unwrap(), ("c".into(), None));
        assert_eq!(
            parse_volumes_from("c:ro").unwrap(),
            ("c".into(), Some(false))
        );
        assert_eq!(
            parse_volumes_from("c:rw").unwrap(),
            ("c".into(), Some(true))
        );
        for bad in ["", ":ro", "c:x", "c:ro:rw", "c\0"] {
            assert!(parse_volumes_from(bad).is_err(), "{bad:?}");
        }
    }
}
