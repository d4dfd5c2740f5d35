//! Metadata writes that a crash cannot tear: the store's pattern
//! (DESIGN §3), `strata_sys::atomic`.

pub(crate) use strata_sys::atomic::{sync_dir, write};

/// Now, as RFC 3339 in UTC (`YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ`).
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}
