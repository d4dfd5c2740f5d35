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

// A store error: a kind, a message naming the object, and the source.
strata_types::error_type!(ErrorKind, io: [NotFound, AlreadyExists, PermissionDenied]);

impl Error {
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
        Error::from_parts(kind, msg, source)
    }
}

impl From<strata_types::InvalidReference> for Error {
    fn from(e: strata_types::InvalidReference) -> Self {
        Error::new(ErrorKind::InvalidArgument, e.to_string())
    }
}
