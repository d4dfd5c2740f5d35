//! Sizes as Docker's command line writes them (`--memory 512m`,
//! `--storage-opt size=10G`).

/// Why a string is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {0:?}: a number with b, k, m, g, t or p (powers of 1024)")]
pub struct InvalidSize(pub String);

/// Bytes from a size as Docker's `RAMInBytes` reads one: a decimal
/// number, an optional space, then optionally a unit `k m g t p` (powers
/// of 1024) followed by nothing, `b` or `ib`, or a lone `b`; any case.
/// `512m`, `1.5G`, `10 GiB`, `64mb` and `7340032` are sizes; a negative
/// number, an exponent or a size past `u64` is not.
pub fn parse_size(s: &str) -> Result<u64, InvalidSize> {
    let bad = || InvalidSize(s.to_owned());
    let lower = s.to_ascii_lowercase();
    let end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(end);
    let unit = unit.strip_prefix(' ').unwrap_or(unit);
    let shift = match unit.as_bytes() {
        [] | [b'b'] => 0,
        [u] | [u, b'b'] | [u, b'i', b'b'] => match u {
            b'k' => 10,
            b'm' => 20,
            b'g' => 30,
            b't' => 40,
            b'p' => 50,
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_reads_them() {
        for (s, n) in [
            ("1024", 1024),
            ("100b", 100),
            ("64m", 64 << 20),
            ("64M", 64 << 20),
            ("64mb", 64 << 20),
            ("64 m", 64 << 20),
            ("512MiB", 512 << 20),
            ("2 GB", 2 << 30),
            ("1.5g", 3 << 29),
            ("1.5k", 1536),
            ("1p", 1 << 50),
        ] {
            assert_eq!(parse_size(s), Ok(n), "{s}");
        }
        for bad in [
            "",
            "m",
            "x",
            "10q",
            "64x",
            "-1",
            "-1m",
            "1..2g",
            "1e30t",
            "0x10m",
            "64  m",
            "64mbb",
            "64kib ",
            "64bi",
            "99999999p",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} taken");
        }
    }
}
