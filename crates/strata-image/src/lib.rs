//! Image archive formats, read and written: Docker's docker-archive
//! (legacy, and the form Docker 25 writes: an OCI layout with
//! `manifest.json` beside it) and OCI image layouts, as a directory or a
//! tar. Formats only: what an archive holds and how to lay one out; the
//! store decides what to unpack and where.
//!
//! * [`Source`] reads an archive: a tar indexed once and read at offsets
//!   (several blobs at a time), or a directory with every open confined
//!   beneath it.
//! * [`read_images`] checks the documents (`manifest.json`, `index.json`,
//!   manifests, configs) against their descriptors and says what each
//!   layer blob must be.
//! * [`layout`] lays images out as the files of an archive, and
//!   [`TarSink`] and [`DirSink`] write them.
#![forbid(unsafe_code)]

mod error;
mod format;
mod platform;
mod read;
mod reference;
mod source;
mod write;

pub use error::{Error, ErrorKind, Result};
pub use format::{diff_ids, familiar, oci_arch, MAX_JSON};
pub use read::{read_images, ImageDesc, LayerDesc};
pub use reference::{ImageRef, InvalidReference};
pub use source::Source;
pub use write::{layout, Content, DirSink, Entry, SaveFormat, SaveImage, Sink, TarSink};
