//! The quota capability ([`crate::Quota`]): a size limit is enforced, or
//! refused with the reason; never taken and ignored.

use std::io::Write;

use super::harness::{chain, Factory, Harness};
use crate::ErrorKind;

/// Docker's `--storage-opt size=`: a driver that can limit a container's
/// layer stops a write past the limit with `EDQUOT` and leaves the image
/// and other containers alone; one that cannot says `Unsupported`,
/// naming the option.
pub fn size_limit_enforced_or_refused(f: Factory) {
    let h = Harness::new(f);
    h.create("base", None);
    h.with_layer("base", |p| std::fs::write(p.join("lib"), b"lib").unwrap());
    h.create_rw("ctr", Some("base"));
    h.create_rw("other", Some("base"));
    let quota = match h.driver().quota() {
        Ok(q) => q,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", chain(&e));
            assert!(
                e.to_string().contains("size"),
                "the refusal does not say what it refuses: {e}"
            );
            h.finish();
            return;
        }
    };
    quota
        .set_size_limit("ctr", 8 << 20)
        .unwrap_or_else(|e| panic!("set_size_limit: {}", chain(&e)));
    assert_eq!(
        quota
            .size_limit("ctr")
            .unwrap_or_else(|e| panic!("size_limit: {}", chain(&e))),
        Some(8 << 20)
    );
    let chunk = vec![0x5a_u8; 1 << 20];
    let fill = |dir: &std::path::Path, mib: usize| -> std::io::Result<()> {
        let mut file = std::fs::File::create(dir.join("fill"))?;
        for _ in 0..mib {
            file.write_all(&chunk)?;
        }
        file.sync_all()
    };
    let err = h
        .with_layer("ctr", |p| fill(p, 32))
        .expect_err("wrote 32 MiB past an 8 MiB limit");
    assert_eq!(err.raw_os_error(), Some(122), "not EDQUOT: {err}");
    h.with_layer("other", |p| fill(p, 32))
        .expect("a container without a limit");
    h.remove("ctr");
    h.remove("other");
    h.finish();
}
