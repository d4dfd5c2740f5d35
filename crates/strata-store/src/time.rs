//! RFC 3339 timestamps for image configs and records.

/// Now, as `YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ` (UTC), the form Docker writes.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_epoch_in_docker_form() {
        let t = humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH).to_string();
        assert_eq!(t, "1970-01-01T00:00:00.000000000Z");
        assert_eq!(super::now_rfc3339().len(), t.len());
    }
}
