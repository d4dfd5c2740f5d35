/// The class of a format failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not an archive, a document that does not parse, a path that leaves
    /// the archive, a name that is not a reference.
    InvalidArgument,
    /// Content that fails its digest or size.
    Corrupt,
    NotFound,
    Io,
}

// A format error: a kind, a message naming the document, the blob or the
// path, and the source.
strata_types::error_type!(ErrorKind, io: [NotFound], invalid: [strata_types::InvalidReference]);
