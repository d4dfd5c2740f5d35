//! The whiteout names of a layer tar, and of an aufs-style branch (OCI
//! image spec, layer.md, "Whiteouts"):
//!
//! > A whiteout file is an empty file with a special filename that signifies
//! > a path should be deleted. A whiteout filename consists of the prefix
//! > `.wh.` plus the basename of the path to be deleted.
//! >
//! > An opaque whiteout entry is a file with the name `.wh..wh..opq`
//! > indicating that all siblings are hidden in the lower layer.
//!
//! Names under the `.wh..wh.` prefix are reserved for such markers (aufs
//! keeps its own `.wh..wh.orph`, `.wh..wh.plnk` there).

/// `.wh.NAME` hides NAME.
pub const PREFIX: &[u8] = b".wh.";

/// The reserved prefix of marker names (`.wh..wh.opq`, aufs's
/// `.wh..wh.orph`, ...): never a whiteout of a file.
pub const META_PREFIX: &[u8] = b".wh..wh.";

/// An opaque directory: what the layers below hold in it is hidden.
pub const OPAQUE: &[u8] = b".wh..wh..opq";

/// aufs's staging directory for files still open after their removal.
pub const ORPHANS: &[u8] = b".wh..wh.orph";
