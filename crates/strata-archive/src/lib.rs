//! Layer changesets in the OCI layer format: the tar streams every strata
//! operation moves layers with.
//!
//! * [`apply`] streams a layer (plain, gzip or zstd, told apart by their
//!   magic bytes) into a directory, computing the diffID in the same pass,
//!   with every file-system operation confined to that directory.
//! * [`diff_upper`] and [`diff_trees`] write a layer from an overlay upper
//!   directory (native) or from two directory trees (naive);
//!   [`changes_upper`] and [`changes_trees`] list what changed, the way
//!   `docker diff` does.
//! * [`PathInRoot`] finds one path inside a root the way `cp` must,
//!   symlinks resolved as if the root were `/`, and writes it as a tar.
//! * [`apply_recording`] applies a layer and writes its tar-split record;
//!   [`reassemble`] writes the original tar again from the record and the
//!   applied directory, byte for byte; [`recorded_tar`] reads the tar's
//!   diffID and length from the record alone.
//! * [`Entries`] reads a layer's entries checked and classified as
//!   [`apply`] reads them, for writers of other formats (file-system
//!   images).
//!
//! Whiteout rules follow the OCI image spec, "Representing Changes"
//! (<https://github.com/opencontainers/image-spec/blob/main/layer.md>).
#![forbid(unsafe_code)]

mod apply;
mod compress;
mod copy;
mod diff;
mod digest;
mod docker_split;
mod entries;
mod error;
mod gzip;
mod lower;
mod path;
mod read;
mod root;
mod split;
mod walk;
mod whiteout;
mod writer;

pub use apply::{apply, ApplyOptions, ApplyReport, Devices, Ownership};
pub use compress::{decompress, read_threaded, Compression, Stream, ThreadedReader, MAGIC_LEN};
pub use copy::{clean_path, PathInRoot};
pub use diff::{
    changes_trees, changes_trees_known, changes_upper, diff_trees, diff_trees_known, diff_upper,
    Change, ChangeKind, Unchanged,
};
pub use digest::{sha256, sha256_reader, Digest, DigestWriter};
pub use entries::{Attrs, Entries, EntryKind, LayerEntry, Special};
pub use error::{Error, ErrorKind, Result};
pub use gzip::parallel_gzip;
pub use lower::{LowerEntry, LowerKind, Lowers};
pub use split::{
    apply_recording, reassemble, recorded_tar, recorded_tar_size, SplitRecorder, SplitTee,
};
pub use walk::{TooManyLinks, Walk, MAX_SYMLINKS};
pub use whiteout::{OverlayXattrs, Target};
pub use writer::DiffReport;
