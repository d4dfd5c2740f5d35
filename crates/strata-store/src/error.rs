use std::fmt;
use std::io;

/// The class of a store failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// Used by an image or a container, or mounted.
    InUse,
    /// Metadata that makes no sense, or content that fails its digest.
    Corrupt,
    Unsupported,
    InvalidArgument,
    PermissionDenied,
    Io,
}

/// A store error: a kind, a message naming the object, and the source.
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

    pub fn with(
        kind: ErrorKind,
        msg: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            msg: msg.into(),
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn from_parts(
        kind: ErrorKind,
        msg: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error { kind, msg, source }
    }

    pub fn io(msg: impl Into<String>, err: io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        };
        Error::with(kind, msg, err)
    }

    pub(crate) fn driver(msg: impl Into<String>, err: strata_driver::Error) -> Self {
        use strata_driver::ErrorKind as D;
        let kind = match err.kind() {
            D::NotFound => ErrorKind::NotFound,
            D::AlreadyExists => ErrorKind::AlreadyExists,
            D::InUse => ErrorKind::InUse,
            D::Corrupt => ErrorKind::Corrupt,
            D::Unsupported => ErrorKind::Unsupported,
            D::InvalidArgument => ErrorKind::InvalidArgument,
            D::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        };
        Error::with(kind, msg, err)
    }
}

impl From<strata_image::Error> for Error {
    fn from(e: strata_image::Error) -> Self {
        use strata_image::ErrorKind as I;
        let kind = match e.kind() {
            I::InvalidArgument => ErrorKind::InvalidArgument,
            I::Corrupt => ErrorKind::Corrupt,
            I::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        };
        let (msg, source) = e.into_parts();
        Error { kind, msg, source }
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

pub(crate) trait IoContext<T> {
    fn ctx(self, msg: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, msg: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(msg(), e))
    }
}
