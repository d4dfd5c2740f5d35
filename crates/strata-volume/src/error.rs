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

// A volume error: a kind, a message naming the volume or the plugin, and
// the source.
strata_types::error_type!(ErrorKind, io: [NotFound], invalid: [strata_types::InvalidVolumeName]);
