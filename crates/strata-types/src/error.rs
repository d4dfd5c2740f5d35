//! The one error pattern of strata's library crates.
//!
//! Each crate's public error is a kind (its own `#[non_exhaustive]`
//! `ErrorKind`, for callers that act on the class of failure), a short
//! message naming the object or path, and the underlying error as the
//! source (printed by the caller's chain, so never repeated in the
//! message). [`error_type!`](crate::error_type) writes that type, its
//! `Result` and the crate's `IoContext` (`.ctx(|| "reading ...")` on an
//! `io::Result`) from the crate's `ErrorKind`; the crate says how an
//! `io::Error` maps onto its kinds by implementing [`IoKind`], and keeps
//! only what is its own (conversions from the errors of the crates below
//! it) beside the macro's line. The store and the driver share one kind,
//! [`ErrorKind`]; crates whose failures are of other classes (a volume
//! plugin's timeout, a refused layer entry) have their own.

use std::io;

/// The classes of failure of the store and the driver (STYLE: one kind,
/// `#[non_exhaustive]`), for callers that act on the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// Used by an image or a container, or mounted, or otherwise busy.
    InUse,
    /// Metadata or on-disk state that makes no sense, or content that
    /// fails its digest.
    Corrupt,
    /// The machine or the file system cannot do it.
    Unsupported,
    InvalidArgument,
    PermissionDenied,
    Io,
}

impl IoKind for ErrorKind {
    fn of_io(kind: io::ErrorKind) -> Self {
        match kind {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        }
    }
}

/// A boxed error, as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `e` and its sources, joined by `: `: the whole chain, as a report or
/// a test prints it.
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

/// How a crate's `ErrorKind` classes an `io::Error`.
pub trait IoKind: Copy {
    fn of_io(kind: io::ErrorKind) -> Self;
}

/// Defines `Error`, `Result` and `IoContext` for the calling crate's
/// `ErrorKind`, which must implement [`IoKind`]; or, given a list of
/// `io::ErrorKind`s (`io: [NotFound, PermissionDenied]`), implements it
/// too: those map to the kinds of the same names, any other to `Io`.
/// Given `invalid: [InvalidReference, ...]`, a value that failed its
/// parse converts into an `InvalidArgument` error saying why.
///
/// The error is made with `thiserror`, so the calling crate depends on it.
#[macro_export]
macro_rules! error_type {
    ($kind:ident, io: [$($io:ident),* $(,)?] $(, invalid: [$($invalid:path),* $(,)?])?) => {
        impl $crate::error::IoKind for $kind {
            fn of_io(kind: ::std::io::ErrorKind) -> Self {
                match kind {
                    $(::std::io::ErrorKind::$io => $kind::$io,)*
                    _ => $kind::Io,
                }
            }
        }
        $crate::error_type!($kind $(, invalid: [$($invalid),*])?);
    };
    ($kind:ident, invalid: [$($invalid:path),* $(,)?]) => {
        $(
            impl ::std::convert::From<$invalid> for Error {
                fn from(e: $invalid) -> Self {
                    Error::new($kind::InvalidArgument, e.to_string())
                }
            }
        )*
        $crate::error_type!($kind);
    };
    ($kind:ident) => {
        /// An error of this crate: a kind, a message naming the object or
        /// the path, and the underlying error as the source.
        #[derive(Debug, ::thiserror::Error)]
        #[error("{msg}")]
        pub struct Error {
            kind: $kind,
            msg: ::std::string::String,
            #[source]
            source: ::std::option::Option<$crate::error::BoxError>,
        }

        impl Error {
            pub fn new(kind: $kind, msg: impl ::std::convert::Into<::std::string::String>) -> Self {
                Error {
                    kind,
                    msg: msg.into(),
                    source: None,
                }
            }

            pub fn with(
                kind: $kind,
                msg: impl ::std::convert::Into<::std::string::String>,
                source: impl ::std::error::Error + Send + Sync + 'static,
            ) -> Self {
                Error {
                    kind,
                    msg: msg.into(),
                    source: Some(::std::boxed::Box::new(source)),
                }
            }

            /// An I/O failure; the kind follows the `io::Error`'s.
            pub fn io(
                msg: impl ::std::convert::Into<::std::string::String>,
                err: ::std::io::Error,
            ) -> Self {
                let kind = <$kind as $crate::error::IoKind>::of_io(err.kind());
                Error::with(kind, msg, err)
            }

            /// `e`, introduced by what was being done.
            pub fn within(
                what: impl ::std::convert::Into<::std::string::String>,
                e: Error,
            ) -> Self {
                Error::with(e.kind, what, e)
            }

            /// The parts, as [`Error::into_parts`] gives them.
            pub fn from_parts(
                kind: $kind,
                msg: ::std::string::String,
                source: ::std::option::Option<$crate::error::BoxError>,
            ) -> Self {
                Error { kind, msg, source }
            }

            /// The class of failure.
            pub fn kind(&self) -> $kind {
                self.kind
            }

            /// The message, without the source.
            pub fn message(&self) -> &str {
                &self.msg
            }

            /// The message and the source, for wrapping in another crate's
            /// error.
            pub fn into_parts(
                self,
            ) -> (
                ::std::string::String,
                ::std::option::Option<$crate::error::BoxError>,
            ) {
                (self.msg, self.source)
            }
        }

        /// `Result` with this crate's [`Error`].
        pub type Result<T, E = Error> = ::std::result::Result<T, E>;

        /// Adds a message to an `io::Result`.
        #[allow(dead_code)]
        pub(crate) trait IoContext<T> {
            fn ctx(self, msg: impl FnOnce() -> ::std::string::String) -> Result<T>;
        }

        impl<T> IoContext<T> for ::std::io::Result<T> {
            fn ctx(self, msg: impl FnOnce() -> ::std::string::String) -> Result<T> {
                self.map_err(|e| Error::io(msg(), e))
            }
        }
    };
}

#[cfg(test)]
#[allow(dead_code)] // the macro's whole API, used here only in part
mod tests {
    use std::error::Error as _;
    use std::io;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ErrorKind {
        NotFound,
        InvalidArgument,
        Io,
    }

    crate::error_type!(ErrorKind, io: [NotFound], invalid: [crate::InvalidSize]);

    #[test]
    fn a_failed_parse_is_an_invalid_argument_saying_why() {
        let e = Error::from(crate::parse_size("lots").unwrap_err());
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("\"lots\""), "{e}");
    }

    #[test]
    fn the_message_is_the_display_and_the_cause_the_source() {
        let e: Result<()> =
            Err(io::Error::from(io::ErrorKind::NotFound)).ctx(|| "reading x".into());
        let e = e.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "reading x");
        // The source is the io::Error itself, not a box of it: callers
        // walk the chain and downcast (a broken pipe is not a failure).
        assert!(e.source().unwrap().downcast_ref::<io::Error>().is_some());
        let outer = Error::within("loading", e);
        assert_eq!(outer.kind(), ErrorKind::NotFound);
        assert_eq!(outer.source().unwrap().to_string(), "reading x");
        let (msg, source) = Error::new(ErrorKind::Io, "m").into_parts();
        assert_eq!((msg.as_str(), source.is_none()), ("m", true));
    }
}
