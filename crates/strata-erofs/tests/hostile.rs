//! Hostile and malformed layers: each a clear error, and no image left
//! behind by `write_image`.

mod common;

use std::path::Path;

use common::*;
use strata_erofs::{write_image, ErrorKind, Options};

fn refused(tar: &[u8], expect: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("layer.erofs");
    let err = write_image(tar, &img, &Options::default()).expect_err("the layer is refused");
    let msg = strata_types::error::chain(&err);
    assert_eq!(err.kind(), ErrorKind::InvalidLayer);
    assert!(msg.contains(expect), "{msg:?} does not say {expect:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A ustar header with a raw name (the `tar` crate refuses to write `..`).
fn raw_entry(name: &[u8], ty: tar::EntryType, link: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(ty);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn finish(mut v: Vec<u8>) -> Vec<u8> {
    v.extend_from_slice(&[0u8; 1024]);
    v
}

#[test]
fn path_traversal_is_refused() {
    refused(
        &finish(raw_entry(b"../x", tar::EntryType::Regular, b"", b"evil")),
        "climbs out of the layer root",
    );
    refused(
        &finish(raw_entry(
            b"a/../../x",
            tar::EntryType::Regular,
            b"",
            b"evil",
        )),
        "climbs out",
    );
    refused(
        &finish(raw_entry(
            b"x",
            tar::EntryType::Link,
            b"../../etc/passwd",
            b"",
        )),
        "hard link target",
    );
}

#[test]
fn absolute_names_stay_inside_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("layer.erofs");
    let tar = finish(raw_entry(b"/etc/x", tar::EntryType::Regular, b"", b"in"));
    let r = write_image(tar.as_slice(), &img, &Options::default()).unwrap();
    assert_eq!(r.entries, 1);
    assert_eq!(r.inodes, 3, "the root, etc and x");
}

#[test]
fn a_truncated_stream_is_refused() {
    let tar = build_tar(&[Ent::file("f", vec![7u8; 100_000])]);
    for cut in [700, 50_000, 100_000] {
        refused(&tar[..cut], "truncated");
    }
    // Within the first header: not a tar at all, as apply says.
    refused(&tar[..300], "not a tar archive");
}

#[test]
fn a_hard_link_to_a_missing_target_is_refused() {
    refused(
        &build_tar(&[Ent::file("a", "x"), Ent::link("b", "nope")]),
        "does not exist in the layer",
    );
    refused(
        &build_tar(&[Ent::dir("d"), Ent::link("b", "d")]),
        "hard link to a directory",
    );
}

#[test]
fn malformed_entries_are_refused() {
    refused(
        &build_tar(&[Ent::file("a/.wh.x/y", "")]),
        "reserved whiteout prefix",
    );
    refused(&build_tar(&[Ent::file(".wh..wh.plnk", "")]), "whiteout");
    refused(
        &build_tar(&[Ent::file("f", "x"), Ent::file("f/g", "y")]),
        "not a directory",
    );
    refused(
        &build_tar(&[Ent::symlink("l", "l/"), Ent::file("l/g", "y")]),
        "too many symlinks",
    );
    refused(
        &build_tar(&[Ent::file("n".repeat(256), "x")]),
        "longer than 255",
    );
    let mut junk = vec![0x42u8; 512];
    junk.extend_from_slice(&[0u8; 1024]);
    refused(&junk, "not a tar archive");
}

/// Names are bytes, as everywhere in the archive crate: one that is not
/// UTF-8 is kept, not refused (Linux and EROFS store bytes).
#[test]
fn a_name_that_is_not_utf8_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("layer.erofs");
    let tar = build_tar(&[Ent::file(b"caf\xe9", "x")]);
    write_image(tar.as_slice(), &img, &Options::default()).unwrap();
    assert!(Path::new(&img).exists());
}

#[test]
fn errors_name_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = build_tar(&[Ent::link("the-link", "gone")]);
    let err = write_image(tar.as_slice(), &tmp.path().join("i"), &Options::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidLayer);
    let msg = strata_types::error::chain(&err);
    assert!(msg.contains("the-link"), "{msg}");
}

/// gzip and zstd layers give the image the plain tar gives, and the
/// diffID of the uncompressed stream; the same tar always gives the same
/// bytes.
#[test]
fn compressed_layers_give_the_same_image() {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tar = build_tar(&[
        Ent::dir("d"),
        Ent::file("d/f", strata_test_support::seeded_bytes(9, 70_000)),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    let r = write_image(tar.as_slice(), &plain, &Options::default()).unwrap();
    assert_eq!(
        r.diff_id.as_str(),
        format!("sha256:{:x}", Sha256::digest(&tar))
    );
    assert_eq!(r.tar_size, tar.len() as u64);
    assert_eq!(r.size, 70_000);
    let again = tmp.path().join("again");
    write_image(tar.as_slice(), &again, &Options::default()).unwrap();
    assert_eq!(
        std::fs::read(&plain).unwrap(),
        std::fs::read(&again).unwrap()
    );
    for tool in ["gzip", "zstd"] {
        if !strata_test_support::require(tool, have(tool)) {
            continue;
        }
        let mut child = Command::new(tool)
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = tar.clone();
        let feeder = std::thread::spawn(move || stdin.write_all(&input).unwrap());
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        let img = tmp.path().join(tool);
        let rc = write_image(out.stdout.as_slice(), &img, &Options::default()).unwrap();
        assert_eq!(rc.diff_id, r.diff_id, "{tool}");
        assert_eq!(rc.compression.as_str(), tool, "{tool}");
        assert_eq!(std::fs::read(&plain).unwrap(), std::fs::read(&img).unwrap());
    }
}

/// A sparse member whose length would take the image past the 16 TiB a
/// 32-bit block address reaches is refused, before anything is written
/// at its offsets; so is one past what a tar can hold in holes.
#[test]
fn a_sparse_file_past_16_tib_is_refused() {
    const TIB: u64 = 1 << 40;
    let mut tar = strata_test_support::gnu_sparse_member(
        "big",
        32 * TIB,
        &[(32 * TIB - 4, 4)],
        None,
        b"tail",
    );
    tar.resize(tar.len() + 1024, 0);
    refused(&tar, "16 TiB");
}
