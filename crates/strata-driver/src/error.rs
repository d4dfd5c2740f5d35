/// The class of a driver failure, for callers that act on it: the kind
/// the store's errors have too.
pub use strata_types::ErrorKind;

// A driver error: a kind, a short message naming the layer or path, and
// the underlying error as the source.
strata_types::error_type!(ErrorKind);

impl Error {
    /// A failure reading or applying a layer stream.
    pub(crate) fn archive(msg: impl Into<String>, err: strata_archive::Error) -> Self {
        Error::with(of_stream(err.kind()), msg, err)
    }

    /// A failure writing a layer's image from its stream (the archive's
    /// kinds).
    pub(crate) fn image(msg: impl Into<String>, err: strata_erofs::Error) -> Self {
        Error::with(of_stream(err.kind()), msg, err)
    }

    /// NotFound: no layer `id`.
    pub(crate) fn no_layer(id: &str) -> Self {
        Error::new(ErrorKind::NotFound, format!("layer {id} does not exist"))
    }

    /// NotFound: no parent layer `p` to make a layer over.
    pub(crate) fn no_parent(p: &str) -> Self {
        Error::new(
            ErrorKind::NotFound,
            format!("parent layer {p} does not exist"),
        )
    }

    /// AlreadyExists: a layer `id` is there.
    pub(crate) fn layer_exists(id: &str) -> Self {
        Error::new(
            ErrorKind::AlreadyExists,
            format!("layer {id} already exists"),
        )
    }

    /// InUse: layer `id` is held by a `get`.
    pub(crate) fn layer_in_use(id: &str) -> Self {
        Error::new(
            ErrorKind::InUse,
            format!("layer {id} is in use: put it first"),
        )
    }
}

/// `e` and its sources, joined by `: `.
pub use strata_types::error::chain;

/// The driver's kind of a layer stream's failure: a refused stream is an
/// invalid argument.
fn of_stream(kind: strata_archive::ErrorKind) -> ErrorKind {
    match kind {
        strata_archive::ErrorKind::Unsupported => ErrorKind::Unsupported,
        strata_archive::ErrorKind::InvalidLayer => ErrorKind::InvalidArgument,
        _ => ErrorKind::Io,
    }
}
