//! The rows of `images`, `ps`, `volume ls`, `layers` and `history` as
//! `--format` templates see them: each field a string, named and written
//! as Docker's formatter has it (`{{.ID}}`, `{{.Repository}}`,
//! `{{.CreatedSince}}`, ...), so that templates and `{{json .}}` written
//! for `docker` give the same text. Fields are declared in byte order:
//! `{{json .}}` then writes them in Docker's order (its contexts marshal
//! through a map).
//!
//! `trunc` is what `--no-trunc` turns off: 12-digit IDs, a shortened
//! command.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::filter::parse_time;
use crate::{short, Container, Digest, Image, ImageRef, Layer, MountKind, State, Status, Volume};

/// A field's name and the header `table` gives its column.
pub type Header = (&'static str, &'static str);

/// An ID as a listing shows it: 12 hex digits, or whole.
fn id(d: &str, trunc: bool) -> String {
    match trunc {
        true => short(d).to_owned(),
        false => d.to_owned(),
    }
}

/// One row of `images`: one per repository and tag.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageRow {
    pub containers: String,
    pub created_at: String,
    pub created_since: String,
    pub digest: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub repository: String,
    pub shared_size: String,
    pub size: String,
    pub tag: String,
    pub unique_size: String,
    pub virtual_size: String,
}

impl ImageRow {
    pub const HEADERS: &'static [Header] = &[
        ("Containers", "CONTAINERS"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedSince", "CREATED"),
        ("Digest", "DIGEST"),
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("SharedSize", "SHARED SIZE"),
        ("Size", "SIZE"),
        ("Tag", "TAG"),
        ("UniqueSize", "UNIQUE SIZE"),
        ("VirtualSize", "VIRTUAL SIZE"),
    ];

    /// The rows of `i`, as Docker makes them: a row per tag (per tag and
    /// digest of its repository with `digests`), a row per repository
    /// known by digest alone, or one `<none>` row.
    pub fn of(i: &Image, digests: bool, trunc: bool, now: SystemTime) -> Vec<ImageRow> {
        let row = |repo: &str, tag: &str, digest: &str| ImageRow {
            containers: "N/A".into(),
            created_at: created_at(&i.created),
            created_since: since(&i.created, now),
            digest: digest.into(),
            id: id(i.id.as_str(), trunc),
            repository: repo.into(),
            shared_size: "N/A".into(),
            size: size(i.size),
            tag: tag.into(),
            unique_size: "N/A".into(),
            virtual_size: size(i.size),
        };
        if i.tags.is_empty() && i.repo_digests.is_empty() {
            return vec![row("<none>", "<none>", "<none>")];
        }
        let digests_of = |name: &str| -> Vec<&Digest> {
            (i.repo_digests.iter())
                .filter(|d| d.name == name)
                .filter_map(|d| d.digest.as_ref())
                .collect()
        };
        let mut out = Vec::new();
        for t in &i.tags {
            match digests_of(&t.name) {
                d if d.is_empty() || !digests => out.push(row(&t.name, &t.tag, "<none>")),
                d => out.extend(d.iter().map(|d| row(&t.name, &t.tag, d.as_str()))),
            }
        }
        let untagged = |d: &&ImageRef| !i.tags.iter().any(|t| t.name == d.name);
        let mut repos: Vec<&str> = Vec::new();
        for d in i.repo_digests.iter().filter(untagged) {
            let digest = d.digest.as_ref().map_or("<none>", |d| d.as_str());
            if digests {
                out.push(row(&d.name, "<none>", digest));
            } else if !repos.contains(&d.name.as_str()) {
                repos.push(&d.name);
                out.push(row(&d.name, "<none>", "<none>"));
            }
        }
        out
    }
}

/// One row of `ps`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRow {
    pub command: String,
    pub created_at: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub image: String,
    pub labels: String,
    pub local_volumes: String,
    pub mounts: String,
    pub names: String,
    pub networks: String,
    pub ports: String,
    pub running_for: String,
    pub state: String,
    pub status: String,
}

impl ContainerRow {
    pub const HEADERS: &'static [Header] = &[
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Labels", "LABELS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Mounts", "MOUNTS"),
        ("Names", "NAMES"),
        ("Networks", "NETWORKS"),
        ("Ports", "PORTS"),
        ("RunningFor", "CREATED"),
        ("State", "STATE"),
        ("Status", "STATUS"),
    ];

    /// `c` in state `s`; `image` is what its IMAGE column says
    /// ([`crate::Store::container_image_name`]).
    pub fn new(c: &Container, s: &State, image: String, trunc: bool, now: SystemTime) -> Self {
        let command = c.cmd.join(" ");
        let command = match trunc {
            true => ellipsis(&command, 20),
            false => command,
        };
        let volumes: Vec<&str> = (c.mounts.iter())
            .filter(|m| m.kind == MountKind::Volume)
            .filter_map(|m| m.name.as_deref())
            .collect();
        ContainerRow {
            command: format!("{command:?}"),
            created_at: created_at(&c.created),
            id: id(c.id.as_str(), trunc),
            image,
            labels: String::new(),
            local_volumes: volumes.len().to_string(),
            mounts: (volumes.iter())
                .map(|v| {
                    if trunc {
                        ellipsis(v, 15)
                    } else {
                        v.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
            names: c.name.to_string(),
            networks: c.config.network_mode.clone(),
            ports: (c.config.publish.iter())
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            running_for: since(&c.created, now),
            state: s.status.as_str().into(),
            status: status(s, now),
        }
    }
}

/// Docker's STATUS: `Created`, `Up 2 minutes`, `Exited (0) 3 hours ago`.
fn status(s: &State, now: SystemTime) -> String {
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", duration(&s.started_at, now)),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            duration(&s.finished_at, now)
        ),
    }
}

/// One row of `volume ls`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeRow {
    pub driver: String,
    pub labels: String,
    pub links: String,
    pub mountpoint: String,
    pub name: String,
    pub scope: String,
    pub size: String,
}

impl VolumeRow {
    pub const HEADERS: &'static [Header] = &[
        ("Driver", "DRIVER"),
        ("Labels", "LABELS"),
        ("Links", "LINKS"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Name", "VOLUME NAME"),
        ("Scope", "SCOPE"),
        ("Size", "SIZE"),
    ];
}

impl From<&Volume> for VolumeRow {
    fn from(v: &Volume) -> VolumeRow {
        VolumeRow {
            driver: v.driver.clone(),
            labels: (v.labels.iter())
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            links: "N/A".into(),
            mountpoint: v.mountpoint.display().to_string(),
            name: v.name.clone(),
            scope: v.scope.clone(),
            size: "N/A".into(),
        }
    }
}

/// One row of `layers` (strata's own listing).
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    #[serde(rename = "CacheID")]
    pub cache_id: String,
    #[serde(rename = "ChainID")]
    pub chain_id: String,
    #[serde(rename = "DiffID")]
    pub diff_id: String,
    #[serde(rename = "Parent")]
    pub parent: String,
    #[serde(rename = "Refs")]
    pub refs: String,
    #[serde(rename = "Size")]
    pub size: String,
}

impl LayerRow {
    pub const HEADERS: &'static [Header] = &[
        ("CacheID", "CACHE ID"),
        ("ChainID", "CHAIN ID"),
        ("DiffID", "DIFF ID"),
        ("Parent", "PARENT"),
        ("Refs", "REFS"),
        ("Size", "SIZE"),
    ];

    pub fn new(l: &Layer, refs: usize, trunc: bool) -> LayerRow {
        LayerRow {
            cache_id: id(l.cache_id.as_str(), trunc),
            chain_id: id(l.chain_id.as_str(), trunc),
            diff_id: id(l.diff_id.as_str(), trunc),
            parent: l
                .parent
                .as_ref()
                .map_or(String::new(), |p| id(p.as_str(), trunc)),
            refs: refs.to_string(),
            size: size(l.size),
        }
    }
}

/// One step of an image's history, newest first, as `history` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The image this step made, where the store has it (`<missing>`
    /// otherwise, as in Docker).
    pub image: Option<Digest>,
    pub created: String,
    pub created_by: String,
    pub comment: String,
    /// The bytes of the layer the step added (0 for an empty layer).
    pub size: u64,
}

/// One row of `history`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryRow {
    pub comment: String,
    pub created_at: String,
    pub created_by: String,
    pub created_since: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub size: String,
}

impl HistoryRow {
    pub const HEADERS: &'static [Header] = &[
        ("Comment", "COMMENT"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("CreatedSince", "CREATED"),
        ("ID", "IMAGE"),
        ("Size", "SIZE"),
    ];

    pub fn new(s: &Step, trunc: bool, now: SystemTime) -> HistoryRow {
        // Docker shows a tab in a RUN line as a space.
        let created_by = s.created_by.replace('\t', " ");
        HistoryRow {
            comment: s.comment.clone(),
            created_at: created_at(&s.created),
            created_by: match trunc {
                true => ellipsis(&created_by, 45),
                false => created_by,
            },
            created_since: since(&s.created, now),
            id: s
                .image
                .as_ref()
                .map_or("<missing>".into(), |d| id(d.as_str(), trunc)),
            size: size(s.size),
        }
    }
}

impl crate::Store {
    /// The steps of image `id`'s history, newest first: each non-empty
    /// step with the size of the layer it added, and the images of the
    /// store (`id` and the parents `commit` recorded) at the steps that
    /// made them.
    pub fn history(&self, id: &Digest) -> crate::Result<Vec<Step>> {
        let config = self.images.image_json(id)?;
        let image = self.image(id)?;
        let history = config
            .get("history")
            .and_then(|h| h.as_array())
            .cloned()
            .unwrap_or_default();
        let chains = crate::layer::chain_ids(&image.diff_ids);
        let mut layers = chains.iter();
        let mut steps: Vec<Step> = Vec::new();
        for h in &history {
            let s = |k: &str| h.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            let empty = h.get("empty_layer").and_then(|v| v.as_bool()) == Some(true);
            let size = match empty {
                true => 0,
                false => match layers.next() {
                    Some(c) => self.layer(c)?.size,
                    None => 0,
                },
            };
            steps.push(Step {
                image: None,
                created: s("created"),
                created_by: s("created_by"),
                comment: s("comment"),
                size,
            });
        }
        // Each image of the chain at its own last step.
        let mut cur = Some((id.clone(), history.len()));
        while let Some((img, len)) = cur.take() {
            if let Some(step) = len.checked_sub(1).and_then(|i| steps.get_mut(i)) {
                step.image.get_or_insert(img.clone());
            }
            let parent = match img == *id {
                true => image.parent.clone(),
                false => self.image(&img).ok().and_then(|i| i.parent),
            };
            cur = parent.and_then(|p| {
                let n = self
                    .images
                    .image_json(&p)
                    .ok()?
                    .get("history")?
                    .as_array()?
                    .len();
                (n < len).then_some((p, n))
            });
        }
        steps.reverse();
        Ok(steps)
    }

    /// What `ps` shows in IMAGE for each of `containers`: the name it
    /// was created from while that still names the same image, else the
    /// image's ID (12 digits with `trunc`), as Docker shows it. Reads the
    /// tags once for the whole list.
    pub fn container_image_names(
        &self,
        containers: &[&Container],
        trunc: bool,
    ) -> crate::Result<Vec<String>> {
        let repos = self.repositories()?;
        // As `resolve_image` looks a name up: a digest names the content
        // whatever tag comes with it.
        let tagged = |r: ImageRef| -> Option<&str> {
            let r = match r.digest() {
                Some(d) => r.with_digest(d),
                None => r,
            };
            repos.get(&r.name)?.get(&r.to_string()).map(String::as_str)
        };
        Ok(containers
            .iter()
            .map(|c| {
                let by_id = || id(c.image.as_str(), trunc);
                let Some(name) = &c.image_name else {
                    return by_id();
                };
                let hex = name.strip_prefix("sha256:").unwrap_or(name);
                if !hex.is_empty() && c.image.hex().starts_with(hex) {
                    return by_id();
                }
                let names_it = ImageRef::parse(name).ok().and_then(tagged);
                match names_it == Some(c.image.as_str()) {
                    true => name.clone(),
                    false => by_id(),
                }
            })
            .collect())
    }
}

/// Bytes as Docker's listings show them: three significant digits, in
/// powers of 1000 (`74.8MB`, `512B`, `1.5kB`), Go's `%.3g`
/// (`units.HumanSizeWithPrecision(n, 3)`).
pub fn size(n: u64) -> String {
    size_with_precision(n, 3)
}

/// Bytes as Docker's totals show them (`system df`, "Total reclaimed
/// space"): four significant digits (`units.HumanSize`, Go's `%.4g`).
pub fn total_size(n: u64) -> String {
    size_with_precision(n, 4)
}

fn size_with_precision(n: u64, digits: i32) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", g(v, digits), UNITS[i])
}

/// Go's `%.{digits}g` for a value in [0, 1000).
fn g(v: f64, digits: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    let rounded = {
        let scale = 10f64.powi(digits - 1 - exp);
        (v * scale).round() / scale
    };
    // With three digits 999.5 rounds to 1000: Go writes that as 1e+03.
    if rounded >= 10f64.powi(digits) {
        return "1e+03".into();
    }
    let exp = rounded.abs().log10().floor() as i32;
    let decimals = (digits - 1 - exp).max(0) as usize;
    let s = format!("{rounded:.decimals$}");
    match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.').to_owned(),
        false => s,
    }
}

/// At most `max` characters, the last an ellipsis when cut (Docker's
/// `formatter.Ellipsis`).
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `2024-01-02 03:04:05 +0000 UTC`, Go's `time.Time.String()` in UTC;
/// the text as recorded when it is no time.
pub fn created_at(rfc3339: &str) -> String {
    match parse_time(rfc3339) {
        Some(t) => {
            let s = humantime::format_rfc3339_seconds(t).to_string();
            format!(
                "{} +0000 UTC",
                s.trim_end_matches('Z').replacen('T', " ", 1)
            )
        }
        None => rfc3339.to_owned(),
    }
}

/// `3 weeks ago`, as Docker's CREATED column says it.
pub fn since(rfc3339: &str, now: SystemTime) -> String {
    format!("{} ago", duration(rfc3339, now))
}

fn duration(rfc3339: &str, now: SystemTime) -> String {
    let d = parse_time(rfc3339)
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default();
    human_duration(d)
}

/// go-units' `HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let hours = ((d.as_secs_f64() / 3600.0) + 0.5) as u64;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", secs / 3600 / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        let cases = [
            (0, "0B"),
            (5, "5B"),
            (512, "512B"),
            (1500, "1.5kB"),
            (74_800_000, "74.8MB"),
            (5_590_000, "5.59MB"),
            (127_000_000, "127MB"),
            (999_600, "1e+03kB"),
            (1_000_000, "1MB"),
            (116_474_624, "116MB"),
        ];
        for (n, want) in cases {
            assert_eq!(size(n), want, "{n}");
        }
        // Totals: four digits (Go's %.4g).
        for (n, want) in [
            (0, "0B"),
            (1500, "1.5kB"),
            (4096, "4.096kB"),
            (116_474_624, "116.5MB"),
            (999_960, "1000kB"),
            (1_000_000, "1MB"),
        ] {
            assert_eq!(total_size(n), want, "{n}");
        }
    }

    #[test]
    fn durations_as_go_units_says_them() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (3599, "59 minutes"),
            (3600, "About an hour"),
            (47 * 3600, "47 hours"),
            (3 * 86400, "3 days"),
            (15 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(s)), want, "{s}");
        }
    }

    #[test]
    fn times_and_cut_text_as_docker() {
        assert_eq!(
            created_at("2024-01-02T03:04:05.999Z"),
            "2024-01-02 03:04:05 +0000 UTC"
        );
        assert_eq!(created_at("not a time"), "not a time");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
    }
}
