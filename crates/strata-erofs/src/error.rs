/// The class of a failure to write an image: the archive's, since an
/// image is written from a layer stream. `InvalidLayer` also covers an
/// entry an image cannot hold (a name over 255 bytes, an xattr value over
/// 64 KiB); `Io` a failure reading the stream or writing the image.
pub use strata_archive::ErrorKind;

// An image error: a kind, a message naming the entry, and the source.
strata_types::error_type!(ErrorKind);

impl From<strata_archive::Error> for Error {
    fn from(e: strata_archive::Error) -> Self {
        // The archive's error stays the source, so that a caller can tell
        // what it was (a hard link to a file the layers below lack is one
        // a load retries in order).
        Error::with(e.kind(), "reading the layer", e)
    }
}

/// A refused entry, named.
pub(crate) fn entry(raw: &[u8], reason: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidLayer,
        format!("layer entry {:?}: {reason}", String::from_utf8_lossy(raw)),
    )
}

/// An I/O failure while writing an entry, named.
pub(crate) fn entry_io(raw: &[u8], op: &str, source: std::io::Error) -> Error {
    Error::with(
        ErrorKind::Io,
        format!("layer entry {:?}: {op}", String::from_utf8_lossy(raw)),
        source,
    )
}
