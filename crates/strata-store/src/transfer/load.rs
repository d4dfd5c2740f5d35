//! `strata load`: every image of a docker-archive or an OCI layout into the
//! store. The archive's documents are read and checked first; the layers
//! are then unpacked straight from the archive (at their offsets, several
//! at once when the driver allows), each checked against its descriptor
//! and its diffID; nothing is published until every layer of every image
//! has passed, so a bad archive leaves the store as it was.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};
use strata_archive::Digest;
use strata_driver::Flush;
use strata_image::{open_archive, read_images, ImageDesc, ImageRef, LayerDesc, Source, TarSource};

use super::{LayerStatus, Progress};
use crate::error::{Error, ErrorKind, Result};
use crate::layer::{chain_ids, Layer};
use crate::lock::Lock;
use crate::Store;

/// One image `load` put in the store.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    /// The tags it was given; empty for an untagged image.
    pub tags: Vec<ImageRef>,
    /// Layers unpacked, and layers found already in the store.
    pub layers_new: usize,
    pub layers_present: usize,
}

/// A layer to unpack.
struct Job<'a> {
    plan: &'a LayerDesc,
    chain: Digest,
    parent: Parent,
    what: String,
}

enum Parent {
    None,
    Stored(Layer),
    /// A layer unpacked by an earlier job of this load.
    Job(usize),
}

/// A begun layer: its staging directory (locked while this lives, so an
/// `open` meanwhile leaves it alone) and driver id.
type Slot = crate::staging::LiveStaging;

/// From this many new layers on, a load on a driver that flushes each
/// layer itself (erofs: an fsync of the image and of its records, each a
/// journal commit) leaves that to one flush of the store's file system
/// before publishing, as on overlay2: a flush per layer would cost more
/// than the other dirty data a `syncfs` also writes. Below it, each layer
/// is flushed alone, and a load of a few large layers never waits for
/// unrelated writes.
const ONE_FLUSH_FROM: usize = 8;

/// Who makes the layers of a load of `new` layers durable.
fn flush_of(new: usize) -> Flush {
    if new >= ONE_FLUSH_FROM {
        Flush::Caller
    } else {
        Flush::Driver
    }
}

/// Layers unpacked at once by `load` (the archive is local: the disk and
/// the decompressors set the pace).
fn load_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
}

impl Store {
    /// Loads every image of the archive or layout at `input` (a tar file,
    /// plain or compressed, or a directory).
    pub fn load(&self, input: &Path, progress: &dyn Progress) -> Result<Vec<Loaded>> {
        let source = open_archive(input, &self.layout.tmp()).map_err(|e| named(input, e))?;
        let plans = read_images(source.as_ref())?;
        self.load_from(source.as_ref(), &plans, load_workers(), progress)
    }

    /// [`Store::load`] from a stream (standard input): spooled to a file
    /// in the store's staging area first, since an archive's manifest
    /// usually comes after its layers.
    pub fn load_reader(
        &self,
        input: &mut dyn Read,
        progress: &dyn Progress,
    ) -> Result<Vec<Loaded>> {
        let source = TarSource::spooled(input, &self.layout.tmp())
            .map_err(|e| named(Path::new("standard input"), e))?;
        let plans = read_images(&source)?;
        self.load_from(&source, &plans, load_workers(), progress)
    }

    /// Puts the images `plans` describes into the store, their layers
    /// read from `src`, up to `workers` at once: the pipeline every image
    /// source shares (plan, then unpack and verify, then publish).
    ///
    /// The store lock is held to plan and begin the layers and again to
    /// publish, never while blobs stream in: a slow registry or a large
    /// archive makes no other command wait. Each begun layer's staging
    /// directory is locked meanwhile, as `commit`'s is. What changed in
    /// between is checked before publishing: a layer this load builds on
    /// that was removed fails the load; a layer another command stored
    /// meanwhile is taken as it is, and the load is planned again.
    pub(crate) fn load_from(
        &self,
        src: &dyn Source,
        plans: &[ImageDesc],
        workers: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<Loaded>> {
        match self.load_once(src, plans, workers, progress)? {
            Some(done) => Ok(done),
            // Everything another command stored is present now.
            None => self
                .load_once(src, plans, workers, progress)?
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InUse,
                        "the same layers are being stored by another command: try again",
                    )
                }),
        }
    }

    /// One attempt of [`Store::load_from`]: `None` when another command
    /// stored one of its layers meanwhile.
    fn load_once(
        &self,
        src: &dyn Source,
        plans: &[ImageDesc],
        workers: usize,
        progress: &dyn Progress,
    ) -> Result<Option<Vec<Loaded>>> {
        let lock = self.lock()?;
        let mut jobs: Vec<Job<'_>> = Vec::new();
        let mut counts = Vec::new();
        for plan in plans {
            let diffs: Vec<Digest> = plan.layers.iter().map(|l| l.diff_id.clone()).collect();
            let chains = chain_ids(&diffs);
            let (mut new, mut present) = (0, 0);
            for (i, (lp, chain)) in plan.layers.iter().zip(&chains).enumerate() {
                if self.layer(chain).is_ok() || jobs.iter().any(|j| &j.chain == chain) {
                    present += 1;
                    progress.layer(layer_id(lp), LayerStatus::AlreadyExists);
                    continue;
                }
                progress.layer(layer_id(lp), LayerStatus::Waiting);
                new += 1;
                let parent = match i.checked_sub(1).map(|p| &chains[p]) {
                    None => Parent::None,
                    Some(pc) => match jobs.iter().position(|j| &j.chain == pc) {
                        Some(j) => Parent::Job(j),
                        None => Parent::Stored(self.layer(pc)?),
                    },
                };
                jobs.push(Job {
                    plan: lp,
                    chain: chain.clone(),
                    parent,
                    what: format!("layer {} of {} ({})", i + 1, plan.what, lp.name),
                });
            }
            counts.push((new, present));
        }
        // A driver whose layers copy their parent begins each after its
        // parent is filled (`unpack`, under the lock again, briefly).
        let mut slots = Vec::new();
        if self.driver.layers_independent() {
            for job in &jobs {
                match self.begin_job(&lock, &slots, job) {
                    Ok(s) => slots.push(s),
                    Err(e) => {
                        self.discard_slots(&slots);
                        return Err(e);
                    }
                }
            }
        }
        drop(lock);
        let total: u64 = jobs
            .iter()
            .map(|j| {
                j.plan
                    .size
                    .unwrap_or_else(|| src.open(&j.plan.key).map_or(0, |b| b.size))
            })
            .sum();
        progress.start(total, jobs.len());
        let layers = self.unpack(src, &jobs, slots, workers, progress, total)?;
        let lock = self.lock()?;
        match self.still_to_publish(&lock, &jobs) {
            Ok(true) => {}
            other => {
                self.discard_slots(layers.iter().map(|(s, _)| s));
                return other.map(|_| None);
            }
        }
        // Everything checked: make it durable, then visible.
        let published = (|| {
            for job in &jobs {
                progress.layer(layer_id(job.plan), LayerStatus::Applying);
            }
            let staged: Vec<&std::path::Path> =
                layers.iter().map(|(s, _)| s.path.as_path()).collect();
            self.layers.flush_staged(&staged, flush_of(jobs.len()))?;
            for (slot, layer) in &layers {
                self.publish_layer(&lock, &slot.path, layer)?;
            }
            self.sync_layerdb()
        })();
        if let Err(e) = published {
            for (slot, _) in layers.iter().rev() {
                if slot.path.exists() {
                    self.discard_layer(&slot.path, &slot.cache_id);
                }
            }
            return Err(e);
        }
        for job in &jobs {
            progress.layer(layer_id(job.plan), LayerStatus::Done);
        }
        let mut out = Vec::new();
        for (plan, (new, present)) in plans.iter().zip(counts) {
            let id = self.put_image(&lock, &plan.config, None)?;
            debug_assert_eq!(id, plan.id);
            for t in &plan.tags {
                self.tag_held(&lock, &id, t)?;
            }
            out.push(Loaded {
                id,
                tags: plan.tags.clone(),
                layers_new: new,
                layers_present: present,
            });
        }
        Ok(Some(out))
    }

    /// Whether what the load unpacked can still be published, the lock
    /// held again: `false` when another command stored one of its layers
    /// meanwhile (plan again), an error when a stored layer it builds on
    /// is gone.
    fn still_to_publish(&self, _: &Lock, jobs: &[Job<'_>]) -> Result<bool> {
        for job in jobs {
            if self.layer(&job.chain).is_ok() {
                return Ok(false);
            }
            if let Parent::Stored(l) = &job.parent {
                if self.layer(&l.chain_id).is_err() {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "{}: layer {} it builds on was removed meanwhile: pull or load again",
                            job.what, l.chain_id
                        ),
                    ));
                }
            }
        }
        Ok(true)
    }

    /// Begins `job`'s layer on its parent's, its staging held.
    fn begin_job(&self, lock: &Lock, slots: &[Slot], job: &Job<'_>) -> Result<Slot> {
        let pc = parent_cache(slots, job);
        self.layers
            .begin_live(lock, pc.as_deref())
            .map_err(|e| within(&job.what, e))
    }

    fn discard_slots<'s>(&self, slots: impl IntoIterator<Item = &'s Slot>) {
        let mut all: Vec<&Slot> = slots.into_iter().collect();
        all.reverse();
        for s in all {
            self.discard_layer(&s.path, &s.cache_id);
        }
    }

    /// Unpacks every job into a staged layer, up to `workers` at once
    /// when the driver allows (`slots` then holds every job's begun
    /// layer; else each is begun here, after its parent is filled); on
    /// any error discards them all. A layer that hard-links a file of a
    /// parent unpacked in the same load needs that parent's content
    /// first: when the parallel unpack fails for want of a link target,
    /// the jobs are unpacked again, in order.
    fn unpack(
        &self,
        src: &dyn Source,
        jobs: &[Job<'_>],
        slots: Vec<Slot>,
        workers: usize,
        progress: &dyn Progress,
        total: u64,
    ) -> Result<Vec<(Slot, Layer)>> {
        if !self.driver.layers_independent() {
            return self.unpack_in_order(src, jobs, progress);
        }
        let in_load = |j: &Job<'_>| matches!(j.parent, Parent::Job(_));
        match self.fill_parallel(src, jobs, &slots, workers, progress) {
            Err(e) if missing_link_target(&e) && jobs.iter().any(in_load) => {
                self.discard_slots(&slots);
                progress.start(total, jobs.len());
                self.unpack_in_order(src, jobs, progress)
            }
            // A layer that looked below itself (a parent it leaves out, a
            // hard link's target) while a layer below was still being
            // unpacked may have seen it half-made.
            Ok(filled)
                if filled
                    .iter()
                    .zip(jobs)
                    .any(|((_, consulted), j)| *consulted && in_load(j)) =>
            {
                self.discard_slots(&slots);
                progress.start(total, jobs.len());
                self.unpack_in_order(src, jobs, progress)
            }
            layers => self.pair_slots(slots, without_flags(layers)),
        }
    }

    /// Each job begun after its parent is filled, one at a time.
    fn unpack_in_order(
        &self,
        src: &dyn Source,
        jobs: &[Job<'_>],
        progress: &dyn Progress,
    ) -> Result<Vec<(Slot, Layer)>> {
        let mut slots: Vec<Slot> = Vec::with_capacity(jobs.len());
        let layers = jobs
            .iter()
            .map(|job| {
                self.lock()
                    .and_then(|lock| self.begin_job(&lock, &slots, job))
                    .and_then(|slot| {
                        slots.push(slot);
                        let pc = parent_cache(&slots[..slots.len() - 1], job);
                        let slot = slots.last().expect("pushed");
                        self.fill_job(src, job, slot, pc.as_deref(), jobs, progress)
                            .map(|(layer, _)| layer)
                    })
            })
            .collect();
        self.pair_slots(slots, layers)
    }

    /// Each slot with its filled layer; on an error every slot is
    /// discarded, children first.
    fn pair_slots(
        &self,
        slots: Vec<Slot>,
        layers: Result<Vec<Layer>>,
    ) -> Result<Vec<(Slot, Layer)>> {
        match layers {
            Ok(layers) => Ok(slots.into_iter().zip(layers).collect()),
            Err(e) => {
                self.discard_slots(&slots);
                Err(e)
            }
        }
    }

    /// Every job filled into its begun layer (`slots`), up to `workers`
    /// at once: their layers, each with whether it looked in the layers
    /// below it, or the first error in job order.
    fn fill_parallel(
        &self,
        src: &dyn Source,
        jobs: &[Job<'_>],
        slots: &[Slot],
        workers: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<Filled>> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        // A layer of this load looked below itself while the layers below
        // were being filled: `unpack` does them all again in order, so no
        // more are begun here (a deep image whose every layer leaves out
        // a parent directory would otherwise be unpacked twice).
        let raced = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<Filled>>>> =
            Mutex::new((0..jobs.len()).map(|_| None).collect());
        let workers = workers.clamp(1, jobs.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs.len()
                        || failed.load(Ordering::Relaxed)
                        || raced.load(Ordering::Relaxed)
                    {
                        break;
                    }
                    let pc = parent_cache(slots, &jobs[i]);
                    let r = self.fill_job(src, &jobs[i], &slots[i], pc.as_deref(), jobs, progress);
                    match &r {
                        Err(_) => failed.store(true, Ordering::Relaxed),
                        Ok((_, true)) if matches!(jobs[i].parent, Parent::Job(_)) => {
                            raced.store(true, Ordering::Relaxed)
                        }
                        Ok(_) => {}
                    }
                    results.lock().expect("no worker panics holding it")[i] = Some(r);
                });
            }
        });
        // A job no worker reached is left out only when one failed or
        // raced; jobs are taken in order, so those left out come last.
        let results = results.into_inner().expect("no worker panicked");
        results.into_iter().flatten().collect()
    }

    /// Unpacks one layer's blob into its begun layer and checks it: the
    /// blob against its descriptor, the content against the diffID. With
    /// the layer, whether it looked in the layers below it.
    fn fill_job(
        &self,
        src: &dyn Source,
        job: &Job<'_>,
        slot: &Slot,
        parent_cache: Option<&str>,
        jobs: &[Job<'_>],
        progress: &dyn Progress,
    ) -> Result<Filled> {
        let checked = (|| {
            let strata_image::Blob {
                reader,
                size: len,
                verified,
            } = src.open(&job.plan.key)?;
            if let Some(size) = job.plan.size {
                if size != len {
                    return Err(mismatch(format!(
                        "the blob is {len} bytes, its descriptor says {size}"
                    )));
                }
            }
            // The blob is hashed only when its digest says something the
            // diffID check does not (an uncompressed blob's digest is its
            // diffID, and a legacy docker-archive declares none), and the
            // source does not check it itself as it streams.
            let digest_is_diff_id = job.plan.blob.as_ref() == Some(&job.plan.diff_id);
            let hash_blob = job.plan.blob.is_some() && !digest_is_diff_id && !verified;
            let mut input = Counted {
                inner: reader,
                hasher: hash_blob.then(Sha256::new),
                progress,
                corrupt: false,
                id: layer_id(job.plan),
                done: 0,
                total: Some(len),
            };
            progress.layer(
                input.id,
                LayerStatus::Downloading {
                    done: 0,
                    total: Some(len),
                },
            );
            let filled = self.layers.fill(
                &slot.path,
                &slot.cache_id,
                parent_cache,
                &mut input,
                flush_of(jobs.len()),
            );
            // Whatever follows the tar's end is part of the blob too.
            let report = filled.and_then(|r| {
                io::copy(&mut input, &mut io::sink())
                    .map_err(|e| Error::io("reading the blob", e))?;
                progress.layer(input.id, LayerStatus::Verifying);
                Ok(r)
            });
            // A source that found its blob corrupt says so whatever the
            // unpacking made of the broken stream.
            let report = match report {
                Err(e) if input.corrupt => {
                    return Err(Error::with(
                        ErrorKind::Corrupt,
                        "the blob is not the one its descriptor names",
                        e,
                    ))
                }
                r => r?,
            };
            if let (Some(blob), Some(h)) = (&job.plan.blob, input.hasher) {
                let got = Digest::from_sha256(h);
                if &got != blob {
                    return Err(mismatch(format!(
                        "the blob's sha256 is {got}, its descriptor says {blob}"
                    )));
                }
            }
            // The descriptor names the diffID: the blob must be the tar
            // itself, whose digest the diffID check below covers.
            if digest_is_diff_id && report.compression != strata_archive::Compression::None {
                return Err(mismatch(format!(
                    "the blob is {}-compressed, but its descriptor's digest is the uncompressed diffID",
                    report.compression.as_str()
                )));
            }
            if report.diff_id != job.plan.diff_id {
                let says = if !digest_is_diff_id {
                    "the image config says"
                } else {
                    "its descriptor and the image config say"
                };
                return Err(mismatch(format!(
                    "its content's sha256 (diffID) is {}, {says} {}",
                    report.diff_id, job.plan.diff_id
                )));
            }
            let parent = match &job.parent {
                Parent::None => None,
                Parent::Stored(l) => Some(l.chain_id.clone()),
                Parent::Job(i) => Some(jobs[*i].chain.clone()),
            };
            let layer = Layer {
                chain_id: job.chain.clone(),
                diff_id: report.diff_id,
                cache_id: slot.cache_id.clone(),
                size: report.size,
                parent,
            };
            self.stage_metadata(&slot.path, &layer)?;
            Ok((layer, report.consulted_lowers))
        })();
        progress.layer_done();
        checked.map_err(|e| within(&job.what, e))
    }
}

/// A filled layer, and whether it looked in the layers below it.
type Filled = (Layer, bool);

/// The layers of a fill, without whether each looked below itself.
fn without_flags(filled: Result<Vec<Filled>>) -> Result<Vec<Layer>> {
    filled.map(|f| f.into_iter().map(|(l, _)| l).collect())
}

/// How progress names a layer: its blob's digest, else its diffID.
fn layer_id(l: &LayerDesc) -> &Digest {
    l.blob.as_ref().unwrap_or(&l.diff_id)
}

/// The driver layer `job`'s parent is: a stored layer's, or the one an
/// earlier job of this load began (in `slots`, by job index).
fn parent_cache(slots: &[Slot], job: &Job<'_>) -> Option<crate::ids::CacheId> {
    match &job.parent {
        Parent::None => None,
        Parent::Stored(l) => Some(l.cache_id.clone()),
        Parent::Job(i) => Some(slots[*i].cache_id.clone()),
    }
}

fn mismatch(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, msg)
}

/// `e`, introduced by what was being done.
fn within(what: &str, e: Error) -> Error {
    Error::with(e.kind(), what, e)
}

/// Hashes a blob as it is read and reports progress.
struct Counted<'a> {
    inner: Box<dyn Read + Send + 'a>,
    hasher: Option<Sha256>,
    progress: &'a dyn Progress,
    /// The source said the blob's bytes are not the blob (an
    /// `InvalidData` error from a source that checks its blobs).
    corrupt: bool,
    /// The layer, and how far into its blob.
    id: &'a Digest,
    done: u64,
    total: Option<u64>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.corrupt |= e.kind() == io::ErrorKind::InvalidData;
                return Err(e);
            }
        };
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.progress.advance(n as u64);
        if n > 0 {
            self.done += n as u64;
            let (done, total) = (self.done, self.total);
            self.progress
                .layer(self.id, LayerStatus::Downloading { done, total });
        }
        Ok(n)
    }
}

/// Whether `e` comes from a hard link whose target was not there.
fn missing_link_target(e: &Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cur) = src {
        if matches!(
            cur.downcast_ref::<strata_archive::Error>(),
            Some(strata_archive::Error::MissingLinkTarget { .. })
        ) {
            return true;
        }
        src = cur.source();
    }
    false
}

/// An archive refused for what it holds, named as the user named it.
fn named(input: &Path, e: strata_image::Error) -> Error {
    match e.kind() {
        strata_image::ErrorKind::InvalidArgument => {
            Error::within(input.display().to_string(), e.into())
        }
        _ => e.into(),
    }
}
