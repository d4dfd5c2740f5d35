//! Tar-split records: a layer applied with a record reassembles into the
//! very tar it came from, byte for byte (same diffID), whatever wrote the
//! tar and whatever the target; hostile or damaged records fail without
//! reading outside the root.

mod common;
mod support;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::{Sandbox, Tar};
use strata_archive::{
    apply_recording, reassemble, sha256_reader, ApplyOptions, ApplyReport, Digest, ErrorKind,
    OverlayXattrs, Target,
};
use support::{gnu_tar, random_bytes, require_root, run, Scratch};
use tar::EntryType;

const TARGETS: [Target; 2] = [Target::Plain, Target::Overlay(OverlayXattrs::Trusted)];

fn sha256(data: &[u8]) -> Digest {
    sha256_reader(data).unwrap().0
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn opts(target: Target) -> ApplyOptions {
    ApplyOptions {
        target,
        ..ApplyOptions::default()
    }
}

/// Applies `input` to `root` with a record; returns the record.
fn apply_rec(input: &[u8], root: &Path, target: Target) -> (Vec<u8>, ApplyReport) {
    apply_recording(input, root, &opts(target), Vec::new())
        .unwrap_or_else(|e| panic!("apply_recording: {e:#}"))
}

/// Asserts `got` is `want`, naming the first differing byte.
fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: reassembled {} bytes, the tar has {}; first difference at byte {at} (block {}, offset {})",
        got.len(),
        want.len(),
        at / 512,
        at % 512
    );
}

/// For every target: apply `input` (the tar `tar`, maybe compressed) with
/// a record, reassemble, and compare bytes and digests. Returns the
/// decompressed records.
fn check_input(tar: &[u8], input: &[u8], what: &str) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    for target in TARGETS {
        let what = format!("{what} ({target:?})");
        let t = Scratch::new();
        let root = t.dir("root");
        let (record, report) = apply_rec(input, &root, target);
        assert_eq!(report.diff_id, sha256(tar), "{what}: diffID");
        assert_eq!(report.tar_size, tar.len() as u64, "{what}: tar size");
        let mut out = Vec::new();
        let digest = reassemble(&record[..], &root, &mut out)
            .unwrap_or_else(|e| panic!("{what}: reassemble: {e:#}"));
        assert_bytes(&out, tar, &what);
        assert_eq!(digest, report.diff_id, "{what}: digest");
        records.push(gunzip(&record));
    }
    records
}

fn check(tar: &[u8], what: &str) -> Vec<Vec<u8>> {
    check_input(tar, tar, what)
}

/// A tree every tar format can hold: no long names, no special files.
fn build_plain_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/conf.d")).unwrap();
    fs::write(root.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("etc/conf.d/empty"), b"").unwrap();
    fs::hard_link(root.join("etc/hosts"), root.join("etc/hosts.link")).unwrap();
    std::os::unix::fs::symlink("hosts", root.join("etc/hosts.sym")).unwrap();
    fs::write(root.join("big"), random_bytes(7, 3 << 20)).unwrap();
    fs::write(root.join(support::os(b"caf\xe9-\xff")), b"latin-1").unwrap();
    fs::write(root.join("odd-size"), random_bytes(8, 1001)).unwrap();
}

#[test]
fn gnu_tar_formats_reassemble_byte_for_byte() {
    let Some(t) = Scratch::as_root() else {
        return;
    };
    let full = t.fixture("full");
    let plain = t.dir("plain");
    build_plain_tree(&plain);
    let cases: [(&str, &Path, &[&str]); 5] = [
        ("gnu", &full, &["--format=gnu"]),
        (
            "posix",
            &full,
            &["--format=posix", "--xattrs", "--xattrs-include=*"],
        ),
        ("ustar", &plain, &["--format=ustar"]),
        ("v7", &plain, &["--format=v7"]),
        ("oldgnu", &plain, &["--format=oldgnu"]),
    ];
    for (name, src, args) in cases {
        let tar = gnu_tar(src, &t.path(&format!("{name}.tar")), args);
        let records = check(&tar, name);
        // File content is referenced, not stored: the 3 MiB file (and the
        // fixture's megabyte sparse file) are not in the record.
        for r in records {
            assert!(
                r.len() < tar.len() - (1 << 20),
                "{name}: a record of {} bytes for a tar of {}",
                r.len(),
                tar.len()
            );
        }
    }
}

#[test]
fn gnu_sparse_entries_reassemble() {
    let Some(t) = Scratch::as_root() else {
        return;
    };
    let src = t.dir("src");
    use std::os::unix::fs::FileExt;
    // Three chunks fit the main header; forty need extension headers.
    for (name, chunks) in [("few", 3u64), ("many", 40)] {
        let f = fs::File::create(src.join(name)).unwrap();
        for i in 0..chunks {
            f.write_all_at(&random_bytes(i, 5000), i * (1 << 20))
                .unwrap();
        }
        f.set_len(chunks << 20).unwrap();
    }
    fs::write(src.join("dense"), random_bytes(9, 10_000)).unwrap();
    for fmt in ["gnu", "posix"] {
        let tar = gnu_tar(
            &src,
            &t.path(&format!("{fmt}.tar")),
            &["--sparse", &format!("--format={fmt}")],
        );
        let records = check(&tar, &format!("sparse {fmt}"));
        if fmt == "gnu" {
            for r in records {
                // Referenced chunk by chunk: about 215 KB of content is not
                // in the record.
                assert!(r.len() < 100_000, "a record of {} bytes", r.len());
                assert!(r.windows(5).any(|w| w == b"\x04many"));
            }
        }
    }
}

/// A layer written with the tar crate: every entry type, whiteouts with
/// and without content, an opaque directory, PAX and GNU long-name
/// members, a global header, a name through a symlink.
fn every_entry_type() -> Vec<u8> {
    entry_types_with_big(3 << 20)
}

fn entry_types_with_big(big: usize) -> Vec<u8> {
    let long = "l".repeat(150);
    let mut gnu_long = long.clone().into_bytes();
    gnu_long.push(0);
    Tar::new()
        .pax_global("pax_global_header", &[("comment", b"made by a test")])
        .dir("d/")
        .file("d/f", "content of f\n")
        .file("empty", "")
        .file("big", random_bytes(1, big))
        .hardlink("d/link", "d/f")
        .symlink("s", "d/f")
        .device(EntryType::Fifo, "fifo", 0, 0)
        .device(EntryType::Char, "null", 1, 3)
        .file(".wh.gone", "")
        .file("d/.wh.x", "a whiteout with content")
        .dir("o/")
        .file("o/.wh..wh..opq", "")
        .file("o/kept", "kept")
        .dir(b"caf\xe9/".as_slice())
        .file(b"caf\xe9/\xff\xfe".as_slice(), "not utf-8")
        .pax(&[
            ("path", format!("d/{long}").as_bytes()),
            ("SCHILY.xattr.user.k", b"v\0binary"),
        ])
        .file("d/short", "pax named")
        .raw(
            &common::header(
                EntryType::GNULongName,
                b"././@LongLink",
                b"",
                0o644,
                gnu_long.len() as u64,
            ),
            &gnu_long,
        )
        .file("truncated-name", "gnu long name")
        .symlink("via", "/d")
        .file("via/through", "written to d/through")
        .symlink("rel", "./o/../d/")
        .file("rel/again", "written to d/again")
        .finish()
}

#[test]
fn every_entry_type_reassembles() {
    if !require_root() {
        return;
    }
    let tar = every_entry_type();
    for r in check(&tar, "entry types") {
        // Written through symlinks: referenced where the content is.
        assert!(r.windows(10).any(|w| w == b"\x09d/through"));
        assert!(r.windows(8).any(|w| w == b"\x07d/again"));
        // The whiteout's content is kept verbatim: nothing holds it.
        assert!(r.windows(23).any(|w| w == b"a whiteout with content"));
        assert!(r.len() < 1 << 20, "a record of {} bytes", r.len());
    }
}

#[test]
fn compressed_layers_reassemble_to_the_uncompressed_tar() {
    if !require_root() {
        return;
    }
    let tar = every_entry_type();
    check_input(&tar, &common::gzip(&tar), "gzip");
    check_input(&tar, &common::zstd(&tar), "zstd");
}

/// Bytes no reader looks at: junk padding after content, junk in unused
/// header bytes, extra zero blocks and garbage after the end.
#[test]
fn padding_and_trailing_bytes_are_kept() {
    if !require_root() {
        return;
    }
    let mut h = common::header(EntryType::Regular, b"junk-header", b"", 0o644, 3);
    h.as_mut_bytes()[505..512].copy_from_slice(b"pad\x01\x02\x03\x04");
    h.set_cksum();
    let base = Tar::new()
        .file("a", "12345")
        .raw(&h, b"xyz")
        .dir("d/")
        .finish();
    let mut padded = base.clone();
    // "a": header at 0, content at 512..517, padding up to 1024.
    padded[517..1024].fill(0xaa);
    let end = base.len() - 1024;
    let mut garbage = padded.clone();
    garbage.extend_from_slice(&[0u8; 1536]);
    garbage.extend_from_slice(b"garbage after the end, not a block");
    let cases: [(&str, Vec<u8>); 5] = [
        ("junk padding", padded.clone()),
        ("garbage after the end", garbage),
        ("no end blocks", padded[..end].to_vec()),
        ("one end block", padded[..end + 512].to_vec()),
        ("junk in the end blocks", {
            let mut v = padded.clone();
            let n = v.len();
            v[n - 1] = 7;
            v
        }),
    ];
    for (what, tar) in cases {
        check(&tar, what);
        check_input(&tar, &common::gzip(&tar), what);
    }
}

/// The parser sees the stream in whatever pieces the decompressor hands
/// over: tiny reads upstream change nothing.
#[test]
fn a_trickling_input_records_the_same() {
    if !require_root() {
        return;
    }
    let tar = every_entry_type();
    let t = Scratch::new();
    for (i, n) in [1usize, 7, 513].into_iter().enumerate() {
        let root = t.dir(&format!("r{i}"));
        let input = common::Trickle { inner: &tar[..], n };
        let (record, _) =
            apply_recording(input, &root, &ApplyOptions::default(), Vec::new()).unwrap();
        let mut out = Vec::new();
        reassemble(&record[..], &root, &mut out).unwrap();
        assert_bytes(&out, &tar, &format!("trickle {n}"));
    }
}

#[test]
fn apply_recording_applies_what_apply_applies() {
    if !require_root() {
        return;
    }
    let tar = every_entry_type();
    let t = tempfile::tempdir().unwrap();
    for target in TARGETS {
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for d in [&a, &b] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir(d).unwrap();
        }
        let plain = strata_archive::apply(&tar[..], &a, &opts(target)).unwrap();
        let (_, recorded) = apply_rec(&tar, &b, target);
        assert_eq!(plain.diff_id, recorded.diff_id);
        assert_eq!(plain.entries, recorded.entries);
        assert_eq!(plain.size, recorded.size);
        // Overlay whiteouts get the time they are made.
        let times = match target {
            Target::Plain => &support::ALL,
            _ => &support::NO_TIMES,
        };
        support::assert_same(
            &support::manifest(&a, times),
            &support::manifest(&b, times),
            "apply vs apply_recording",
        );
    }
}

/// Applies the entry-type layer (a small one); returns the scratch dir, root
/// and record.
fn applied() -> (Scratch, std::path::PathBuf, Vec<u8>) {
    let t = Scratch::new();
    let root = t.dir("root");
    let (record, _) = apply_rec(&entry_types_with_big(70_000), &root, Target::Plain);
    (t, root, record)
}

fn reassemble_err(record: &[u8], root: &Path) -> strata_archive::Error {
    match reassemble(record, root, Vec::new()) {
        Ok(d) => panic!("reassembled {d} from a bad record"),
        Err(e) => e,
    }
}

#[test]
fn a_missing_or_changed_file_is_named() {
    if !require_root() {
        return;
    }
    type Change = fn(&Path);
    let cases: [(&str, Change); 4] = [
        ("missing", |r| fs::remove_file(r.join("d/f")).unwrap()),
        ("longer", |r| {
            fs::OpenOptions::new()
                .append(true)
                .open(r.join("d/f"))
                .unwrap()
                .write_all(b"more")
                .unwrap()
        }),
        ("same size, other bytes", |r| {
            fs::write(r.join("d/f"), b"CONTENT OF F\n").unwrap()
        }),
        ("now a directory", |r| {
            fs::remove_file(r.join("d/f")).unwrap();
            fs::create_dir(r.join("d/f")).unwrap();
        }),
    ];
    for (what, change) in cases {
        let (_t, root, record) = applied();
        change(&root);
        let e = reassemble_err(&record, &root);
        let msg = format!("{e}");
        assert!(msg.contains("\"d/f\""), "{what}: {msg}");
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {msg}");
    }
}

#[test]
fn a_file_rewritten_later_in_the_layer_fails_cleanly() {
    if !require_root() {
        return;
    }
    let tar = Tar::new()
        .file("dup", "first")
        .file("dup", "SECOND")
        .finish();
    let t = tempfile::tempdir().unwrap();
    let (record, _) = apply_rec(&tar, t.path(), Target::Plain);
    let msg = format!("{}", reassemble_err(&record, t.path()));
    assert!(msg.contains("\"dup\""), "{msg}");
}

#[test]
fn a_truncated_record_fails_cleanly() {
    if !require_root() {
        return;
    }
    let (_t, root, record) = applied();
    // Cut inside the gzip stream.
    for cut in [
        0,
        1,
        10,
        record.len() / 2,
        record.len() - 9,
        record.len() - 1,
    ] {
        reassemble_err(&record[..cut], &root);
    }
    // A whole gzip stream whose content stops early, at every segment
    // boundary and inside segments.
    let plain = gunzip(&record);
    for cut in (0..plain.len()).step_by(31).chain([plain.len() - 1]) {
        let e = reassemble_err(&common::gzip(&plain[..cut]), &root);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "cut at {cut}: {e}");
    }
    // Data after the end.
    let mut longer = plain.clone();
    longer.push(b'R');
    reassemble_err(&common::gzip(&longer), &root);
}

/// A record made by hand: the magic, then `segments`.
fn record_of(segments: &[u8]) -> Vec<u8> {
    let mut v = b"strata-tar-split\x01".to_vec();
    v.extend_from_slice(segments);
    common::gzip(&v)
}

fn file_ref(path: &[u8], content: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(content);
    assert!(path.len() < 128 && content.len() < 128);
    let mut v = vec![b'F', path.len() as u8];
    v.extend_from_slice(path);
    v.push(content.len() as u8);
    v.extend_from_slice(&crc.sum().to_le_bytes());
    v
}

#[test]
fn reassemble_refuses_references_out_of_the_root() {
    let s = Sandbox::new();
    let victim = s.abs_victim();
    std::os::unix::fs::symlink(&s.victim, s.root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../victim", s.root.join("rel")).unwrap();
    std::os::unix::fs::symlink("../victim/hello", s.root.join("hello")).unwrap();
    fs::create_dir(s.root.join("sub")).unwrap();
    std::os::unix::fs::symlink("../../victim", s.root.join("sub/up")).unwrap();
    run(Command::new("mkfifo").arg(s.root.join("fifo")));
    let mut hello_abs = victim.clone();
    hello_abs.extend_from_slice(b"/hello");
    let before = s.outside();
    let paths: [&[u8]; 9] = [
        b"../victim/hello",
        b"sub/../../victim/hello",
        &hello_abs,
        b"abs/hello",
        b"rel/hello",
        b"sub/up/hello",
        b"hello",
        b"./hello",
        b"fifo",
    ];
    for path in paths {
        let record = record_of(&file_ref(path, &s.hello));
        let mut out = Vec::new();
        let e =
            reassemble(&record[..], &s.root, &mut out).expect_err(&String::from_utf8_lossy(path));
        assert!(
            !out.windows(s.hello.len()).any(|w| w == s.hello),
            "{:?}: victim content in the output",
            String::from_utf8_lossy(path)
        );
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        s.assert_outside_unchanged(&before, &String::from_utf8_lossy(path));
    }
}

#[test]
fn reassemble_refuses_garbage() {
    let t = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("not gzip", b"strata-tar-split\x01E\x00\x00".to_vec()),
        ("wrong magic", common::gzip(b"tar-split\x01")),
        ("unknown segment", record_of(b"Z")),
        (
            "oversized varint",
            record_of(&[
                b'R', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ]),
        ),
    ];
    for (what, record) in cases {
        let e = reassemble(&record[..], t.path(), Vec::new()).expect_err(what);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
    }
    // A raw-only record whose digest does not match what it yields.
    let mut seg = b"R\x03abcE\x03".to_vec();
    let wrong = format!("sha256:{}", "0".repeat(64));
    seg.push(wrong.len() as u8);
    seg.extend_from_slice(wrong.as_bytes());
    let e = reassemble(&record_of(&seg)[..], t.path(), Vec::new()).unwrap_err();
    assert!(format!("{e}").contains("digest"), "{e}");
}
