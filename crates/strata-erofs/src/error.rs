/// The class of a failure to write an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The layer stream is malformed or hostile, or holds an entry an
    /// image cannot (a name over 255 bytes, an xattr value over 64 KiB):
    /// refused.
    InvalidLayer,
    /// Something the layer holds that the reader of tar streams does not
    /// take (as `strata_archive` reports it).
    Unsupported,
    /// Reading the stream or writing the image failed.
    Io,
}

// An image error: a kind, a message naming the entry, and the source.
strata_types::error_type!(ErrorKind, io: []);

impl From<strata_archive::Error> for Error {
    fn from(e: strata_archive::Error) -> Self {
        let kind = match e.kind() {
            strata_archive::ErrorKind::InvalidLayer => ErrorKind::InvalidLayer,
            strata_archive::ErrorKind::Unsupported => ErrorKind::Unsupported,
            _ => ErrorKind::Io,
        };
        // The archive's error stays the source, so that a caller can tell
        // what it was (a hard link to a file the layers below lack is one
        // a load retries in order).
        Error::with(kind, "reading the layer", e)
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
