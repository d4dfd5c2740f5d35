//! apply(diff(tree)) reproduces the tree, for every file type and all the
//! metadata a layer carries; GNU tar agrees with both directions; the
//! output is deterministic.

mod support;

use std::fs;
use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use strata_archive::{apply, diff_trees, ApplyOptions, Compression};
use support::*;

fn diff_bytes(old: Option<&Path>, new: &Path) -> Vec<u8> {
    let (out, report) = diff_trees(old, new, Vec::new()).unwrap();
    assert_eq!(report.tar_size as usize, out.len());
    out
}

#[test]
fn every_file_type_round_trips_with_its_metadata() {
    let Some(t) = Scratch::as_root() else { return };
    let src = t.fixture("src");
    let tar = diff_bytes(None, &src);
    let dst = t.dir("dst");
    let report = apply(Cursor::new(&tar), &dst, &ApplyOptions::default()).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.compression, Compression::None);
    assert_eq!(report.tar_size as usize, tar.len());
    assert_same_trees(&src, &dst, &ALL, "apply(diff(tree))");
}

/// An xattr whose value holds newline bytes (a binary
/// `security.capability` can: 0x0a is CAP_DAC_OVERRIDE | CAP_FOWNER)
/// goes through diff and apply whole, and GNU tar reads the same layer.
#[test]
fn an_xattr_value_with_a_newline_round_trips() {
    let Some(t) = Scratch::as_root() else { return };
    let src = t.dir("src");
    fs::write(src.join("f"), "x").unwrap();
    let value: &[u8] = b"line one\nline=two\n\x00\x0a";
    run(Command::new("setfattr")
        .args(["-n", "user.bin", "-v"])
        .arg(format!(
            "0x{}",
            value.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ))
        .arg(src.join("f")));
    let tar = diff_bytes(None, &src);
    let dst = t.dir("dst");
    apply(Cursor::new(&tar), &dst, &ApplyOptions::default()).unwrap();
    assert_same_trees(
        &src,
        &dst,
        &ALL,
        "apply(diff(tree)) with a newline in an xattr",
    );
    let tarfile = t.path("layer.tar");
    fs::write(&tarfile, &tar).unwrap();
    let gnu = t.dir("gnu");
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(&tarfile)
        .arg("-C")
        .arg(&gnu));
    assert_same_trees(&src, &gnu, &ALL, "GNU tar of the same layer");
}

#[test]
fn sparse_entries_stay_sparse() {
    let Some(t) = Scratch::as_root() else { return };
    let src = t.dir("src");
    let f = fs::File::create(src.join("holes")).unwrap();
    f.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"x", 32 << 20).unwrap();
    // GNU tar writes the sparse map; apply must keep the holes.
    let tarfile = t.path("sparse.tar");
    run(Command::new("tar")
        .args(["--sparse", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&tarfile)
        .arg("."));
    let dst = t.dir("dst");
    apply(
        fs::File::open(&tarfile).unwrap(),
        &dst,
        &ApplyOptions::default(),
    )
    .unwrap();
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(dst.join("holes")).unwrap();
    assert_eq!(md.len(), 64 << 20);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "{} blocks allocated",
        md.blocks()
    );
    assert_same_trees(&src, &dst, &NO_TIMES, "sparse");
}

#[test]
fn gnu_tar_output_applies_to_the_same_tree() {
    let Some(t) = Scratch::as_root() else { return };
    let src = t.fixture("src");
    for (fmt, extra) in [("posix", "--xattrs"), ("gnu", "--xattrs")] {
        let tarfile = t.path(&format!("{fmt}.tar"));
        run(Command::new("tar")
            .args([
                &format!("--format={fmt}"),
                extra,
                "--xattrs-include=*",
                "--numeric-owner",
                "-C",
            ])
            .arg(&src)
            .arg("-cf")
            .arg(&tarfile)
            .arg("."));
        for comp in ["none", "gzip", "zstd"] {
            let input = match comp {
                "none" => fs::read(&tarfile).unwrap(),
                "gzip" => {
                    Command::new("gzip")
                        .arg("-c")
                        .arg(&tarfile)
                        .output()
                        .unwrap()
                        .stdout
                }
                _ => {
                    Command::new("zstd")
                        .args(["-q", "-c"])
                        .arg(&tarfile)
                        .output()
                        .unwrap()
                        .stdout
                }
            };
            let dst = t.dir(&format!("dst-{fmt}-{comp}"));
            let report = apply(Cursor::new(input), &dst, &ApplyOptions::default()).unwrap();
            assert_eq!(report.compression.as_str(), comp);
            let want = strata_archive::sha256_reader(fs::File::open(&tarfile).unwrap())
                .unwrap()
                .0;
            assert_eq!(
                report.diff_id, want,
                "the diffID is the uncompressed tar's sha256"
            );
            // GNU tar's `.` entry carries the root's attributes too.
            assert_same_trees(&src, &dst, &ALL, &format!("{fmt}/{comp}"));
        }
    }
}

#[test]
fn gnu_tar_extracts_our_output_to_the_same_tree() {
    let Some(t) = Scratch::as_root() else { return };
    let src = t.fixture("src");
    let tarfile = t.path("ours.tar");
    fs::write(&tarfile, diff_bytes(None, &src)).unwrap();
    let dst = t.dir("dst");
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&tarfile)
        .arg("-C")
        .arg(&dst));
    // GNU tar does not restore the mtime of directories it extracts
    // implicitly; files and links carry their own.
    assert_same_trees(&src, &dst, &NO_TIMES, "tar -x of our diff");
}

#[test]
fn diff_is_deterministic() {
    let Some(t) = Scratch::as_root() else { return };
    let src = t.fixture("src");
    let a = diff_bytes(None, &src);
    let b = diff_bytes(None, &src);
    assert_eq!(a, b);
    // An identical copy made by applying gives the same bytes again.
    let dst = t.dir("dst");
    apply(Cursor::new(&a), &dst, &ApplyOptions::default()).unwrap();
    assert_eq!(diff_bytes(None, &dst), a);
}

#[test]
fn directory_mtime_is_set_after_its_children() {
    let Some(t) = Scratch::as_root() else { return };
    let src = t.path("src");
    fs::create_dir_all(src.join("d/e")).unwrap();
    fs::write(src.join("d/e/f"), b"x").unwrap();
    set_mtime(&src.join("d/e/f"), 1_000_000_000);
    set_mtime(&src.join("d/e"), 1_100_000_000);
    set_mtime(&src.join("d"), 1_200_000_000);
    let tar = diff_bytes(None, &src);
    let dst = t.dir("dst");
    apply(Cursor::new(&tar), &dst, &ApplyOptions::default()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(dst.join("d")).unwrap().mtime(), 1_200_000_000);
    assert_eq!(
        fs::metadata(dst.join("d/e")).unwrap().mtime(),
        1_100_000_000
    );
}

#[test]
fn empty_tree_gives_an_empty_layer() {
    let t = tempfile::tempdir().unwrap();
    let tar = diff_bytes(None, t.path());
    assert_eq!(tar.len(), 1024, "two zero blocks");
    assert!(tar.iter().all(|b| *b == 0));
}
