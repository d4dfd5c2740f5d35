//! The crate's one public error type.

/// What went wrong, for callers that act on the class of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Options or arguments are malformed or contradict each other.
    InvalidInput,
    /// A branch, work dir or mount point does not exist.
    NotFound,
    /// Mounting needs a privilege this process lacks.
    PermissionDenied,
    /// Something the kernel or the branches' file system cannot do.
    Unsupported,
    /// A file-system or FUSE operation failed.
    Io,
}

// An error of this crate: a kind, a short message naming the path or
// option, and the underlying error if any.
strata_types::error_type!(ErrorKind, io: [NotFound, PermissionDenied, Unsupported, InvalidInput]);

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput, message)
    }
}
