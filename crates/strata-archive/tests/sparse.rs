//! Sparse entries: every format GNU tar writes (old GNU `S` with
//! extension headers, PAX 0.0, 0.1 and 1.0) is read as GNU tar reads it,
//! holes stay holes, the cost follows the bytes in the stream and not
//! the size a member declares, and malformed maps are refused before
//! anything is written.

mod common;
mod support;

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Tar;
use strata_archive::{apply, apply_recording, reassemble, ApplyOptions, ErrorKind};
use strata_test_support::gnu_sparse_member;
use support::{gnu_tar, random_bytes, run, Scratch};

const TIB: u64 = 1 << 40;

/// Files with holes in the places that matter: a hole first, between
/// chunks, last, and a file that is all hole.
fn build_sparse_tree(src: &Path) {
    fs::create_dir_all(src.join("d")).unwrap();
    let f = fs::File::create(src.join("holes")).unwrap();
    f.write_all_at(&random_bytes(1, 5000), 1 << 20).unwrap();
    f.write_all_at(&random_bytes(2, 4096), 8 << 20).unwrap();
    f.set_len(16 << 20).unwrap();
    let f = fs::File::create(src.join("d/many")).unwrap();
    // More chunks than the old GNU header holds: extension headers.
    for i in 0..40u64 {
        f.write_all_at(&random_bytes(i, 3000), i << 18).unwrap();
    }
    f.write_all_at(b"end", (41 << 18) - 3).unwrap();
    let f = fs::File::create(src.join("all-hole")).unwrap();
    f.set_len(4 << 20).unwrap();
    fs::write(src.join("dense"), random_bytes(9, 10_000)).unwrap();
}

const FORMATS: [(&str, &[&str]); 4] = [
    ("gnu", &["--sparse", "--format=gnu"]),
    (
        "pax-0.0",
        &["--sparse", "--format=posix", "--sparse-version=0.0"],
    ),
    (
        "pax-0.1",
        &["--sparse", "--format=posix", "--sparse-version=0.1"],
    ),
    (
        "pax-1.0",
        &["--sparse", "--format=posix", "--sparse-version=1.0"],
    ),
];

/// The regular files under `root`, by relative name: (length, content
/// digest, bytes allocated).
fn files(root: &Path) -> Vec<(String, u64, strata_archive::Digest, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                let digest = strata_archive::sha256_reader(fs::File::open(e.path()).unwrap())
                    .unwrap()
                    .0;
                out.push((rel, md.len(), digest, md.blocks() * 512));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A root-only scratch dir holding [`build_sparse_tree`] at `src`.
fn sparse_source() -> Option<(Scratch, PathBuf)> {
    let t = Scratch::as_root()?;
    let src = t.path("src");
    build_sparse_tree(&src);
    Some((t, src))
}

#[test]
fn gnu_tar_sparse_formats_apply_as_gnu_tar_extracts_them() {
    let Some((t, src)) = sparse_source() else {
        return;
    };
    let want = files(&src);
    for (name, args) in FORMATS {
        let tarfile = t.path(&format!("{name}.tar"));
        let tar = gnu_tar(&src, &tarfile, args);
        // What GNU tar itself makes of it.
        let by_gnu = t.dir(&format!("{name}.gnu"));
        run(Command::new("tar")
            .arg("-C")
            .arg(&by_gnu)
            .arg("-xf")
            .arg(&tarfile));
        let dst = t.dir(name);
        let report = apply(&tar[..], &dst, &ApplyOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(report.tar_size, tar.len() as u64);
        let got = files(&dst);
        let names = |v: &[(String, u64, strata_archive::Digest, u64)]| {
            v.iter()
                .map(|f| (f.0.clone(), f.1, f.2.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&got), names(&want), "{name}: against the source");
        assert_eq!(
            names(&got),
            names(&files(&by_gnu)),
            "{name}: against GNU tar"
        );
        for (rel, len, _, allocated) in &got {
            if rel != "dense" {
                assert!(
                    *allocated < 512 << 10,
                    "{name}: {rel} of {len} bytes has {allocated} allocated"
                );
            }
        }
    }
}

#[test]
fn gnu_tar_sparse_formats_reassemble_byte_for_byte() {
    let Some((t, src)) = sparse_source() else {
        return;
    };
    for (name, args) in FORMATS {
        let tar = gnu_tar(&src, &t.path(&format!("{name}.tar")), args);
        let root = t.dir(name);
        let (record, report) =
            apply_recording(&tar[..], &root, &ApplyOptions::default(), Vec::new())
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let mut out = Vec::new();
        let digest = reassemble(&record[..], &root, &mut out)
            .unwrap_or_else(|e| panic!("{name}: reassemble: {e:#}"));
        assert!(out == tar, "{name}: the reassembled tar differs");
        assert_eq!(digest, report.diff_id);
        // The chunks are referenced: their 140 KB are not in the record.
        assert!(
            record.len() < 40_000,
            "{name}: a record of {} bytes",
            record.len()
        );
    }
}

// ---------------------------------------------------------------------------
// Hand-built members.

/// A PAX 1.0 sparse member: records, then a regular file header whose
/// content is the map (padded to a block) and the chunks.
fn pax_1_0(name: &str, real: u64, map: &str, data: &[u8]) -> Vec<u8> {
    let mut content = map.as_bytes().to_vec();
    content.resize(content.len().div_ceil(512) * 512, 0);
    content.extend_from_slice(data);
    let real = real.to_string();
    let tar = Tar::new()
        .pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", name.as_bytes()),
            ("GNU.sparse.realsize", real.as_bytes()),
        ])
        .file(format!("GNUSparseFile.0/{name}"), &content)
        .finish();
    // Without the end-of-archive blocks: members are put together.
    tar[..tar.len() - 1024].to_vec()
}

/// PAX 0.0 (`offset`/`numbytes` pairs) or 0.1 (`map`) records, then the
/// chunks as the content of a regular file.
fn pax_0_x(name: &str, real: u64, map: &[(u64, u64)], v1: bool, data: &[u8]) -> Vec<u8> {
    let real = real.to_string();
    let n = map.len().to_string();
    let mut records: Vec<(String, Vec<u8>)> = vec![
        ("GNU.sparse.size".into(), real.into_bytes()),
        ("GNU.sparse.numblocks".into(), n.into_bytes()),
    ];
    if v1 {
        let list: Vec<String> = map
            .iter()
            .flat_map(|(o, l)| [o.to_string(), l.to_string()])
            .collect();
        records.push(("GNU.sparse.name".into(), name.as_bytes().to_vec()));
        records.push(("GNU.sparse.map".into(), list.join(",").into_bytes()));
    } else {
        for (o, l) in map {
            records.push(("GNU.sparse.offset".into(), o.to_string().into_bytes()));
            records.push(("GNU.sparse.numbytes".into(), l.to_string().into_bytes()));
        }
    }
    let refs: Vec<(&str, &[u8])> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let header_name = if v1 {
        format!("GNUSparseFile.0/{name}")
    } else {
        name.to_string()
    };
    let tar = Tar::new().pax(&refs).file(header_name, data).finish();
    tar[..tar.len() - 1024].to_vec()
}

fn end(mut members: Vec<u8>) -> Vec<u8> {
    members.extend_from_slice(&[0u8; 1024]);
    members
}

/// A tiny member declaring a file of 1 TiB applies, records and
/// reassembles in milliseconds: nothing walks the holes.
#[test]
fn a_terabyte_of_holes_costs_nothing() {
    let tail = b"the end";
    // 5 bytes at the start, 7 at the end, holes between.
    let content = [b"start".as_slice(), tail].concat();
    let map = [(0, 5), (TIB - 7, 7)];
    let members = [
        (
            "old GNU",
            gnu_sparse_member("huge", TIB, &map, None, &content),
        ),
        (
            "PAX 1.0",
            pax_1_0("huge", TIB, &format!("2\n0\n5\n{}\n7\n", TIB - 7), &content),
        ),
        ("PAX 0.1", pax_0_x("huge", TIB, &map, true, &content)),
    ];
    for (what, member) in members {
        let tar = end(member);
        let t = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let (record, _) = apply_recording(&tar[..], t.path(), &ApplyOptions::default(), Vec::new())
            .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        let mut out = Vec::new();
        reassemble(&record[..], t.path(), &mut out).unwrap();
        let took = started.elapsed();
        assert!(out == tar, "{what}: the reassembled tar differs");
        assert!(
            took < Duration::from_secs(2),
            "{what}: {took:?} for a tar of {} bytes",
            tar.len()
        );
        let f = t.path().join("huge");
        let md = fs::metadata(&f).unwrap();
        assert_eq!(md.len(), TIB, "{what}");
        assert!(
            md.blocks() * 512 <= 64 << 10,
            "{what}: {} blocks",
            md.blocks()
        );
        let file = fs::File::open(&f).unwrap();
        let mut buf = [0u8; 7];
        file.read_exact_at(&mut buf, TIB - 7).unwrap();
        assert_eq!(&buf, tail, "{what}");
        file.read_exact_at(&mut buf[..5], 0).unwrap();
        assert_eq!(&buf[..5], b"start", "{what}");
        file.read_exact_at(&mut buf, 1 << 30).unwrap();
        assert_eq!(buf, [0u8; 7], "{what}: a hole reads as zeros");
        // Plain apply, without a record, too.
        let t2 = tempfile::tempdir().unwrap();
        let started = Instant::now();
        apply(&tar[..], t2.path(), &ApplyOptions::default()).unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "{what}");
    }
}

/// Malformed maps are refused naming the entry and what is wrong with
/// its map, before the file is created.
#[test]
fn malformed_sparse_maps_are_refused_before_anything_is_written() {
    let d = |n: usize| random_bytes(3, n);
    let max = u64::MAX;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "old GNU: chunk past the real size",
            gnu_sparse_member("f", 100, &[(90, 20)], None, &d(20)),
            "past the file",
        ),
        (
            "old GNU: overlapping chunks",
            gnu_sparse_member("f", 100, &[(0, 20), (10, 20)], None, &d(40)),
            "overlaps",
        ),
        (
            "old GNU: unsorted chunks",
            gnu_sparse_member("f", 100, &[(50, 10), (0, 10)], None, &d(20)),
            "overlaps or precedes",
        ),
        (
            "old GNU: offset + length overflows",
            gnu_sparse_member("f", max, &[(max - 5, 10)], None, &d(10)),
            "overflows",
        ),
        (
            "old GNU: chunks and stored size disagree",
            gnu_sparse_member("f", 100, &[(0, 10)], Some(20), &d(20)),
            "the chunks hold 10 bytes",
        ),
        (
            "old GNU: overlap in an extension header",
            gnu_sparse_member(
                "f",
                1000,
                &[(0, 1), (10, 1), (20, 1), (30, 1), (40, 1), (35, 1)],
                None,
                &d(6),
            ),
            "overlaps",
        ),
        (
            "PAX 1.0: chunk past the real size",
            pax_1_0("f", 100, "1\n90\n20\n", &d(20)),
            "past the file",
        ),
        (
            "PAX 1.0: overlapping chunks",
            pax_1_0("f", 100, "2\n0\n20\n10\n20\n", &d(40)),
            "overlaps",
        ),
        (
            "PAX 1.0: not a number",
            pax_1_0("f", 100, "1\n0x10\n20\n", &d(20)),
            "not a number",
        ),
        (
            "PAX 1.0: a map longer than the data",
            pax_1_0("f", 100, &format!("10000\n{}", "0\n".repeat(253)), b""),
            "runs past",
        ),
        (
            "PAX 1.0: an unterminated map",
            pax_1_0("f", 100, "1000000\n0\n", b""),
            "too long",
        ),
        (
            "PAX 1.0: more chunks than allowed",
            pax_1_0("f", 100, "99999999999\n", b""),
            "more than",
        ),
        (
            "PAX 1.0: overflow",
            pax_1_0("f", max, &format!("1\n{}\n10\n", max - 5), &d(10)),
            "overflows",
        ),
        (
            "PAX 0.1: unsorted chunks",
            pax_0_x("f", 100, &[(50, 10), (0, 10)], true, &d(20)),
            "overlaps or precedes",
        ),
        (
            "PAX 0.0: chunk past the real size",
            pax_0_x("f", 100, &[(95, 10)], false, &d(10)),
            "past the file",
        ),
    ];
    for (what, member, reason) in cases {
        let tar = [
            Tar::new().dir("kept/").finish()[..512].to_vec(),
            end(member),
        ]
        .concat();
        let t = tempfile::tempdir().unwrap();
        let e = apply(&tar[..], t.path(), &ApplyOptions::default()).expect_err(what);
        let msg = format!("{e:#}");
        assert_eq!(e.kind(), ErrorKind::InvalidLayer, "{what}: {msg}");
        assert!(msg.contains("sparse map"), "{what}: {msg}");
        assert!(msg.contains(reason), "{what}: {msg}");
        assert!(msg.contains("layer entry \"f\""), "{what}: {msg}");
        let left: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["kept"], "{what}: the file was created");
    }
}

/// A sparse member with a chunk cut short by the end of the stream is a
/// truncated layer, not a file with a hole.
#[test]
fn truncated_sparse_content_is_refused() {
    let member = gnu_sparse_member(
        "f",
        1 << 20,
        &[(0, 1000), (5000, 1000)],
        None,
        &random_bytes(4, 2000),
    );
    let cut = &member[..512 + 1024];
    let t = tempfile::tempdir().unwrap();
    let e = apply(cut, t.path(), &ApplyOptions::default()).expect_err("truncated");
    assert_eq!(e.kind(), ErrorKind::InvalidLayer, "{e:#}");
}
