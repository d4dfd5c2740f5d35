//! A client for the OCI distribution protocol
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md>):
//! what `pull` and `push` speak to a registry. Synchronous, one blocking
//! connection per call, so that callers choose their own threads.
//!
//! * [`Client`] talks to one registry: TLS verified against the system
//!   roots plus the registry's own CAs from a `certs.d/<host:port>/`
//!   directory; unverified TLS, or plain HTTP, only for a registry marked
//!   insecure; bearer
//!   token and basic auth; redirects followed without carrying
//!   credentials to another host; bounded retries with backoff.
//! * [`Client::get_manifest`] fetches a manifest or an index under a size
//!   cap and checks its digest; [`Client::open_blob`] streams a blob,
//!   checking its size and sha256 as it is read and resuming a cut
//!   transfer with a Range request.
//! * The push half: [`Client::blob_exists`], [`Client::mount_blob`],
//!   [`Client::upload_blob`], [`Client::upload_blob_chunked`],
//!   [`Client::begin_upload`] (an [`Upload`] written to as the blob is
//!   made), [`Client::upload_stream`] (a blob of unknown length read as it
//!   is made, in one streamed PATCH), [`Client::put_manifest`].
//! * [`auth_file`] reads and writes Docker's and Podman's credential file;
//!   [`Options::for_registry`] takes a registry's credentials and CAs from
//!   where Docker and Podman keep them; [`login`] checks credentials
//!   before keeping them, [`logout`] forgets them; [`RegistriesConf`]
//!   reads Podman's `registries.conf` (insecure, blocked, mirrors).
#![forbid(unsafe_code)]

mod auth;
pub mod auth_file;
mod blob;
mod challenge;
mod client;
mod config;
mod error;
mod manifest;
mod push;
pub mod registries_conf;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod url;

pub use auth_file::{AuthFile, Credentials};
pub use blob::BlobReader;
pub use client::{Client, Options};
pub use config::{api_host, login, logout, CERTS_D};
pub use error::{Error, ErrorKind, Result};
pub use manifest::{Manifest, MANIFEST_MEDIA_TYPES, MAX_MANIFEST};
pub use push::{Mount, Upload};
pub use registries_conf::{Endpoint, RegistriesConf};

#[cfg(test)]
mod tests {
    /// Layers download on several threads: one client shared, each
    /// blob read on its own thread.
    #[test]
    fn client_is_shared_and_blob_readers_move_between_threads() {
        fn sync<T: Sync + Send>() {}
        fn send<T: Send>() {}
        sync::<super::Client>();
        send::<super::BlobReader<'static>>();
    }
}
