use std::fmt;
use std::io;

/// The class of a driver failure, for callers that act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// Mounted, or otherwise busy.
    InUse,
    /// On-disk state that makes no sense.
    Corrupt,
    /// The machine or file system cannot do it.
    Unsupported,
    InvalidArgument,
    PermissionDenied,
    Io,
}

/// A driver error: a kind, a short message naming the layer or path, and
/// the underlying error as the source.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    msg: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
            source: None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub(crate) fn io(msg: impl Into<String>, err: io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        };
        Error {
            kind,
            msg: msg.into(),
            source: Some(Box::new(err)),
        }
    }

    pub(crate) fn archive(msg: impl Into<String>, err: strata_archive::Error) -> Self {
        let kind = match err.kind() {
            strata_archive::ErrorKind::Unsupported => ErrorKind::Unsupported,
            strata_archive::ErrorKind::InvalidLayer => ErrorKind::InvalidArgument,
            _ => ErrorKind::Io,
        };
        Error {
            kind,
            msg: msg.into(),
            source: Some(Box::new(err)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a message to an io::Result.
pub(crate) trait IoContext<T> {
    fn ctx(self, msg: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, msg: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(msg(), e))
    }
}

/// `e` and its sources, joined by `: `.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
