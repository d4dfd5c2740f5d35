//! Whiteouts: how a layer says "this was deleted".
//!
//! In a layer tar (OCI image spec, layer.md, "Whiteouts"):
//!
//! > A whiteout file is an empty file with a special filename that signifies
//! > a path should be deleted. A whiteout filename consists of the prefix
//! > `.wh.` plus the basename of the path to be deleted. [...] Files that
//! > are present in the same layer as a whiteout file can only be hidden by
//! > whiteout files in subsequent layers.
//! >
//! > An opaque whiteout entry is a file with the name `.wh..wh..opq`
//! > indicating that all siblings are hidden in the lower layer.
//! > [...] implementations SHOULD generate layers such that the whiteout
//! > files appear before sibling directory entries.
//!
//! On disk, kernel overlayfs marks the same things with a character device
//! 0/0 (a whiteout) and the `trusted.overlay.opaque=y` xattr (an opaque
//! directory); an unprivileged mount with `userxattr` reads `user.overlay.*`
//! instead.

pub(crate) use strata_types::whiteout::{META_PREFIX, OPAQUE, PREFIX};

/// Where apply writes, which decides what a whiteout becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A directory that already holds the lower layers' content (vfs,
    /// btrfs, a plain extraction): whiteouts delete for real.
    Plain,
    /// An overlay upper (`diff/`) directory: whiteouts become overlay
    /// whiteout nodes and opaque markers.
    Overlay(OverlayXattrs),
}

/// Which xattr namespace overlayfs reads its markers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayXattrs {
    /// `trusted.overlay.*`: the kernel default; needs CAP_SYS_ADMIN.
    Trusted,
    /// `user.overlay.*`: mounts with `userxattr` (inside a user namespace).
    User,
}

impl OverlayXattrs {
    /// The xattr that marks an opaque directory.
    pub fn opaque(self) -> &'static [u8] {
        match self {
            OverlayXattrs::Trusted => b"trusted.overlay.opaque",
            OverlayXattrs::User => b"user.overlay.opaque",
        }
    }

    /// The xattr of a renamed directory (`redirect_dir`).
    pub fn redirect(self) -> &'static [u8] {
        match self {
            OverlayXattrs::Trusted => b"trusted.overlay.redirect",
            OverlayXattrs::User => b"user.overlay.redirect",
        }
    }

    /// The xattr of a metadata-only copy-up (`metacopy`).
    pub fn metacopy(self) -> &'static [u8] {
        match self {
            OverlayXattrs::Trusted => b"trusted.overlay.metacopy",
            OverlayXattrs::User => b"user.overlay.metacopy",
        }
    }
}

/// Overlay-private xattrs: never copied from a tar into a layer (they
/// would let a layer forge opaque dirs or redirects) and never written
/// into a tar.
pub(crate) fn is_overlay_private(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// What a final path component means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Name<'a> {
    /// An ordinary name.
    Plain,
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// `.wh.NAME`: NAME is deleted.
    Whiteout(&'a [u8]),
}

/// Classifies a final component; `Err` for names in the whiteout space
/// that mean nothing (`.wh.`, `.wh..`, `.wh...`, unknown `.wh..wh.` meta
/// names), which moby refuses as "invalid whiteout entry" too.
pub(crate) fn classify(name: &[u8]) -> Result<Name<'_>, &'static str> {
    if name == OPAQUE {
        return Ok(Name::Opaque);
    }
    if name.starts_with(META_PREFIX) {
        return Err("unknown whiteout meta entry (reserved `.wh..wh.` prefix)");
    }
    match name.strip_prefix(PREFIX) {
        None => Ok(Name::Plain),
        Some(b"") | Some(b".") | Some(b"..") => {
            Err("invalid whiteout entry: it names no file in its directory")
        }
        Some(target) => Ok(Name::Whiteout(target)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        assert_eq!(classify(b"passwd"), Ok(Name::Plain));
        assert_eq!(classify(b".wh.passwd"), Ok(Name::Whiteout(b"passwd")));
        assert_eq!(classify(b".wh..wh..opq"), Ok(Name::Opaque));
        assert_eq!(classify(b".wh..hidden"), Ok(Name::Whiteout(b".hidden")));
        assert!(classify(b".wh.").is_err());
        assert!(classify(b".wh..").is_err());
        assert!(classify(b".wh...").is_err());
        assert!(classify(b".wh..wh.plnk").is_err());
    }
}
