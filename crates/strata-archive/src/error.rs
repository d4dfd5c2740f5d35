use std::io;

/// What went wrong, for callers that act on the class of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The layer stream is malformed or hostile: refused.
    InvalidLayer,
    /// A feature the stream or the file system needs is not supported.
    Unsupported,
    /// A file-system or stream operation failed.
    Io,
    /// Stored metadata (a tar-split record) is damaged, or no longer
    /// matches the files it describes.
    Corrupt,
}

/// An `io::Error` is an [`ErrorKind::Io`] (for crates that take this kind
/// as theirs, as `strata-erofs` does).
impl strata_types::IoKind for ErrorKind {
    fn of_io(_: io::ErrorKind) -> Self {
        ErrorKind::Io
    }
}

/// Errors of this crate. Messages name the tar entry or the path and the
/// reason; the underlying error, if any, is the `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tar entry was refused.
    #[error("layer entry {entry:?}: {reason}")]
    Entry { entry: String, reason: String },
    /// A hard link names a file that neither the layer nor the lower
    /// layers it was applied over (if any were given) has. Applying the
    /// layer once its parents' content is in place may succeed.
    #[error("layer entry {entry:?}: hard link target {target:?} does not exist in the layer")]
    MissingLinkTarget { entry: String, target: String },
    /// A file-system operation on a tar entry failed.
    #[error("layer entry {entry:?}: {op}")]
    EntryIo {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The stream itself could not be read: truncated, corrupt compression,
    /// not a tar.
    #[error("reading the layer stream: {what}")]
    Stream {
        what: String,
        #[source]
        source: Option<io::Error>,
    },
    /// The stream does not begin as a tar does: not an archive at all.
    #[error("not a tar archive")]
    NotTar,
    /// A file-system operation outside any tar entry failed.
    #[error("{op} {path:?}")]
    Fs {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    /// Something this crate does not do.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A tar-split record is malformed or does not match the layer's files.
    #[error("tar-split record: {what}")]
    Record {
        what: String,
        #[source]
        source: Option<io::Error>,
    },
    /// Writing a tar-split record, or the tar reassembled from one, failed.
    #[error("{op}")]
    Write {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Entry { .. } | Error::MissingLinkTarget { .. } => ErrorKind::InvalidLayer,
            Error::Stream { .. } | Error::NotTar => ErrorKind::InvalidLayer,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::EntryIo { .. } | Error::Fs { .. } | Error::Write { .. } => ErrorKind::Io,
            Error::Record { .. } => ErrorKind::Corrupt,
        }
    }

    pub(crate) fn entry(entry: &[u8], reason: impl Into<String>) -> Self {
        Error::Entry {
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn entry_io(entry: &[u8], op: &'static str, source: io::Error) -> Self {
        Error::EntryIo {
            entry: String::from_utf8_lossy(entry).into_owned(),
            op,
            source,
        }
    }

    pub(crate) fn fs(op: &'static str, path: impl AsRef<[u8]>, source: io::Error) -> Self {
        Error::Fs {
            op,
            path: String::from_utf8_lossy(path.as_ref()).into_owned(),
            source,
        }
    }

    pub(crate) fn record(what: impl Into<String>, source: Option<io::Error>) -> Self {
        Error::Record {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn stream(what: impl Into<String>, source: Option<io::Error>) -> Self {
        Error::Stream {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
