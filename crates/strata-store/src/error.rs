/// The class of a store failure: the driver's kind, so a driver error
/// keeps its class when the store passes it on.
pub use strata_types::ErrorKind;

// A store error: a kind, a message naming the object, and the source.
strata_types::error_type!(
    ErrorKind,
    invalid: [strata_types::InvalidReference, strata_types::InvalidSize]
);

impl Error {
    pub(crate) fn driver(msg: impl Into<String>, err: strata_driver::Error) -> Self {
        Error::with(err.kind(), msg, err)
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
