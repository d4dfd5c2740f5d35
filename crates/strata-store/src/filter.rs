//! `--filter KEY=VALUE` for `images`, `ps` and `volume ls`, with the keys
//! and meanings of Docker's (`docker images --filter`, `docker ps
//! --filter`, `docker volume ls --filter`):
//!
//! - values given for one key are alternatives (any may match);
//!   different keys must all match;
//! - a key the listing does not know, a term without `=`, or a value a
//!   key cannot take is an error, before anything is listed.
//!
//! Names (`ps --filter name=`, `volume ls --filter name=`) match where
//! the value occurs in the name; `^` and `$` anchor it at the start and
//! end (Docker takes a full regular expression there: these are the
//! forms scripts use). References (`images --filter reference=`) match as
//! Docker's do: a shell pattern (`*`, `?`, `[a-z]`, `\`) over `name:tag`
//! or over the name alone, where `*` stops at `/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use crate::{Container, Digest, Error, ErrorKind, Image, ImageRef, Result, State, Status, Volume};

/// A container `ps` lists, and its state.
pub type Listed = (Container, State);

/// What is listed: each takes its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Images,
    Containers,
    Volumes,
}

impl Listing {
    /// The keys this listing takes.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Listing::Images => &["before", "dangling", "label", "reference", "since"],
            Listing::Containers => &["ancestor", "label", "name", "status"],
            Listing::Volumes => &["dangling", "driver", "label", "name"],
        }
    }

    fn command(self) -> &'static str {
        match self {
            Listing::Images => "images",
            Listing::Containers => "ps",
            Listing::Volumes => "volume ls",
        }
    }
}

/// The statuses `ps --filter status=` takes (Docker's list).
pub const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// Parsed `--filter` terms: each key's values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    terms: BTreeMap<String, Vec<String>>,
}

fn invalid(why: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, why)
}

impl Filters {
    /// `KEY=VALUE` terms for `listing`; refuses an unknown key, a term
    /// without `=` and a value its key cannot take.
    pub fn parse(listing: Listing, terms: &[String]) -> Result<Filters> {
        let mut out = Filters::default();
        for t in terms {
            let Some((k, v)) = t.split_once('=') else {
                return Err(invalid(format!(
                    "bad filter {t:?}: expected KEY=VALUE, as dangling=true"
                )));
            };
            let k = k.trim().to_ascii_lowercase();
            if !listing.keys().contains(&k.as_str()) {
                return Err(invalid(format!(
                    "invalid filter {k:?} for `{}` (it takes: {})",
                    listing.command(),
                    listing.keys().join(", ")
                )));
            }
            check_value(&k, v)?;
            out.terms.entry(k).or_default().push(v.to_owned());
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    fn has(&self, key: &str) -> bool {
        self.terms.contains_key(key)
    }

    fn values(&self, key: &str) -> &[String] {
        self.terms.get(key).map_or(&[], Vec::as_slice)
    }

    /// Whether `key` is unfiltered or one of its values passes `test`.
    fn any(&self, key: &str, mut test: impl FnMut(&str) -> bool) -> bool {
        !self.has(key) || self.values(key).iter().any(|v| test(v))
    }

    /// `dangling=`: true, false or unfiltered (None).
    fn dangling(&self) -> Option<bool> {
        // Checked by `parse`: each value is a boolean; the last one wins.
        self.values("dangling")
            .last()
            .map(|v| boolean(v) == Some(true))
    }

    /// Whether a status filter is given: `ps` then lists stopped
    /// containers without `-a`, as Docker does.
    pub fn shows_all_statuses(&self) -> bool {
        self.has("status")
    }

    /// `label=KEY` or `label=KEY=VALUE` against `labels`: every label
    /// term must match (Docker's rule for labels).
    fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.values("label")
            .iter()
            .all(|term| match term.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|l| l == v),
                None => labels.contains_key(term.as_str()),
            })
    }

    /// Whether a label filter is given (the caller reads labels only then).
    pub fn wants_labels(&self) -> bool {
        self.has("label")
    }
}

fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Refuses a value `key` cannot take.
fn check_value(key: &str, v: &str) -> Result<()> {
    let bad = |want: &str| Err(invalid(format!("invalid filter {key}={v:?}: {want}")));
    match key {
        "dangling" if boolean(v).is_none() => bad("expected true or false"),
        "status" if !STATUSES.contains(&v) => {
            bad(&format!("a status is one of {}", STATUSES.join(", ")))
        }
        "reference" => glob_match(v, "")
            .map(|_| ())
            .map_err(|why| invalid(format!("invalid filter reference={v:?}: {why}"))),
        "label" if v.is_empty() || v.starts_with('=') => bad("expected KEY or KEY=VALUE"),
        "before" | "since" | "ancestor" | "name" | "driver" if v.is_empty() => bad("empty"),
        _ => Ok(()),
    }
}

impl crate::Store {
    /// The images `filters` keep, newest first, and the error of each
    /// image that does not read back. A `reference=` filter also narrows
    /// the tags each image lists to those it matches, as Docker's does;
    /// `label=` reads each image's config.
    pub fn filtered_images(&self, filters: &Filters) -> Result<(Vec<Image>, Vec<Error>)> {
        let (images, bad) = self.readable_images()?;
        let created = |name: &str| -> Result<Option<SystemTime>> {
            let id = self.resolve_image(name)?;
            let image = images.iter().find(|i| i.id == id);
            let created = match image {
                Some(i) => i.created.clone(),
                None => self.image(&id)?.created,
            };
            Ok(parse_time(&created))
        };
        let before: Vec<_> = (filters.values("before").iter())
            .map(|n| created(n))
            .collect::<Result<_>>()?;
        let since: Vec<_> = (filters.values("since").iter())
            .map(|n| created(n))
            .collect::<Result<_>>()?;
        let mut out = Vec::new();
        for mut i in images {
            if filters.has("reference") {
                i.tags
                    .retain(|t| filters.any("reference", |p| reference_matches(p, t)));
                i.repo_digests
                    .retain(|t| filters.any("reference", |p| reference_matches(p, t)));
                if i.tags.is_empty() && i.repo_digests.is_empty() {
                    continue;
                }
            }
            if filters.dangling().is_some_and(|d| d != i.tags.is_empty()) {
                continue;
            }
            let t = parse_time(&i.created);
            if !before.iter().all(|b| t < *b && t.is_some()) || !since.iter().all(|s| t > *s) {
                continue;
            }
            if filters.wants_labels() && !filters.labels_match(&self.image_labels(&i.id)?) {
                continue;
            }
            out.push(i);
        }
        Ok((out, bad))
    }

    /// The `Labels` of image `id`'s config (none when it has none).
    pub fn image_labels(&self, id: &Digest) -> Result<BTreeMap<String, String>> {
        Ok(crate::run_config::image_labels(
            &self.images.image_json(id)?,
        ))
    }

    /// The containers `ps` lists: the running ones, or all with `all`
    /// (or with a status filter), that `filters` keep, newest first as
    /// Docker lists them, with their states; and the error of each that does not read back.
    /// A container's labels are those `create` recorded (its image's and
    /// `--label`'s); a record from before labels were kept has its
    /// image's.
    pub fn filtered_containers(
        &self,
        all: bool,
        filters: &Filters,
    ) -> Result<(Vec<Listed>, Vec<Error>)> {
        let (containers, bad) = self.readable_containers()?;
        let all = all || filters.shows_all_statuses();
        let ancestors = self.descendants(filters.values("ancestor"))?;
        let mut labels: HashMap<Digest, BTreeMap<String, String>> = HashMap::new();
        let mut out = Vec::new();
        for c in containers {
            let state = self.container_state(&c)?;
            if !(all || state.status == Status::Running)
                || !filters.any("status", |s| s == state.status.as_str())
                || !filters.any("name", |n| name_matches(n, c.name.as_str()))
                || (filters.has("ancestor") && !ancestors.contains(&c.image))
            {
                continue;
            }
            if filters.wants_labels() && !c.config.labels.is_empty() {
                if !filters.labels_match(&c.config.labels) {
                    continue;
                }
            } else if filters.wants_labels() {
                if !labels.contains_key(&c.image) {
                    // An image removed under a container has no labels.
                    let l = self.image_labels(&c.image).unwrap_or_default();
                    labels.insert(c.image.clone(), l);
                }
                if !filters.labels_match(&labels[&c.image]) {
                    continue;
                }
            }
            out.push((c, state));
        }
        out.reverse();
        Ok((out, bad))
    }

    /// The images `names` name and every image made from them (through
    /// the parents `commit` records), as `ps --filter ancestor=` matches.
    /// A name that names no image matches nothing, as in Docker.
    fn descendants(&self, names: &[String]) -> Result<BTreeSet<Digest>> {
        let mut found: BTreeSet<Digest> = names
            .iter()
            .filter_map(|n| self.resolve_image(n).ok())
            .collect();
        if found.is_empty() {
            return Ok(found);
        }
        let (images, _) = self.readable_images()?;
        loop {
            let more: Vec<Digest> = images
                .iter()
                .filter(|i| !found.contains(&i.id))
                .filter(|i| i.parent.as_ref().is_some_and(|p| found.contains(p)))
                .map(|i| i.id.clone())
                .collect();
            if more.is_empty() {
                return Ok(found);
            }
            found.extend(more);
        }
    }

    /// The volumes `filters` keep. `dangling=` reads every container
    /// once, whatever the number of volumes.
    pub fn filtered_volumes(&self, filters: &Filters) -> Result<Vec<Volume>> {
        let volumes = self.volumes()?;
        let used: Option<BTreeSet<String>> = match filters.dangling() {
            Some(_) => Some(
                self.readable_containers()?
                    .0
                    .iter()
                    .flat_map(|c| c.mounts.iter().filter_map(|m| m.name.clone()))
                    .collect(),
            ),
            None => None,
        };
        Ok(volumes
            .into_iter()
            .filter(|v| {
                let dangling = used.as_ref().map(|u| !u.contains(&v.name));
                filters.dangling() == dangling
                    && filters.any("name", |n| name_matches(n, &v.name))
                    && filters.any("driver", |d| d == v.driver)
                    && filters.labels_match(&v.labels)
            })
            .collect())
    }
}

/// An RFC 3339 time as image configs and records hold it.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(s))
        .ok()
}

/// A `name=` filter's value against a name: where it occurs, `^` and `$`
/// anchoring it (a leading `/` as Docker's names have is allowed).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (start, rest) = match pattern.strip_prefix('^') {
        Some(r) => (true, r.strip_prefix('/').unwrap_or(r)),
        None => (false, pattern),
    };
    let (end, core) = match rest.strip_suffix('$') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    match (start, end) {
        (true, true) => name == core,
        (true, false) => name.starts_with(core),
        (false, true) => name.ends_with(core),
        (false, false) => name.contains(core.strip_prefix('/').unwrap_or(core)),
    }
}

/// Docker's `reference.FamiliarMatch`: the pattern against `name:tag`
/// (or `name@digest`), then against the name alone.
pub fn reference_matches(pattern: &str, r: &ImageRef) -> bool {
    glob_match(pattern, &r.to_string()).unwrap_or(false)
        || glob_match(pattern, &r.name).unwrap_or(false)
}

/// Go's `path.Match`: `*` any run of characters but `/`, `?` one
/// character but `/`, `[...]` a class (`^` or `!` negating, `a-z`
/// ranges), `\` escaping the next character. A malformed pattern is an
/// error whatever the name.
pub fn glob_match(pattern: &str, name: &str) -> std::result::Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Checked whole first, so that a bad class late in the pattern is
    // an error even when an early part fails to match.
    check_pattern(&p)?;
    Ok(match_from(&p, &n))
}

fn check_pattern(p: &[char]) -> std::result::Result<(), String> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 == p.len() => return Err("a trailing \\".into()),
            '\\' => i += 2,
            '[' => i = class_end(p, i)?,
            _ => i += 1,
        }
    }
    Ok(())
}

/// The index after the class opening at `p[open]`.
fn class_end(p: &[char], open: usize) -> std::result::Result<usize, String> {
    let mut i = open + 1;
    if matches!(p.get(i), Some('^' | '!')) {
        i += 1;
    }
    let first = i;
    while i < p.len() {
        match p[i] {
            ']' if i > first => return Ok(i + 1),
            '\\' => i += 2,
            '-' if i == first || p.get(i + 1) == Some(&']') => {
                return Err("a range without an end in [...]".into())
            }
            _ => i += 1,
        }
    }
    Err("an unclosed [".into())
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => {
            // `*` never crosses a `/`.
            let rest = &p[1..];
            (0..=n.len())
                .take_while(|&k| k == 0 || n[k - 1] != '/')
                .any(|k| match_from(rest, &n[k..]))
        }
        Some('?') => n.first().is_some_and(|&c| c != '/') && match_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some(&c) = n.first() else { return false };
            let end = class_end(p, 0).expect("checked by check_pattern");
            class_has(&p[1..end - 1], c) && match_from(&p[end..], &n[1..])
        }
        Some('\\') => n.first() == p.get(1) && match_from(&p[2..], &n[1..]),
        Some(&c) => n.first() == Some(&c) && match_from(&p[1..], &n[1..]),
    }
}

/// Whether class body `body` (inside the brackets) holds `c`.
fn class_has(body: &[char], c: char) -> bool {
    let (negated, body) = match body.first() {
        Some('^' | '!') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut i = 0;
    let mut found = false;
    while i < body.len() {
        let lo = if body[i] == '\\' {
            i += 1;
            body[i]
        } else {
            body[i]
        };
        i += 1;
        let hi = if body.get(i) == Some(&'-') && i + 1 < body.len() {
            let hi = if body[i + 1] == '\\' {
                body[i + 2]
            } else {
                body[i + 1]
            };
            i += if body[i + 1] == '\\' { 3 } else { 2 };
            hi
        } else {
            lo
        };
        found |= lo <= c && c <= hi;
    }
    found != negated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(l: Listing, terms: &[&str]) -> Result<Filters> {
        let terms: Vec<String> = terms.iter().map(|t| t.to_string()).collect();
        Filters::parse(l, &terms)
    }

    #[test]
    fn refuses_unknown_keys_missing_equals_and_bad_values() {
        let cases: &[(Listing, &str, &str)] = &[
            (Listing::Images, "colour=red", "invalid filter \"colour\""),
            (Listing::Images, "dangling", "expected KEY=VALUE"),
            (Listing::Images, "dangling=maybe", "true or false"),
            (Listing::Images, "reference=[a", "unclosed ["),
            (Listing::Images, "label=", "KEY or KEY=VALUE"),
            (Listing::Containers, "status=sleeping", "a status is one of"),
            (
                Listing::Containers,
                "reference=x",
                "invalid filter \"reference\"",
            ),
            (
                Listing::Volumes,
                "status=running",
                "invalid filter \"status\"",
            ),
            (Listing::Volumes, "dangling=yes", "true or false"),
        ];
        for (l, term, why) in cases {
            let e = parse(*l, &[term]).expect_err(term);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{term}");
            assert!(e.to_string().contains(why), "{term}: {e}");
        }
    }

    #[test]
    fn values_of_one_key_are_alternatives() {
        let f = parse(Listing::Containers, &["status=running", "status=exited"]).unwrap();
        assert!(f.any("status", |s| s == "exited"));
        assert!(!f.any("status", |s| s == "created"));
        assert!(f.shows_all_statuses());
        assert!(parse(Listing::Containers, &[])
            .unwrap()
            .any("status", |_| false));
    }

    #[test]
    fn every_label_term_must_match() {
        let labels = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "".to_owned()),
        ]);
        let cases: &[(&[&str], bool)] = &[
            (&["label=a"], true),
            (&["label=a=1"], true),
            (&["label=a=2"], false),
            (&["label=a", "label=b="], true),
            (&["label=a", "label=c"], false),
        ];
        for (terms, want) in cases {
            let f = parse(Listing::Volumes, terms).unwrap();
            assert_eq!(f.labels_match(&labels), *want, "{terms:?}");
        }
    }

    #[test]
    fn names_match_inside_or_anchored() {
        let cases = [
            ("web", "my-web-1", true),
            ("^web", "my-web-1", false),
            ("^web", "web-1", true),
            ("^/web$", "web", true),
            ("1$", "web-1", true),
            ("/web", "web", true),
            ("db", "web", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(name_matches(p, n), want, "{p} {n}");
        }
    }

    #[test]
    fn references_match_as_docker_familiar_match() {
        let cases = [
            ("debian", "debian:12", true),
            ("debian:12", "debian:12", true),
            ("debian:1*", "debian:12", true),
            ("deb*", "debian:12", true),
            ("*", "user/app:1", false),
            ("*/*", "user/app:1", true),
            ("user/*:1", "user/app:1", true),
            ("debian:1?", "debian:12", true),
            ("debian:[0-9]*", "debian:12", true),
            ("debian:[^0-9]*", "debian:12", false),
            ("alpine", "debian:12", false),
        ];
        for (p, r, want) in cases {
            let r = ImageRef::parse(r).unwrap();
            assert_eq!(reference_matches(p, &r), want, "{p} {r}");
        }
    }

    #[test]
    fn malformed_patterns_are_errors_whatever_the_name() {
        for p in ["[", "a[b", "[]", "x\\", "[a-]"] {
            assert!(glob_match(p, "zzz").is_err(), "{p}");
        }
        assert_eq!(glob_match("a\\*", "a*"), Ok(true));
        assert_eq!(glob_match("a\\*", "ab"), Ok(false));
    }

    #[test]
    fn times_of_configs_parse() {
        let a = parse_time("2024-01-02T03:04:05.123456789Z").unwrap();
        let b = parse_time("2024-01-02T03:04:06Z").unwrap();
        assert!(a < b);
        assert!(parse_time("yesterday").is_none());
    }
}
