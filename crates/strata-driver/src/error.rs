/// The class of a driver failure, for callers that act on it: the kind
/// the store's errors have too.
pub use strata_types::ErrorKind;

// A driver error: a kind, a short message naming the layer or path, and
// the underlying error as the source.
strata_types::error_type!(ErrorKind);

impl Error {
    pub(crate) fn archive(msg: impl Into<String>, err: strata_archive::Error) -> Self {
        let kind = match err.kind() {
            strata_archive::ErrorKind::Unsupported => ErrorKind::Unsupported,
            strata_archive::ErrorKind::InvalidLayer => ErrorKind::InvalidArgument,
            _ => ErrorKind::Io,
        };
        Error::with(kind, msg, err)
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
