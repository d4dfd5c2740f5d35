//! Image archive formats, read and written: Docker's docker-archive
//! (legacy, and the form Docker 25 writes: an OCI layout with
//! `manifest.json` beside it) and OCI image layouts, as a directory or a
//! tar. Formats only: what an archive holds and how to lay one out; the
//! store decides what to unpack and where.
//!
//! * [`Source`] is where images are read from, blobs looked up by digest
//!   (or, in a docker-archive, by path): [`TarSource`], a tar indexed once
//!   and read at offsets (several blobs at a time), and [`DirSource`], a
//!   directory with every open confined beneath it; a registry is one
//!   more.
//! * [`read_images`] checks an archive's documents (`manifest.json`,
//!   `index.json`, manifests, configs) against their descriptors and says
//!   what each layer blob must be; [`read_image`] does the same from one
//!   manifest or index descriptor.
//! * [`layout`] lays images out as the files of an archive, and
//!   [`TarSink`] and [`DirSink`] write them.
#![forbid(unsafe_code)]

mod dir_layout;
mod error;
mod format;
mod platform;
mod read;
mod reference;
mod source;
mod write;

pub use error::{Error, ErrorKind, Result};
pub use format::{diff_ids, familiar, oci_arch, MAX_JSON};
pub use platform::{parse as parse_platform, Platform};
pub use read::{read_image, read_images, ImageDesc, LayerDesc};
pub use reference::{ImageRef, InvalidReference};
pub use source::{open_archive, Blob, BlobKey, DirSource, Source, TarSource};
pub use write::{
    layout, tar_header, Content, DirSink, Entry, SaveFormat, SaveImage, SaveLayer, Sink, TarSink,
};
