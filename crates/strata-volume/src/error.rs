use std::fmt;
use std::io;

/// The class of a volume failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad name, option or spec.
    InvalidArgument,
    NotFound,
    AlreadyExists,
    /// Used by a container.
    InUse,
    /// A plugin that answered with an error, or not at all.
    Plugin,
    Timeout,
    Io,
}

/// A volume error: a kind, a message naming the volume or the plugin,
/// and the source.
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

    pub(crate) fn io(msg: impl Into<String>, err: io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        };
        Error::with(kind, msg, err)
    }

    /// `e`, introduced by what was being done.
    pub fn within(what: impl Into<String>, e: Error) -> Error {
        Error::with(e.kind, what, e)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message and the source, for wrapping in another crate's error.
    pub fn into_parts(self) -> (String, Option<Box<dyn std::error::Error + Send + Sync>>) {
        (self.msg, self.source)
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
