use std::io;

/// The class of a registry failure: what the caller (and the user) can do
/// about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 401: no credentials, or wrong ones.
    Unauthorized,
    /// 403: the credentials may not do this.
    Denied,
    /// 404: no such repository, tag, manifest or blob.
    NotFound,
    /// 429 after every retry.
    TooManyRequests,
    /// 5xx after every retry, or an answer the protocol does not allow.
    Server,
    /// Content that fails its digest or size, or is larger than allowed.
    Corrupt,
    /// The connection failed, was reset or stalled past its timeout.
    Network,
    /// A request strata refuses to make: plain HTTP to a registry not
    /// marked insecure, a redirect loop, an unreadable CA or auth file.
    Refused,
}

/// A registry error. Messages name the registry, the repository and the
/// digest or tag; never a credential or a token.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Error {
    pub(crate) kind: ErrorKind,
    pub(crate) msg: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error {
            kind,
            msg: msg.into(),
            source: None,
        }
    }

    pub(crate) fn with(
        kind: ErrorKind,
        msg: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error {
            kind,
            msg: msg.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The registry error an I/O error from a blob reader carries, if it
    /// carries one.
    pub fn from_io(e: &io::Error) -> Option<&Error> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
    }

    /// This error as an I/O error, for a `Read` implementation.
    pub(crate) fn into_io(self) -> io::Error {
        let kind = match self.kind {
            ErrorKind::Corrupt => io::ErrorKind::InvalidData,
            ErrorKind::Network => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
