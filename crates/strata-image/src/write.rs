//! Laying images out as an archive: the files of the OCI layout Docker
//! 25's `docker save` writes, in the order they are written, and the
//! sinks that write them (a tar in one pass, or a directory).
//!
//! ```text
//! blobs/sha256/<image-id hex>     an image's config, byte-exact
//! blobs/sha256/<diffID hex>       a layer, uncompressed; once, however
//!                                 many images share it (or, when saved
//!                                 compressed, blobs/sha256/<blob hex>)
//! blobs/sha256/<manifest hex>     an image's OCI manifest
//! index.json                      one entry per tag; one without annotations
//!                                 for an image saved untagged
//! oci-layout
//! manifest.json                   docker-archive: [{Config, RepoTags, Layers}]
//! repositories                    docker-archive: {"name":{"tag":"<top diffID hex>"}},
//!                                 when anything is tagged
//! ```
//!
//! An image's tags go in as Docker 25 writes them: `RepoTags` and
//! `repositories` in the short form (`busybox:latest`), the index entry's
//! `org.opencontainers.image.ref.name` the tag alone and
//! `io.containerd.image.name` the full name
//! (`docker.io/library/busybox:latest`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use oci_spec::image::{
    Descriptor, ImageIndexBuilder, ImageManifestBuilder, MediaType, Platform, PlatformBuilder,
    SCHEMA_VERSION,
};
use serde::Serialize;
use serde_json::Value;
use strata_archive::{sha256, Compression, Digest};
use strata_sys::atomic::AtomicFile;

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::{familiar, DockerManifest, CONTAINERD_NAME, OCI_LAYOUT, REF_NAME};
use crate::ImageRef;

/// Largest size a ustar header holds (11 octal digits); a larger file
/// gets a PAX `size` record.
const USTAR_MAX_SIZE: u64 = 0o77_777_777_777;

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

/// An image to lay out.
pub struct SaveImage {
    pub id: Digest,
    /// The config, byte-exact (its sha256 is `id`).
    pub config: Vec<u8>,
    /// Its layers, bottom to top.
    pub layers: Vec<SaveLayer>,
    /// The tags the archive records; none for an image saved by ID.
    pub tags: Vec<ImageRef>,
}

/// A layer's blob as the archive holds it.
#[derive(Debug, Clone)]
pub struct SaveLayer {
    pub diff_id: Digest,
    /// The blob's digest and length: the diffID and the tar's length
    /// when the blob is the tar itself.
    pub blob: Digest,
    pub size: u64,
    /// How the blob is compressed: `None`, `Gzip` or `Zstd`.
    pub compression: Compression,
}

impl SaveLayer {
    /// A layer kept as its tar: its blob digest is its diffID.
    pub fn uncompressed(diff_id: Digest, size: u64) -> SaveLayer {
        SaveLayer {
            blob: diff_id.clone(),
            diff_id,
            size,
            compression: Compression::None,
        }
    }

    fn media_type(&self) -> MediaType {
        match self.compression {
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
            _ => MediaType::ImageLayer,
        }
    }
}

/// A file of the layout: its path, `/`-separated, and its content.
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub content: Content,
}

pub enum Content {
    Bytes(Vec<u8>),
    /// The layer blob with this digest, which the caller writes.
    Layer(Digest),
}

/// The files of the layout, in the order they are written: blobs (each
/// image's config, layers, manifest; each digest once), then the
/// documents that name them.
pub fn layout(images: &[SaveImage], format: SaveFormat) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    let mut blob = |digest: &Digest, size: u64, content: Content| {
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
    for img in images {
        let platform = platform(&img.config);
        let config_size = img.config.len() as u64;
        blob(&img.id, config_size, Content::Bytes(img.config.clone()));
        let mut config = descriptor(MediaType::ImageConfig, &img.id, config_size);
        config.set_platform(platform.clone());
        let mut layers = Vec::new();
        for l in &img.layers {
            blob(&l.blob, l.size, Content::Layer(l.blob.clone()));
            layers.push(descriptor(l.media_type(), &l.blob, l.size));
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers)
            .build()
            .expect("every required field is set");
        let manifest = to_json(&manifest)?;
        let (digest, size) = (sha256(&manifest), manifest.len() as u64);
        blob(&digest, size, Content::Bytes(manifest));

        let mut entry = descriptor(MediaType::ImageManifest, &digest, size);
        entry.set_platform(platform);
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
            if let Some(SaveLayer { diff_id: top, .. }) = img.layers.last() {
                repositories
                    .entry(familiar(&full_name(&t.name)).to_owned())
                    .or_default()
                    .insert(t.tag.clone(), top.hex().to_owned());
            }
            repo_tags.push(familiar(&full).to_owned());
        }
        docker.push(DockerManifest {
            config: blob_path(&img.id),
            repo_tags: (!repo_tags.is_empty()).then_some(repo_tags),
            layers: img.layers.iter().map(|l| blob_path(&l.blob)).collect(),
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
fn platform(config: &[u8]) -> Option<Platform> {
    let config: Value = serde_json::from_slice(config).ok()?;
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

/// Where a layout goes. A file is written by [`Sink::start_file`],
/// exactly `size` bytes to the writer it returns, then
/// [`Sink::finish_file`].
pub trait Sink {
    /// Makes the directory `path`.
    fn dir(&mut self, path: &str) -> Result<()>;
    /// Starts the file `path` of `size` bytes.
    fn start_file(&mut self, path: &str, size: u64) -> Result<&mut dyn Write>;
    /// Ends the file started last.
    fn finish_file(&mut self) -> Result<()>;
}

/// A tar in one pass: ustar headers (PAX for a size ustar cannot hold),
/// owned by 0:0, mtime 0, modes 0644 and 0755; a file's content streamed
/// straight in after its header.
pub struct TarSink<W: Write> {
    out: tar::Builder<W>,
    /// The file being written and its size.
    open: Option<(String, u64)>,
}

impl<W: Write> TarSink<W> {
    pub fn new(out: W) -> Self {
        TarSink {
            out: tar::Builder::new(out),
            open: None,
        }
    }

    /// Ends the archive and gives back the writer.
    pub fn finish(self) -> Result<W> {
        self.out.into_inner().ctx(|| "ending the archive".into())
    }
}

/// A ustar header owned by root with time zero, for the entries strata
/// writes itself (the same bytes on every run).
pub fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

impl<W: Write> Sink for TarSink<W> {
    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = tar_header(tar::EntryType::Directory, 0o755, 0);
        self.out
            .append_data(&mut h, format!("{path}/"), io::empty())
            .ctx(|| format!("writing {path}/"))
    }

    fn start_file(&mut self, path: &str, size: u64) -> Result<&mut dyn Write> {
        let ctx = || format!("writing {path}");
        if size > USTAR_MAX_SIZE {
            let name = path.rsplit('/').next().unwrap_or(path);
            let pax = pax_record("size", &size.to_string());
            let mut h = tar_header(tar::EntryType::XHeader, 0o644, pax.len() as u64);
            self.out
                .append_data(&mut h, format!("PaxHeaders.0/{name}"), &pax[..])
                .ctx(ctx)?;
        }
        let mut h = tar_header(tar::EntryType::Regular, 0o644, size);
        h.set_path(path).ctx(ctx)?;
        h.set_cksum();
        let out = self.out.get_mut();
        out.write_all(h.as_bytes()).ctx(ctx)?;
        self.open = Some((path.to_owned(), size));
        Ok(out)
    }

    fn finish_file(&mut self) -> Result<()> {
        let (path, size) = self.open.take().expect("a file was started");
        let pad = (512 - size % 512) % 512;
        self.out
            .get_mut()
            .write_all(&[0u8; 512][..pad as usize])
            .ctx(|| format!("writing {path}"))
    }
}

/// A PAX extended header record, `"<len> <key>=<value>\n"`, `len`
/// counting the whole record, its own digits included.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let rest = format!(" {key}={value}\n");
    let mut len = rest.len();
    while len != rest.len() + len.to_string().len() {
        len = rest.len() + len.to_string().len();
    }
    format!("{len}{rest}").into_bytes()
}

/// An OCI layout directory: every file written to a temp name, synced,
/// renamed into place, and the directory synced (`strata_sys::atomic`).
pub struct DirSink {
    root: PathBuf,
    /// The file being written: its final path and writer.
    open: Option<(PathBuf, BufWriter<AtomicFile>)>,
}

impl DirSink {
    pub fn new(root: PathBuf) -> Self {
        DirSink { root, open: None }
    }
}

impl Sink for DirSink {
    fn dir(&mut self, path: &str) -> Result<()> {
        let p = self.root.join(path);
        fs::create_dir(&p).ctx(|| format!("creating {}", p.display()))
    }

    fn start_file(&mut self, path: &str, _size: u64) -> Result<&mut dyn Write> {
        let dest = self.root.join(path);
        let file = AtomicFile::create(&dest).ctx(|| format!("writing {}", dest.display()))?;
        let (_, w) = self
            .open
            .insert((dest, BufWriter::with_capacity(1 << 20, file)));
        Ok(w)
    }

    fn finish_file(&mut self) -> Result<()> {
        let (dest, w) = self.open.take().expect("a file was started");
        let ctx = || format!("writing {}", dest.display());
        let file = w
            .into_inner()
            .map_err(|e| Error::io(ctx(), e.into_error()))?;
        file.commit().ctx(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        for (key, value) in [("size", "8589934592"), ("path", &"x".repeat(200)[..])] {
            let r = pax_record(key, value);
            let s = String::from_utf8(r.clone()).unwrap();
            let (len, rest) = s.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), r.len(), "{s:?}");
            assert_eq!(rest, format!("{key}={value}\n"));
        }
    }

    /// A layer over ustar's limit gets a PAX size the tar crate reads
    /// back (the content itself is not written: only the headers are
    /// checked).
    #[test]
    fn huge_sizes_get_a_pax_record() {
        let size = USTAR_MAX_SIZE + 1;
        let mut sink = TarSink::new(Vec::new());
        sink.start_file("blobs/sha256/x", size).unwrap();
        let bytes = sink.out.into_inner().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("blobs/sha256/x"));
        assert_eq!(e.size(), size);
    }

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
