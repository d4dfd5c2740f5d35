//! The image store: configs kept byte-exact under their sha256, tags and
//! repository digests in `repositories.json` (Docker's format: its
//! reference store keeps `name:tag` and `name@sha256:<manifest digest>`
//! side by side, one map per repository), and image import.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde_json::{json, Value};
use strata_archive::Digest;
use strata_driver::Flush;
use strata_sys::atomic::Batch;

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::layer::{chain_ids, LayerStore};
use crate::layout::{record, Layout};
use crate::lock::Lock;
use crate::{atomic, refs, time, ImageRef, Store};

/// What the store knows of an image.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: Digest,
    pub tags: Vec<ImageRef>,
    /// `name@sha256:<manifest digest>`: the manifests it was pulled as
    /// or pushed as, per repository (Docker's `RepoDigests`).
    pub repo_digests: Vec<ImageRef>,
    pub created: String,
    pub diff_ids: Vec<Digest>,
    pub parent: Option<Digest>,
    /// Bytes of content in all its layers.
    pub size: u64,
}

pub(crate) type Repositories = BTreeMap<String, BTreeMap<String, String>>;

/// `repositories.json`.
#[derive(serde::Deserialize)]
struct RepositoriesFile {
    #[serde(rename = "Repositories", default)]
    repositories: Repositories,
}

/// The images of a store: configs under `imagedb`, tags in
/// `repositories.json`, over the layers their configs name.
#[derive(Clone)]
pub struct ImageStore {
    layout: Layout,
    layers: LayerStore,
}

impl ImageStore {
    pub(crate) fn new(layout: Layout, layers: LayerStore) -> ImageStore {
        ImageStore { layout, layers }
    }

    /// The tags, as `repositories.json` holds them.
    pub(crate) fn repositories(&self) -> Result<Repositories> {
        let p = self.layout.repositories();
        let bytes = match atomic::read_capped(&p, atomic::RECORD_CAP) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Repositories::new()),
            Err(e) => return Err(e),
        };
        // Straight into the map: read on every command that names an
        // image, it grows with the tags. What does not parse so is read
        // again below, for the error that says why.
        if let Ok(f) = serde_json::from_slice::<RepositoriesFile>(&bytes) {
            return Ok(familiar(f.repositories));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::with(
                ErrorKind::Corrupt,
                format!("{} is not valid JSON", p.display()),
                e,
            )
        })?;
        let repos: Repositories = serde_json::from_value(
            v.get("Repositories").cloned().unwrap_or(json!({})),
        )
        .map_err(|e| {
            Error::with(
                ErrorKind::Corrupt,
                format!("{}: bad Repositories", p.display()),
                e,
            )
        })?;
        Ok(familiar(repos))
    }

    pub(crate) fn save_repositories(&self, _: &Lock, repos: &Repositories) -> Result<()> {
        atomic::write(&self.layout.repositories(), &repositories_json(repos))
    }

    /// The config bytes of an image, verified against its ID.
    pub fn image_config(&self, id: &Digest) -> Result<Vec<u8>> {
        let p = self.layout.image_config(id);
        let bytes = atomic::read_capped(&p, atomic::RECORD_CAP).map_err(|e| match e.kind() {
            ErrorKind::Corrupt => e,
            _ => Error::with(e.kind(), format!("image {id}"), e),
        })?;
        let got = strata_archive::sha256(&bytes);
        if &got != id {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("image {id}: its config's sha256 is {got}"),
            ));
        }
        Ok(bytes)
    }

    /// Parses an image config enough to use it.
    pub(crate) fn image_json(&self, id: &Digest) -> Result<Value> {
        let bytes = self.image_config(id)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::with(ErrorKind::Corrupt, format!("image {id}: bad config"), e))
    }

    fn image_from(&self, id: &Digest, repos: &Repositories) -> Result<Image> {
        let v = self.image_json(id)?;
        let diff_ids = strata_image::diff_ids(&v)
            .map_err(|why| Error::new(ErrorKind::Corrupt, format!("image {id}: {why}")))?;
        let (mut repo_digests, mut tags): (Vec<ImageRef>, Vec<ImageRef>) = repos
            .values()
            .flat_map(|m| m.iter())
            .filter(|(_, v)| v.as_str() == id.as_str())
            .filter_map(|(k, _)| ImageRef::parse(k).ok())
            .partition(|r| r.digest.is_some());
        tags.sort();
        repo_digests.sort();
        let parent = self.parent(id);
        let size = match chain_ids(&diff_ids).last() {
            Some(top) => {
                let mut total = 0;
                let mut cur = Some(top.clone());
                while let Some(c) = cur {
                    let l = self.layers.layer(&c)?;
                    total += l.size;
                    cur = l.parent;
                }
                total
            }
            None => 0,
        };
        Ok(Image {
            id: id.clone(),
            tags,
            repo_digests,
            created: v
                .get("created")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            diff_ids,
            parent,
            size,
        })
    }

    /// Every image. Fails if one does not read back whole: what decides
    /// which layers live must see them all.
    pub fn images(&self) -> Result<Vec<Image>> {
        let (images, mut bad) = self.readable_images()?;
        match bad.pop() {
            Some(e) => Err(e),
            None => Ok(images),
        }
    }

    /// Every image that reads back whole, and the error of each that does
    /// not (damaged on disk: `strata check` says how), for listings that
    /// should still show the rest.
    pub fn readable_images(&self) -> Result<(Vec<Image>, Vec<Error>)> {
        let repos = self.repositories()?;
        let dir = self.layout.image_configs();
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            let Some(id) = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy()))
            else {
                continue;
            };
            match self.image_from(&id, &repos) {
                Ok(i) => out.push(i),
                // Removed by another process while listing (its layers
                // go after its config).
                Err(_) if !e.path().exists() => {}
                Err(err) => bad.push(err),
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok((out, bad))
    }

    /// Whether the store has image `id`'s config.
    pub(crate) fn image_exists(&self, id: &Digest) -> bool {
        self.layout.image_config(id).exists()
    }

    /// The images whose recorded parent is `id` (made by `commit` from a
    /// container of it), from the reference index (which the caller has
    /// made sure of: [`Store::ensure_refs`]).
    pub(crate) fn child_images(&self, id: &Digest) -> Result<Vec<Digest>> {
        refs::children(&self.layout, id)
    }

    pub fn image(&self, id: &Digest) -> Result<Image> {
        self.image_from(id, &self.repositories()?)
    }

    /// Finds an image as Docker does: by full ID (`sha256:<hex>`, or the
    /// 64 hex digits alone), then by `name[:tag]`, then by a unique
    /// prefix of the ID's hex.
    pub fn resolve_image(&self, s: &str) -> Result<Digest> {
        self.resolve_in(s, None)
    }

    /// [`ImageStore::resolve_image`] with the tags already read, if they
    /// are (read when a name needs them, otherwise).
    fn resolve_in(&self, s: &str, repos: Option<&Repositories>) -> Result<Digest> {
        let full = Digest::parse(s).or_else(|| Digest::parse(&format!("sha256:{s}")));
        if let Some(id) = full.filter(|id| self.image_exists(id)) {
            return Ok(id);
        }
        if let Ok(r) = ImageRef::parse(s) {
            // A digest names the content whatever tag comes with it.
            let r = match r.digest() {
                Some(d) => r.with_digest(d),
                None => r,
            };
            let read;
            let repos = match repos {
                Some(r) => r,
                None => {
                    read = self.repositories()?;
                    &read
                }
            };
            if let Some(id) = repos.get(&r.name).and_then(|m| m.get(&r.to_string())) {
                return Digest::parse(id).ok_or_else(|| {
                    Error::new(ErrorKind::Corrupt, format!("tag {r} names {id:?}"))
                });
            }
        }
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let dir = self.layout.image_configs();
            let found: Vec<String> = fs::read_dir(&dir)
                .ctx(|| format!("listing {}", dir.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&hex.to_ascii_lowercase()))
                .collect();
            match found.as_slice() {
                [one] => {
                    return Ok(Digest::parse(&format!("sha256:{one}")).expect("a stored hex name"))
                }
                [] => {}
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        format!(
                            "image ID prefix {s:?} is ambiguous ({} images)",
                            found.len()
                        ),
                    ))
                }
            }
        }
        // Neither a reference nor an ID: say what is wrong with it.
        if (hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()))
            && ImageRef::parse(s)?.digest.is_some()
        {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no such image: {s} (no image here has this repository digest)"),
            ));
        }
        Err(Error::new(
            ErrorKind::NotFound,
            format!("no such image: {s}"),
        ))
    }

    /// Stores a config and returns its ID. The reference index records
    /// it (on its top layer, under its parent) before the config is
    /// written.
    pub fn put(&self, lock: &Lock, config: &[u8], parent: Option<&Digest>) -> Result<Digest> {
        let mut batch = Batch::new();
        let id = self.put_in(lock, config, parent, &mut batch)?;
        // The index entries and the records durable, then in place: the
        // config comes last, and is durable before this returns.
        batch
            .sync_files()
            .ctx(|| format!("syncing the records of image {id}"))?;
        batch
            .publish()
            .ctx(|| format!("putting the records of image {id} in place"))?;
        refs::stamp(&self.layout, lock)?;
        Ok(id)
    }

    /// [`ImageStore::put`] as part of `batch`: the index entries made now
    /// (flushed with the batch), the records written beside their names
    /// and put in place in two steps, the metadata and then the config.
    pub(crate) fn put_in(
        &self,
        lock: &Lock,
        config: &[u8],
        parent: Option<&Digest>,
        batch: &mut Batch,
    ) -> Result<Digest> {
        let id = strata_archive::sha256(config);
        let top = top_layer(&id, config)?;
        let edges = refs::ImageEdges {
            id: &id,
            top: top.as_ref(),
            parent,
        };
        edges.add_in(&self.layout, lock, batch)?;
        let meta = self.layout.image_metadata(&id);
        batch
            .make_dir(&meta)
            .ctx(|| format!("creating {}", meta.display()))?;
        let replace = |batch: &mut Batch, path: &Path, data: &[u8]| {
            batch
                .replace(path, data)
                .ctx(|| format!("writing {}", path.display()))
        };
        if let Some(p) = parent {
            replace(batch, &meta.join(record::PARENT), p.as_str().as_bytes())?;
        }
        replace(
            batch,
            &meta.join(record::LAST_UPDATED),
            time::now_rfc3339().as_bytes(),
        )?;
        // The config, which makes the image, only once its metadata is
        // durable (another directory: no fsync more).
        batch.barrier();
        replace(batch, &self.layout.image_config(&id), config)?;
        Ok(id)
    }

    /// Points `r` at `id`, moving it from any image it named.
    pub fn tag(&self, lock: &Lock, id: &Digest, r: &ImageRef) -> Result<()> {
        check_tag(r)?;
        self.point(lock, id, r)
    }

    /// [`ImageStore::tag`] as part of `batch`, for the image `id` the
    /// batch publishes in an earlier step: `repositories.json` is
    /// written beside its name, and put in place in the current step.
    pub(crate) fn tag_in(
        &self,
        _: &Lock,
        id: &Digest,
        r: &ImageRef,
        batch: &mut Batch,
    ) -> Result<()> {
        check_tag(r)?;
        let repos = self.repositories_with(id, r)?;
        let path = self.layout.repositories();
        batch
            .replace(&path, &repositories_json(&repos))
            .ctx(|| format!("writing {}", path.display()))
    }

    /// Records that `r` (`name@sha256:<manifest digest>`) is `id`: the
    /// image was pulled from, or pushed to, repository `name` as the
    /// manifest of that digest. Like a tag, it moves from any image it
    /// named.
    pub fn add_repo_digest(&self, lock: &Lock, id: &Digest, r: &ImageRef) -> Result<()> {
        if r.digest.is_none() || r.tag().is_some() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("a repository digest is NAME@sha256:HEX, not {r}"),
            ));
        }
        self.point(lock, id, r)
    }

    /// Points the reference `r` (a tag or a repository digest, checked
    /// by the caller) at the existing image `id`, moving it from any
    /// image it named.
    fn point(&self, lock: &Lock, id: &Digest, r: &ImageRef) -> Result<()> {
        if !self.image_exists(id) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no such image: {id}"),
            ));
        }
        self.save_repositories(lock, &self.repositories_with(id, r)?)
    }

    /// The tags, with `r` pointing at `id` (moved from any image it named).
    fn repositories_with(&self, id: &Digest, r: &ImageRef) -> Result<Repositories> {
        let mut repos = self.repositories()?;
        repos
            .entry(r.name.clone())
            .or_default()
            .insert(r.to_string(), id.as_str().to_owned());
        Ok(repos)
    }

    /// Removes an image's config, then its metadata. The caller has
    /// checked nothing needs it; its layers go to
    /// [`Store::collect_layers`].
    /// Its entries in the reference index go last.
    pub(crate) fn delete(&self, lock: &Lock, id: &Digest) -> Result<()> {
        let top = top_layer(id, &self.image_config(id)?)?;
        let parent = self.parent(id);
        fs::remove_file(self.layout.image_config(id)).ctx(|| format!("removing image {id}"))?;
        let _ = fs::remove_dir_all(self.layout.image_metadata(id));
        let edges = refs::ImageEdges {
            id,
            top: top.as_ref(),
            parent: parent.as_ref(),
        };
        edges.remove(&self.layout, lock)?;
        refs::stamp(&self.layout, lock)
    }

    /// The image `id` was committed from, as its metadata records it.
    fn parent(&self, id: &Digest) -> Option<Digest> {
        atomic::read(&self.layout.image_metadata(id).join(record::PARENT))
            .ok()
            .and_then(|p| Digest::parse(&p))
    }
}

/// The facade's image methods: [`ImageStore`]'s, and what spans stores.
impl Store {
    /// [`ImageStore::image_config`].
    pub fn image_config(&self, id: &Digest) -> Result<Vec<u8>> {
        self.images.image_config(id)
    }

    /// [`ImageStore::images`].
    pub fn images(&self) -> Result<Vec<Image>> {
        self.images.images()
    }

    /// [`ImageStore::readable_images`].
    pub fn readable_images(&self) -> Result<(Vec<Image>, Vec<Error>)> {
        self.images.readable_images()
    }

    pub fn image(&self, id: &Digest) -> Result<Image> {
        self.images.image(id)
    }

    /// [`ImageStore::resolve_image`].
    pub fn resolve_image(&self, s: &str) -> Result<Digest> {
        self.images.resolve_image(s)
    }

    pub(crate) fn repositories(&self) -> Result<Repositories> {
        self.images.repositories()
    }

    pub(crate) fn put_image(
        &self,
        lock: &Lock,
        config: &[u8],
        parent: Option<&Digest>,
    ) -> Result<Digest> {
        self.images.put(lock, config, parent)
    }

    /// Points `reference` at `id`, moving it from any image it named.
    pub fn tag(&self, id: &Digest, reference: &str) -> Result<ImageRef> {
        let r = ImageRef::parse(reference)?;
        let lock = self.lock()?;
        self.images.tag(&lock, id, &r)?;
        Ok(r)
    }

    /// [`ImageStore::add_repo_digest`].
    pub fn add_repo_digest(&self, id: &Digest, r: &ImageRef) -> Result<()> {
        let lock = self.lock()?;
        self.images.add_repo_digest(&lock, id, r)
    }

    /// [`ImageStore::tag`], for a caller holding the lock.
    pub(crate) fn tag_held(&self, lock: &Lock, id: &Digest, r: &ImageRef) -> Result<()> {
        self.images.tag(lock, id, r)
    }

    /// `strata import`: a root file-system tarball becomes a one-layer
    /// image. Returns the image ID.
    pub fn import(
        &self,
        input: &mut (dyn Read + Send),
        reference: Option<&str>,
        comment: &str,
    ) -> Result<Digest> {
        let r = new_tag(reference)?;
        let lock = self.lock()?;
        let (staging, cache_id) = self.layers.begin(None)?;
        let report = match self
            .layers
            .fill(&staging, &cache_id, None, input, Flush::Driver)
        {
            Ok(r) => r,
            Err(e) => {
                self.layers.discard(&staging, &cache_id);
                return Err(if is_not_tar(&e) {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        "not a tar archive: expected a root file system as tar, tar.gz or tar.zst",
                    )
                } else {
                    e
                });
            }
        };
        let filled = crate::publish::Filled {
            staging: &staging,
            cache_id,
            parent: None,
            report: &report,
        };
        let image = crate::publish::NewImage {
            parent: None,
            tag: r.as_ref(),
        };
        let (_, id) = self.publish_image(&lock, filled, image, |layer| {
            let now = time::now_rfc3339();
            let config = json!({
                "architecture": strata_image::oci_arch(),
                "os": "linux",
                "created": now,
                "config": {},
                "rootfs": { "type": "layers", "diff_ids": [layer.diff_id.as_str()] },
                "history": [{ "created": now, "created_by": "strata import", "comment": comment }],
            });
            Ok(config.to_string().into_bytes())
        })?;
        Ok(id)
    }

    /// `strata rmi`: untags a tag; removes an image (and the layers only
    /// it used) when no tag is left or it was named by ID. Refused while a
    /// container uses the image, unless `force`. Returns what was done,
    /// as Docker prints it (`Untagged: ...`, `Deleted: ...`).
    pub fn remove_image(&self, s: &str, force: bool) -> Result<Vec<String>> {
        let lock = self.lock()?;
        self.remove_image_held(&lock, s, force)
    }

    /// [`Store::remove_image`], for a caller holding the lock.
    pub(crate) fn remove_image_held(
        &self,
        lock: &Lock,
        s: &str,
        force: bool,
    ) -> Result<Vec<String>> {
        let images = &self.images;
        let mut repos = images.repositories()?;
        let id = images.resolve_in(s, Some(&repos))?;
        let mut done = Vec::new();
        let by_tag = ImageRef::parse(s).ok().map(|r| match r.digest() {
            Some(d) => r.with_digest(d),
            None => r,
        });
        let by_tag = by_tag.filter(|r| {
            repos
                .get(&r.name)
                .is_some_and(|m| m.contains_key(&r.to_string()))
        });
        let Image {
            mut tags,
            repo_digests,
            parent,
            diff_ids,
            ..
        } = images.image_from(&id, &repos)?;
        // What the index says of this image and of its top layer is read
        // before anything changes: a damaged record refuses the command
        // here. (Lower down, collection keeps a layer whose record is
        // damaged.)
        self.ensure_refs(lock)?;
        let chain = chain_ids(&diff_ids);
        if let Some(top) = chain.last() {
            refs::holders(&self.layout, top)?;
        }
        // A repository digest is one more name for the image, as a tag is.
        tags.extend(repo_digests);
        if let Some(r) = &by_tag {
            // Docker's rule: a repository's digests go with its last tag.
            let others = tags
                .iter()
                .filter(|t| *t != r)
                .filter(|t| !(r.digest.is_none() && t.digest.is_some() && t.name == r.name))
                .count();
            if others > 0 {
                untag(&mut repos, r);
                images.save_repositories(lock, &repos)?;
                return Ok(vec![format!("Untagged: {r}")]);
            }
        }
        // Read once: nothing changes them while the lock is held.
        let containers = self.containers()?;
        let used_by = |id: &Digest| containers.iter().find(|c| &c.image == id);
        // Its last tag is not taken from an image a container uses, child
        // images or not (Docker: "unable to remove repository reference
        // (must force)"): the image would be left dangling under it.
        if let (Some(r), Some(c), false) = (&by_tag, used_by(&id), force) {
            return Err(in_use_by(&r.to_string(), c));
        }
        // An image others were committed from stays while they do, as in
        // Docker: named by its last tag it is only untagged; named by ID
        // it is refused, even with -f.
        let children = images.child_images(&id)?;
        if let Some(child) = children.first() {
            match &by_tag {
                Some(r) => {
                    untag(&mut repos, r);
                    images.save_repositories(lock, &repos)?;
                    return Ok(vec![format!("Untagged: {r}")]);
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::InUse,
                        format!(
                            "image {s} has dependent child images ({}{}): remove them first",
                            crate::ids::short(child.as_str()),
                            match children.len() {
                                1 => String::new(),
                                n => format!(" and {} more", n - 1),
                            }
                        ),
                    ))
                }
            }
        }
        let repos_named: std::collections::BTreeSet<&str> =
            tags.iter().map(|t| t.name.as_str()).collect();
        if by_tag.is_none() && repos_named.len() > 1 && !force {
            return Err(Error::new(
                ErrorKind::InUse,
                format!(
                    "image {s} is referenced in {} repositories: remove its tags one by one, or use -f",
                    repos_named.len()
                ),
            ));
        }
        if let (Some(c), false) = (used_by(&id), force) {
            return Err(in_use_by(s, c));
        }
        for t in &tags {
            untag(&mut repos, t);
            done.push(format!("Untagged: {t}"));
        }
        images.save_repositories(lock, &repos)?;
        if used_by(&id).is_some() {
            return Ok(done);
        }
        images.delete(lock, &id)?;
        done.push(format!("Deleted: {id}"));
        // Then the untagged parents nothing else needs, as `docker rmi`
        // does (without --no-prune).
        let mut tops: Vec<Digest> = chain.last().cloned().into_iter().collect();
        let mut next = parent;
        while let Some(p) = next.take() {
            let Ok(img) = images.image_from(&p, &repos) else {
                break;
            };
            if !img.tags.is_empty()
                || !img.repo_digests.is_empty()
                || !images.child_images(&p)?.is_empty()
                || used_by(&p).is_some()
            {
                break;
            }
            images.delete(lock, &p)?;
            done.push(format!("Deleted: {p}"));
            tops.extend(chain_ids(&img.diff_ids).pop());
            next = img.parent;
        }
        for l in self.collect_from(lock, tops)? {
            done.push(format!("Deleted: {l}"));
        }
        Ok(done)
    }
}

/// The chainID of image `id`'s top layer, from its config (none for an
/// image of no layers).
fn top_layer(id: &Digest, config: &[u8]) -> Result<Option<Digest>> {
    let v: Value = serde_json::from_slice(config)
        .map_err(|e| Error::with(ErrorKind::Corrupt, format!("image {id}: bad config"), e))?;
    let diff_ids = strata_image::diff_ids(&v)
        .map_err(|why| Error::new(ErrorKind::Corrupt, format!("image {id}: {why}")))?;
    Ok(chain_ids(&diff_ids).pop())
}

/// `repositories.json` as Docker writes it.
fn repositories_json(repos: &Repositories) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        #[serde(rename = "Repositories")]
        repositories: &'a Repositories,
    }
    serde_json::to_vec(&Out {
        repositories: repos,
    })
    .expect("serialising JSON")
}

/// The tag a new image is to get, parsed and checked before any work
/// is done for it (not refused after its layer is written).
pub(crate) fn new_tag(reference: Option<&str>) -> Result<Option<ImageRef>> {
    let r = reference.map(ImageRef::parse).transpose()?;
    r.as_ref().map(check_tag).transpose()?;
    Ok(r)
}

/// Refuses a tag no image may have.
fn check_tag(r: &ImageRef) -> Result<()> {
    if r.digest.is_some() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("refusing to create a tag with a digest reference: {r}"),
        ));
    }
    // Docker's rule: such a name could never be looked up, since a
    // full ID matches first.
    if Digest::parse(&format!("sha256:{}", r.name)).is_some() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "invalid repository name {:?}: it cannot be 64 hexadecimal digits",
                r.name
            ),
        ));
    }
    Ok(())
}

/// Tags under their familiar names, as Docker keeps them: a tag an older
/// version recorded as `docker.io/library/NAME:TAG` reads as `NAME:TAG`.
/// Keys that are no reference stay as they are (and name no image).
fn familiar(repos: Repositories) -> Repositories {
    let mut out = Repositories::new();
    for (name, tags) in repos {
        for (key, id) in tags {
            let (name, key) = match ImageRef::parse(&key) {
                Ok(r) => (r.name.clone(), r.to_string()),
                Err(_) => (name.clone(), key),
            };
            out.entry(name).or_default().insert(key, id);
        }
    }
    out
}

fn untag(repos: &mut Repositories, r: &ImageRef) {
    if let Some(m) = repos.get_mut(&r.name) {
        m.remove(&r.to_string());
        if m.is_empty() {
            repos.remove(&r.name);
        }
    }
}

/// `rmi` of `what` refused: container `c` uses the image.
fn in_use_by(what: &str, c: &crate::Container) -> Error {
    Error::new(
        ErrorKind::InUse,
        format!(
            "image {what} is used by container {} ({}): remove it first, or use -f",
            c.name,
            c.id.short()
        ),
    )
}

/// Whether `e` comes of a stream that is no tar at all (said in one line
/// by the caller, without the layer it was being unpacked into).
fn is_not_tar(e: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if matches!(
            err.downcast_ref::<strata_archive::Error>(),
            Some(strata_archive::Error::NotTar)
        ) {
            return true;
        }
        cur = err.source();
    }
    false
}
