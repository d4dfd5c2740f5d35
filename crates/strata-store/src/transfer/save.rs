//! `strata save`: images out of the store as a docker-archive, an OCI
//! archive or an OCI layout directory.
//!
//! All three hold the OCI image layout Docker 25's `docker save` writes;
//! the docker-archive adds Docker's two files beside it, which is all
//! Docker 20.10 and older read:
//!
//! ```text
//! blobs/sha256/<image-id hex>     an image's config, byte-exact
//! blobs/sha256/<diffID hex>       a layer, uncompressed, byte for byte as it
//!                                 came in; once, however many images share it
//! blobs/sha256/<manifest hex>     an image's OCI manifest
//! index.json                      one entry per tag; one without annotations
//!                                 for an image saved untagged
//! oci-layout
//! manifest.json                   docker-archive: [{Config, RepoTags, Layers}]
//! repositories                    docker-archive: {"name":{"tag":"<top diffID hex>"}},
//!                                 when anything is tagged
//! ```
//!
//! # Tags
//!
//! An image named by tag records that tag: `RepoTags` and `repositories`
//! get Docker's short form (`busybox:latest`), the index entry
//! `org.opencontainers.image.ref.name` = the tag alone and
//! `io.containerd.image.name` = the full name
//! (`docker.io/library/busybox:latest`), as Docker 25 writes them. An
//! image named by ID or ID prefix is saved untagged, as `docker save` and
//! `podman save` do.
//!
//! # Concurrency
//!
//! Images and layers are looked up under the store lock, which is dropped
//! before any layer is streamed: a long save does not hold up other
//! `strata` processes. A layer removed meanwhile fails the save (its
//! record or content is gone, or no longer matches its diffID).
//!
//! # Output
//!
//! An archive is written in one pass (a layer's length is known from its
//! tar-split record before its content is rebuilt) to a temp file beside
//! the target, renamed over it at the end. `oci-dir` writes into a
//! directory that must not exist or be empty: each blob goes to a temp
//! name, is synced and renamed into place, and `index.json` comes last.
//! Whatever fails, no half archive or half layout is left behind.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, ImageIndexBuilder, ImageManifestBuilder, MediaType, Platform, PlatformBuilder,
    SCHEMA_VERSION,
};
use serde::Serialize;
use serde_json::Value;
use strata_archive::Digest;

use super::format::{familiar, DockerManifest, CONTAINERD_NAME, OCI_LAYOUT, REF_NAME};
use super::Progress;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::layer::{chain_ids, Layer};
use crate::{atomic, random_hex, ImageRef, Store};

mod sink;

use sink::{DirSink, Sink, TarSink};

/// What `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// A tar that `docker load` (20.10 and later) and `skopeo`'s
    /// `docker-archive:` read.
    DockerArchive,
    /// An OCI image layout in a tar.
    OciArchive,
    /// An OCI image layout as a directory.
    OciDir,
}

/// An image to write.
struct Planned {
    id: Digest,
    config: Vec<u8>,
    platform: Option<Platform>,
    /// Bottom to top.
    layers: Vec<Layer>,
    /// The tags the archive records.
    tags: Vec<ImageRef>,
}

/// A file of the layout: its path, `/`-separated, and its content.
struct Entry<'a> {
    path: String,
    size: u64,
    content: Content<'a>,
}

enum Content<'a> {
    Bytes(Vec<u8>),
    /// Rebuilt from the store as it is written.
    Layer(&'a Layer),
}

impl Store {
    /// Writes `images` (each a name[:tag], an ID or a unique ID prefix) to
    /// `out` in `format`; layers shared between them are written once.
    pub fn save(
        &self,
        images: &[String],
        format: SaveFormat,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<()> {
        let plan = self.plan_save(images)?;
        let make_dir = match format {
            SaveFormat::OciDir => oci_dir_target(out)?,
            _ => {
                archive_target(out)?;
                false
            }
        };
        let sizes = self.layer_sizes(&plan)?;
        let entries = layout(&plan, &sizes, format)?;
        let layers = entries
            .iter()
            .filter(|e| matches!(e.content, Content::Layer(_)))
            .count();
        progress.start(entries.iter().map(|e| e.size).sum(), layers);
        match format {
            SaveFormat::OciDir => self.write_oci_dir(out, make_dir, &entries, progress),
            _ => self.write_archive(out, &entries, progress),
        }
    }

    /// Resolves the names under the store lock: each image once, with the
    /// tags it was named by.
    fn plan_save(&self, names: &[String]) -> Result<Vec<Planned>> {
        if names.is_empty() {
            return Err(Error::new(ErrorKind::InvalidArgument, "no image to save"));
        }
        let _lock = self.lock()?;
        let repos = self.repositories()?;
        let mut plan: Vec<Planned> = Vec::new();
        for name in names {
            let id = self.resolve_image(name)?;
            // resolve_image tries a tag first: a name that is a tag was
            // resolved by it.
            let tag = ImageRef::parse(name).ok().filter(|r| {
                repos
                    .get(&r.name)
                    .is_some_and(|m| m.contains_key(&r.to_string()))
            });
            let i = match plan.iter().position(|p| p.id == id) {
                Some(i) => i,
                None => {
                    plan.push(self.plan_image(id, name)?);
                    plan.len() - 1
                }
            };
            if let Some(t) = tag {
                if !plan[i].tags.contains(&t) {
                    plan[i].tags.push(t);
                }
            }
        }
        Ok(plan)
    }

    /// An image's config and layers; `name` is what the user called it.
    fn plan_image(&self, id: Digest, name: &str) -> Result<Planned> {
        let ctx = |e: Error| Error::with(e.kind(), format!("image {name}"), e);
        let config = self.image_config(&id).map_err(ctx)?;
        let v: Value = serde_json::from_slice(&config)
            .map_err(|e| Error::with(ErrorKind::Corrupt, format!("image {name}: bad config"), e))?;
        let diff_ids = crate::image::diff_ids(&v)
            .map_err(|why| Error::new(ErrorKind::Corrupt, format!("image {name}: {why}")))?;
        let layers = chain_ids(&diff_ids)
            .iter()
            .map(|c| self.layer(c))
            .collect::<Result<Vec<_>>>()
            .map_err(ctx)?;
        Ok(Planned {
            id,
            platform: platform(&v),
            config,
            layers,
            tags: Vec::new(),
        })
    }

    /// The tar length of every layer, by diffID, from the end of its
    /// tar-split record (no content read).
    fn layer_sizes(&self, plan: &[Planned]) -> Result<BTreeMap<Digest, u64>> {
        let mut sizes = BTreeMap::new();
        for l in plan.iter().flat_map(|p| &p.layers) {
            if sizes.contains_key(&l.diff_id) {
                continue;
            }
            let record = File::open(self.tar_split_path(&l.chain_id))
                .ctx(|| format!("layer {} has no tar-split record", l.chain_id))?;
            let (diff_id, size) = strata_archive::recorded_tar(record).map_err(|e| {
                Error::with(
                    ErrorKind::Corrupt,
                    format!("reading the tar-split record of layer {}", l.chain_id),
                    e,
                )
            })?;
            if diff_id != l.diff_id {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "layer {}: its tar-split record describes {diff_id}, not its diffID {}",
                        l.chain_id, l.diff_id
                    ),
                ));
            }
            sizes.insert(l.diff_id.clone(), size);
        }
        Ok(sizes)
    }

    /// Writes the entries as a tar to a temp file beside `out`, then
    /// renames it over `out`.
    fn write_archive(&self, out: &Path, entries: &[Entry], progress: &dyn Progress) -> Result<()> {
        let dir = archive_target(out)?;
        let name = out.file_name().expect("checked by archive_target");
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            random_hex(6)?
        ));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx(|| format!("creating {}", tmp.display()))?;
        let writing = || format!("writing {}", out.display());
        let result = (|| {
            let mut sink = TarSink(tar::Builder::new(BufWriter::with_capacity(1 << 20, file)));
            self.write_entries(&mut sink, entries, progress)?;
            let file = sink
                .0
                .into_inner()
                .ctx(writing)?
                .into_inner()
                .map_err(|e| Error::io(writing(), e.into_error()))?;
            file.sync_all().ctx(writing)?;
            fs::rename(&tmp, out).ctx(writing)?;
            atomic::sync_dir(&dir).ctx(writing)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Writes the entries into the directory `out`, making it first when
    /// `make` (else it is there and empty); on failure, takes back all it
    /// wrote.
    fn write_oci_dir(
        &self,
        out: &Path,
        make: bool,
        entries: &[Entry],
        progress: &dyn Progress,
    ) -> Result<()> {
        if make {
            fs::create_dir(out).ctx(|| format!("creating {}", out.display()))?;
        }
        let result = self
            .write_entries(&mut DirSink(out.to_path_buf()), entries, progress)
            .and_then(|()| atomic::sync_dir(out).ctx(|| format!("syncing {}", out.display())));
        if result.is_err() {
            if make {
                let _ = fs::remove_dir_all(out);
            } else if let Ok(dir) = fs::read_dir(out) {
                // It was empty: all in it is ours.
                for e in dir.flatten() {
                    let p = e.path();
                    let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
                }
            }
        }
        result
    }

    /// The blob directories, then every entry in order.
    fn write_entries(
        &self,
        sink: &mut dyn Sink,
        entries: &[Entry],
        progress: &dyn Progress,
    ) -> Result<()> {
        sink.dir("blobs")?;
        sink.dir("blobs/sha256")?;
        for e in entries {
            sink.file(&e.path, e.size, &mut |w| {
                let mut w = Counted {
                    inner: w,
                    written: 0,
                    progress,
                };
                match e.content {
                    Content::Bytes(ref b) => {
                        w.write_all(b).ctx(|| format!("writing {}", e.path))?
                    }
                    Content::Layer(l) => self.write_layer(l, &mut w)?,
                }
                if w.written != e.size {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!("{}: wrote {} bytes, not {}", e.path, w.written, e.size),
                    ));
                }
                Ok(())
            })?;
            if let Content::Layer(_) = e.content {
                progress.layer_done();
            }
        }
        Ok(())
    }

    /// Rebuilds a layer's tar into `out`, checking it is the layer.
    fn write_layer(&self, l: &Layer, out: &mut dyn Write) -> Result<()> {
        let got = self.layer_tar(l, out)?;
        if got != l.diff_id {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "layer {}: its content hashes to {got}, not its diffID {}",
                    l.chain_id, l.diff_id
                ),
            ));
        }
        Ok(())
    }
}

/// The files of the layout, in the order they are written: blobs (each
/// image's config, layers, manifest; each digest once), then the
/// documents that name them.
fn layout<'a>(
    plan: &'a [Planned],
    sizes: &BTreeMap<Digest, u64>,
    format: SaveFormat,
) -> Result<Vec<Entry<'a>>> {
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    let mut blob = |digest: &Digest, size: u64, content: Content<'a>| {
        if seen.insert(digest.clone()) {
            entries.push(Entry {
                path: blob_path(digest),
                size,
                content,
            });
        }
    };
    let mut index = Vec::new();
    let mut docker = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in plan {
        let config_size = img.config.len() as u64;
        blob(&img.id, config_size, Content::Bytes(img.config.clone()));
        let mut config = descriptor(MediaType::ImageConfig, &img.id, config_size);
        config.set_platform(img.platform.clone());
        let mut layers = Vec::new();
        for l in &img.layers {
            let size = sizes[&l.diff_id];
            blob(&l.diff_id, size, Content::Layer(l));
            layers.push(descriptor(MediaType::ImageLayer, &l.diff_id, size));
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers)
            .build()
            .expect("every required field is set");
        let manifest = to_json(&manifest)?;
        let (digest, size) =
            strata_archive::sha256_reader(&manifest[..]).ctx(|| "hashing".into())?;
        blob(&digest, size, Content::Bytes(manifest));

        let mut entry = descriptor(MediaType::ImageManifest, &digest, size);
        entry.set_platform(img.platform.clone());
        if img.tags.is_empty() {
            index.push(entry.clone());
        }
        let mut repo_tags = Vec::new();
        for t in &img.tags {
            let full = format!("{}:{}", full_name(&t.name), t.tag);
            let mut tagged = entry.clone();
            tagged.set_annotations(Some(HashMap::from([
                (REF_NAME.to_owned(), t.tag.clone()),
                (CONTAINERD_NAME.to_owned(), full.clone()),
            ])));
            index.push(tagged);
            if let Some(top) = img.layers.last() {
                repositories
                    .entry(familiar(&full_name(&t.name)).to_owned())
                    .or_default()
                    .insert(t.tag.clone(), top.diff_id.hex().to_owned());
            }
            repo_tags.push(familiar(&full).to_owned());
        }
        docker.push(DockerManifest {
            config: blob_path(&img.id),
            repo_tags: (!repo_tags.is_empty()).then_some(repo_tags),
            layers: img.layers.iter().map(|l| blob_path(&l.diff_id)).collect(),
            layer_sources: None,
        });
    }
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(index)
        .build()
        .expect("every required field is set");
    let mut docs = vec![("index.json", to_json(&index)?)];
    let oci_layout = ("oci-layout", OCI_LAYOUT.as_bytes().to_vec());
    match format {
        // The directory is a layout once index.json is there: last.
        SaveFormat::OciDir => docs.insert(0, oci_layout),
        SaveFormat::OciArchive => docs.push(oci_layout),
        SaveFormat::DockerArchive => {
            docs.push(oci_layout);
            // Docker writes these two with Go's json.Encoder: a newline
            // after the document.
            docs.push(("manifest.json", to_json_line(&docker)?));
            if !repositories.is_empty() {
                docs.push(("repositories", to_json_line(&repositories)?));
            }
        }
    }
    for (path, bytes) in docs {
        entries.push(Entry {
            path: path.to_owned(),
            size: bytes.len() as u64,
            content: Content::Bytes(bytes),
        });
    }
    Ok(entries)
}

/// `blobs/sha256/<hex>`.
fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn descriptor(media_type: MediaType, digest: &Digest, size: u64) -> Descriptor {
    let digest = oci_spec::image::Digest::try_from(digest.as_str())
        .expect("a sha256 digest is an OCI digest");
    Descriptor::new(media_type, size, digest)
}

/// The platform an image's config names, when it names one.
fn platform(config: &Value) -> Option<Platform> {
    let field = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut p = PlatformBuilder::default()
        .os(field("os")?)
        .architecture(field("architecture")?);
    if let Some(v) = field("variant") {
        p = p.variant(v);
    }
    p.build().ok()
}

/// JSON with its object keys sorted (serde_json's map without
/// `preserve_order`), so annotations kept in a `HashMap` come out the
/// same every time and the manifest's digest with them.
fn to_json(v: &impl Serialize) -> Result<Vec<u8>> {
    let err = |e| Error::with(ErrorKind::Io, "encoding JSON", e);
    serde_json::to_vec(&serde_json::to_value(v).map_err(err)?).map_err(err)
}

/// JSON in field order, a newline after it.
fn to_json_line(v: &impl Serialize) -> Result<Vec<u8>> {
    let mut out =
        serde_json::to_vec(v).map_err(|e| Error::with(ErrorKind::Io, "encoding JSON", e))?;
    out.push(b'\n');
    Ok(out)
}

/// A name as a full reference: `busybox` is
/// `docker.io/library/busybox`, `me/app` is `docker.io/me/app`; a name
/// whose first component is a registry (has a `.` or a `:`, or is
/// `localhost`) stays as it is.
fn full_name(name: &str) -> String {
    match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => name.to_owned(),
        Some(_) => format!("docker.io/{name}"),
    }
}

/// Checks an archive can be written at `out`; returns the directory the
/// temp file goes to.
fn archive_target(out: &Path) -> Result<PathBuf> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("cannot write the archive to {}: {why}", out.display()),
        )
    };
    if out.file_name().is_none() {
        return Err(bad("not a file name"));
    }
    if out.is_dir() {
        return Err(bad("it is a directory"));
    }
    Ok(match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

/// Checks an OCI layout can be written at `out`: a directory that does
/// not exist (true: it must be made) or is empty.
fn oci_dir_target(out: &Path) -> Result<bool> {
    match fs::read_dir(out).map(|mut d| d.next().is_none()) {
        Ok(true) => Ok(false),
        Ok(false) => Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "{} is not empty: oci-dir writes a new layout into a directory that does not exist or is empty",
                out.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(format!("opening {}", out.display()), e)),
    }
}

/// Counts what is written through it and reports it as progress.
struct Counted<'a> {
    inner: &'a mut dyn Write,
    written: u64,
    progress: &'a dyn Progress,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_docker_hub_prefixes() {
        assert_eq!(full_name("busybox"), "docker.io/library/busybox");
        assert_eq!(full_name("me/app"), "docker.io/me/app");
        assert_eq!(full_name("quay.io/me/app"), "quay.io/me/app");
        assert_eq!(full_name("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(full_name("localhost/app"), "localhost/app");
        assert_eq!(familiar(&full_name("busybox")), "busybox");
    }
}
