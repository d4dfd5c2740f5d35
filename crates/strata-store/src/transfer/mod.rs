//! Images in and out of the store as archives (the formats are
//! `strata_image`'s) and from registries (`pull`, over the same pipeline
//! as `load`; the protocol is `strata_registry`'s). `load` reads the legacy
//! docker-archive, the form Docker 25 and later write (an OCI layout with
//! a `manifest.json` beside it), and OCI image layouts as a directory or a
//! tar; `save` writes them back, every layer rebuilt byte for byte from its
//! tar-split record so diffIDs and image IDs survive the round trip.

mod load;
pub(crate) mod partial;
mod pull;
mod push;
mod save;

use strata_archive::Digest;

pub use load::Loaded;
pub use pull::{PullOptions, Pulled, MAX_CONCURRENT_DOWNLOADS};
pub use push::{LayerCompression, PushOptions, Pushed, MAX_CONCURRENT_UPLOADS};
pub use save::{SaveOptions, SaveTo};

/// What long transfers report as they go; the CLI draws bars from it.
/// Every method may be called from several threads.
pub trait Progress: Sync {
    /// The work is known: this many bytes in this many layers. Called
    /// again when the work starts over (a load that unpacked its layers
    /// at once, and unpacks them again in order): what was counted
    /// before is forgotten.
    fn start(&self, _bytes: u64, _layers: usize) {}
    /// `n` more bytes read or written.
    fn advance(&self, _n: u64) {}
    /// One more layer finished (or found already in the store).
    fn layer_done(&self) {}
    /// Where layer `id` (its blob's digest, or its diffID when the
    /// source declares no blob digest) stands.
    fn layer(&self, _id: &Digest, _status: LayerStatus) {}
}

/// Where one layer of a load, pull or push stands, as `docker pull` and
/// `docker push` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerStatus {
    /// To be fetched, after others.
    Waiting,
    /// Streaming in, and unpacked as it comes: `done` bytes of `total`.
    Downloading { done: u64, total: Option<u64> },
    /// Its last byte read: its digest and diffID being checked.
    Verifying,
    /// Checked; being made durable and published with the others.
    Applying,
    /// In the store.
    Done,
    /// In the store before this began (same chainID): not fetched.
    AlreadyExists,
    /// Pushed: being compressed and sent, `done` compressed bytes so far.
    Pushing { done: u64 },
    /// Pushed: sent, and the registry took it.
    Pushed,
    /// Pushed: mounted from another repository of the registry, not sent.
    Mounted,
    /// Pushed: the repository had it already, not sent.
    LayerExists,
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// `layer`'s content, as `found` names it, is not what its diffID says.
fn not_its_diff_id(layer: &crate::layer::Layer, found: &str) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::Corrupt,
        format!(
            "layer {}: {found}, not its diffID {}",
            layer.chain_id, layer.diff_id
        ),
    )
}
