//! Images written from tars, checked by `fsck.erofs` and mounted by the
//! kernel: the mount must show exactly what GNU tar extracts from the
//! same tar.

mod common;

use std::fs;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::process::Command;

use common::*;
use strata_archive::OverlayXattrs;
use strata_erofs::Options;
use strata_test_support::{seeded_bytes, skip, Unmount};

#[test]
fn edge_sizes_special_files_owners_times_and_xattrs() {
    if !require_mount_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tar = build_tar(&[
        Ent::dir("d")
            .mode(0o750)
            .owner(1000, 1001)
            .nsec(123_456_789),
        Ent::file("d/empty", ""),
        Ent::file("d/4096", seeded_bytes(1, 4096)),
        Ent::file("d/4097", seeded_bytes(2, 4097)),
        Ent::file("d/4095", seeded_bytes(3, 4095)),
        Ent::file("d/small", "hello\n").mode(0o4755).owner(7, 8),
        Ent::file("d/tailonly-xattrs", seeded_bytes(4, 3000))
            .xattr("user.note", b"value")
            .xattr("trusted.t", b"secret")
            .xattr(
                "security.capability",
                &[
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
        // A tail that cannot sit beside its inode: big xattrs.
        Ent::file("d/big-xattr", seeded_bytes(5, 8192 + 4000)).xattr("user.big", &[7u8; 3000]),
        Ent::symlink("d/link", "../big"),
        Ent::symlink("d/abs", "/etc/passwd"),
        Ent::link("d/hard", "d/small"),
        // GNU tar sets a directory's time once it leaves it: entries stay
        // grouped by directory, as real layers have them.
        Ent::file("big", seeded_bytes(6, 10 << 20)).nsec(999_999_999),
        Ent::link("hard2", "d/small"),
        Ent::new("fifo", Kind::Fifo).mode(0o600),
        Ent::new("null", Kind::Char(1, 3)).mode(0o666),
        Ent::new("sda", Kind::Block(8, 0)).mode(0o660).owner(0, 6),
        Ent::new("bigdev", Kind::Char(300, 70000)),
        Ent::dir("sticky").mode(0o1777),
    ]);
    assert_same_as_gnu_tar(&tar, tmp.path());
}

#[test]
fn a_directory_of_5000_entries_long_names_and_deep_paths() {
    if !require_mount_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut ents = vec![Ent::dir("many")];
    for i in 0..5000 {
        ents.push(Ent::file(
            format!("many/file-{i:05}-{}", "x".repeat(i % 40)),
            format!("{i}"),
        ));
    }
    // Names sorting before and after `.` and `..`, and one not UTF-8.
    ents.push(Ent::file("many/!bang", "b"));
    ents.push(Ent::file("many/-dash", "d"));
    ents.push(Ent::file(b"many/caf\xe9-latin1", "not utf-8"));
    let long = "n".repeat(255);
    ents.push(Ent::dir(&long));
    ents.push(Ent::file(format!("{long}/{}", "m".repeat(255)), "long"));
    ents.push(Ent::symlink(format!("{long}/sym"), "t".repeat(3000)));
    let mut deep = String::new();
    for i in 0..60 {
        deep += &format!("level{i}/");
        ents.push(Ent::dir(&deep));
    }
    ents.push(Ent::file(format!("{deep}leaf"), "deep"));
    let tar = build_tar(&ents);
    assert_same_as_gnu_tar(&tar, tmp.path());
}

/// Replacing is checked on the mount, not against GNU tar: GNU tar
/// refuses to put a file over a directory it extracted, which applying a
/// layer does (the OCI rule: a later entry replaces an earlier one).
#[test]
fn later_entries_replace_earlier_ones() {
    if !require_mount_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tar = build_tar(&[
        Ent::dir("a"),
        Ent::file("a/f", "first"),
        Ent::file("a/f", "second, longer"),
        Ent::dir("a/sub"),
        Ent::file("a/sub/x", "x"),
        // A file over a directory replaces it, children and all.
        Ent::file("a/sub", "now a file"),
        Ent::file("a/d", "a file first"),
        Ent::dir("a/d").mode(0o700),
        Ent::file("a/d/in", "in"),
        // A directory over a directory merges: new attributes, old
        // children.
        Ent::dir("a").mode(0o711).xattr("user.k", b"v"),
        Ent::symlink("a/s", "f"),
        Ent::file("a/s", "file over symlink"),
        Ent::file("a/h", "linked"),
        Ent::link("a/h2", "a/h"),
        Ent::file("a/h", "replaced: the link keeps the old content"),
    ]);
    let (img, _) = image(tmp.path(), &tar, &Options::default());
    let mnt = mount_image(&img, &tmp.path().join("mnt"));
    let m = &mnt.0;
    assert_eq!(fs::read(m.join("a/f")).unwrap(), b"second, longer");
    assert_eq!(fs::read(m.join("a/sub")).unwrap(), b"now a file");
    assert_eq!(fs::read(m.join("a/d/in")).unwrap(), b"in");
    assert_eq!(fs::read(m.join("a/s")).unwrap(), b"file over symlink");
    assert!(fs::symlink_metadata(m.join("a/s")).unwrap().is_file());
    let a = fs::symlink_metadata(m.join("a")).unwrap();
    assert_eq!(a.mode() & 0o7777, 0o711);
    assert_eq!(fs::read(m.join("a/h2")).unwrap(), b"linked");
    assert_eq!(fs::symlink_metadata(m.join("a/h2")).unwrap().nlink(), 1);
    assert_eq!(fs::symlink_metadata(m.join("a/h")).unwrap().nlink(), 1);
    let x = xattrs(m);
    assert_eq!(x.get(&b"/a"[..]), Some(&vec!["user.k=0x76".to_string()]));
}

#[test]
fn whiteouts_and_opaque_directories_as_overlay_stores_them() {
    if !require_mount_tools() {
        return;
    }
    for (opts, xattr) in [
        (Options::default(), "trusted.overlay.opaque"),
        (
            Options {
                opaque_xattr: OverlayXattrs::User,
                ..Options::default()
            },
            "user.overlay.opaque",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let tar = build_tar(&[
            Ent::dir("etc"),
            Ent::file("etc/.wh.passwd", ""),
            Ent::dir("opq"),
            Ent::file("opq/.wh..wh..opq", ""),
            Ent::file("opq/kept", "k"),
            // Parents the tar leaves out are made.
            Ent::file("missing/parent/.wh.gone", ""),
            // The layer's own entry is not hidden by its whiteout.
            Ent::file("etc/mine", "m"),
            Ent::file("etc/.wh.mine", ""),
            // A directory replacing a whiteout is opaque.
            Ent::file("etc/.wh.replaced", ""),
            Ent::dir("etc/replaced"),
        ]);
        let (img, _) = image(tmp.path(), &tar, &opts);
        let mnt = mount_image(&img, &tmp.path().join("mnt"));
        let m = &mnt.0;
        for wh in ["etc/passwd", "missing/parent/gone"] {
            let md = fs::symlink_metadata(m.join(wh)).unwrap();
            assert!(md.file_type().is_char_device(), "{wh} is a whiteout");
            assert_eq!(md.rdev(), 0, "{wh}");
        }
        assert!(fs::symlink_metadata(m.join("etc/.wh.passwd")).is_err());
        assert_eq!(fs::read(m.join("etc/mine")).unwrap(), b"m");
        let md = fs::symlink_metadata(m.join("missing/parent")).unwrap();
        assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o755, 0, 0));
        let get = |p: &str| {
            let out = Command::new("getfattr")
                .args(["-h", "--only-values", "-n", xattr])
                .arg(m.join(p))
                .output()
                .unwrap();
            out.status.success().then_some(out.stdout)
        };
        assert_eq!(get("opq"), Some(b"y".to_vec()));
        assert_eq!(get("etc/replaced"), Some(b"y".to_vec()));
        assert_eq!(get("etc"), None);
        assert_eq!(fs::read(m.join("opq/kept")).unwrap(), b"k");
        assert!(fs::symlink_metadata(m.join("opq/.wh..wh..opq")).is_err());
    }
}

#[test]
fn debian_minbase_root_file_system() {
    let Some(path) = std::env::var_os("STRATA_TEST_DEBIAN_TAR") else {
        skip(
            "debian_minbase_root_file_system",
            "STRATA_TEST_DEBIAN_TAR names no Debian root tar",
        );
        return;
    };
    if !require_mount_tools() {
        return;
    }
    let tar = fs::read(path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    assert_same_as_gnu_tar(&tar, tmp.path());
}

/// Two layer images as the lowers of a kernel overlay mount: the upper
/// layer's whiteouts hide, and its opaque directory hides, what the lower
/// layer has, as on overlay2.
#[test]
fn an_overlay_of_two_images_honours_whiteouts_and_opaque_dirs() {
    if !require_mount_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = build_tar(&[
        Ent::dir("etc"),
        Ent::file("etc/passwd", "root:x:0:0"),
        Ent::file("etc/hosts", "127.0.0.1"),
        Ent::dir("opq"),
        Ent::file("opq/old", "old"),
        Ent::dir("gone"),
        Ent::file("gone/f", "f"),
    ]);
    let top = build_tar(&[
        Ent::dir("etc"),
        Ent::file("etc/.wh.passwd", ""),
        Ent::dir("opq"),
        Ent::file("opq/.wh..wh..opq", ""),
        Ent::file("opq/new", "new"),
        Ent::file(".wh.gone", ""),
    ]);
    let mut mounts = Vec::new();
    for (name, tar) in [("base", &base), ("top", &top)] {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let (img, _) = image(&dir, tar, &Options::default());
        mounts.push(mount_image(&img, &dir.join("mnt")));
    }
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lower = format!(
        "lowerdir={}:{}",
        mounts[1].0.display(),
        mounts[0].0.display()
    );
    strata_test_support::run(
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &lower])
            .arg(&merged),
    );
    let overlay = Unmount(merged);
    let m = &overlay.0;
    assert!(fs::symlink_metadata(m.join("etc/passwd")).is_err());
    assert_eq!(fs::read(m.join("etc/hosts")).unwrap(), b"127.0.0.1");
    assert_eq!(strata_test_support::sorted_names(&m.join("opq")), ["new"]);
    assert!(fs::symlink_metadata(m.join("gone")).is_err());
    // Unmounted before the layers below it.
    drop(overlay);
}

/// Over layers below (`Options::lowers`): a parent the layer leaves out
/// takes the attributes it has below (as overlayfs copies it up), and a
/// hard link to a file only below copies that file into the image, as
/// applying to an overlay upper directory does.
#[test]
fn a_layer_over_lowers_copies_up_parents_and_link_targets() {
    if !require_mount_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = build_tar(&[
        Ent::dir("srv").mode(0o710).owner(5, 6).nsec(7),
        Ent::file("srv/data", "below").mode(0o640).owner(5, 6),
    ]);
    let dir = tmp.path().join("base");
    fs::create_dir(&dir).unwrap();
    let (img, _) = image(&dir, &base, &Options::default());
    let lower = mount_image(&img, &dir.join("mnt"));
    let top = build_tar(&[
        Ent::file("srv/new", "new"),
        Ent::link("srv/again", "srv/data"),
    ]);
    let opts = Options {
        lowers: vec![lower.0.clone()],
        ..Options::default()
    };
    let dir = tmp.path().join("top");
    fs::create_dir(&dir).unwrap();
    let (img, report) = image(&dir, &top, &opts);
    assert_eq!(report.size, 3 + 5, "the copied-up file counts");
    let m = mount_image(&img, &dir.join("mnt"));
    let srv = fs::metadata(m.0.join("srv")).unwrap();
    assert_eq!(
        (srv.mode() & 0o7777, srv.uid(), srv.gid(), srv.mtime_nsec()),
        (0o710, 5, 6, 7)
    );
    let data = fs::metadata(m.0.join("srv/data")).unwrap();
    let again = fs::metadata(m.0.join("srv/again")).unwrap();
    assert_eq!(data.ino(), again.ino(), "one file, two names");
    assert_eq!(data.nlink(), 2);
    assert_eq!((data.mode() & 0o7777, data.uid()), (0o640, 5));
    assert_eq!(fs::read(m.0.join("srv/again")).unwrap(), b"below");
    drop(m);
    drop(lower);
}

/// The tar-split record written with an image gives back the tar, byte
/// for byte, from the mounted image, a file reached through a symlinked
/// parent included.
#[test]
fn the_record_rebuilds_the_tar_from_the_mounted_image() {
    if !require_mount_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tar = build_tar(&[
        Ent::dir("usr"),
        Ent::dir("usr/lib"),
        Ent::symlink("lib", "usr/lib"),
        Ent::file("lib/libc.so", seeded_bytes(9, 70_000)),
        Ent::file("usr/lib/tail", "x"),
        Ent::link("hard", "lib/libc.so"),
        Ent::file("empty", ""),
    ]);
    let img = tmp.path().join("img");
    let (report, record) = write_recording(&tar, &img);
    let m = mount_image(&img, &tmp.path().join("mnt"));
    let mut out = Vec::new();
    let digest = strata_archive::reassemble(record.as_slice(), &m.0, &mut out).unwrap();
    assert_eq!(digest, report.diff_id);
    assert!(out == tar, "the rebuilt tar differs from the layer");
    let (id, len) = strata_archive::recorded_tar(record.as_slice()).unwrap();
    assert_eq!((id, len), (report.diff_id, tar.len() as u64));
}

/// The metadata digest covers what the kernel parses, and not the file
/// data: a changed byte of an inode changes it, a changed byte of file
/// content does not.
#[test]
fn the_metadata_digest_covers_the_metadata_only() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = build_tar(&[Ent::file("big", seeded_bytes(3, 3 * 4096))]);
    let (img, report) = image(tmp.path(), &tar, &Options::default());
    assert_eq!(report.data_end, 4 * 4096, "block 0, then three of data");
    let digest = |img: &std::path::Path| {
        let f = fs::File::open(img).unwrap();
        strata_erofs::metadata_digest(&f, report.data_end).unwrap()
    };
    let before = digest(&img);
    let flip = |at: u64| {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 1], at).unwrap();
    };
    flip(4096 + 100);
    assert_eq!(digest(&img), before, "file content is not metadata");
    flip(report.data_end + 10);
    assert_ne!(digest(&img), before);
    flip(report.data_end + 10);
    flip(1024 + 8);
    assert_ne!(digest(&img), before, "the superblock is covered");
    let f = fs::File::open(&img).unwrap();
    assert!(strata_erofs::metadata_digest(&f, 100).is_err());
    assert!(strata_erofs::metadata_digest(&f, report.image_size + 4096).is_err());
}

/// Object mode: file content goes to the objects directory, once per
/// content; the image holds metadata only, and an overlay with the
/// objects as its data-only layer shows the files whole. The same
/// content in two layers is one object.
#[test]
fn object_mode_keeps_content_once_and_an_overlay_shows_it() {
    if !require_mount_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let objects = tmp.path().join("objects");
    fs::create_dir(&objects).unwrap();
    let big = seeded_bytes(11, 100_000);
    let opts = Options {
        objects: Some(objects.clone()),
        ..Options::default()
    };
    let mut imgs = Vec::new();
    for (name, extra, seed) in [("one", "a", 12), ("two", "b", 13)] {
        let tar = build_tar(&[
            Ent::dir("usr"),
            Ent::file("usr/big", big.clone()).mode(0o755).owner(3, 4),
            Ent::file("usr/tiny", "small stays inline"),
            Ent::file("usr/empty", ""),
            Ent::link("usr/again", "usr/big"),
            Ent::file(format!("only-{extra}"), seeded_bytes(seed, 5000)),
        ]);
        let dir = tmp.path().join(name);
        fs::create_dir(&dir).unwrap();
        let (img, report) = image(&dir, &tar, &opts);
        assert_eq!(report.objects.len(), 2, "{:?}", report.objects);
        imgs.push((dir, img));
    }
    let stored: Vec<_> = walk_files(&objects);
    assert_eq!(stored.len(), 3, "big once, each only-file once: {stored:?}");
    let (dir, img) = &imgs[0];
    assert!(
        fs::metadata(img).unwrap().len() < 16 * 4096,
        "the image holds no content"
    );
    let lower = mount_image(img, &dir.join("mnt"));
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let opt = format!(
        "lowerdir={}::{},metacopy=off,redirect_dir=off",
        lower.0.display(),
        objects.display()
    );
    strata_test_support::run(
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opt])
            .arg(&merged),
    );
    let overlay = Unmount(merged);
    let m = &overlay.0;
    assert_eq!(fs::read(m.join("usr/big")).unwrap(), big);
    assert_eq!(fs::read(m.join("usr/again")).unwrap(), big);
    let md = fs::metadata(m.join("usr/big")).unwrap();
    assert_eq!(
        (md.len(), md.mode() & 0o7777, md.uid()),
        (100_000, 0o755, 3)
    );
    assert_eq!(md.ino(), fs::metadata(m.join("usr/again")).unwrap().ino());
    assert_eq!(fs::read(m.join("usr/tiny")).unwrap(), b"small stays inline");
    assert_eq!(fs::read(m.join("usr/empty")).unwrap(), b"");
    assert_eq!(fs::read(m.join("only-a")).unwrap(), seeded_bytes(12, 5000));
    drop(overlay);
    drop(lower);
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Sparse files (GNU tar's `-S`, in the old GNU and the PAX 1.0 formats)
/// keep their holes as holes of the image file: the mount shows what the
/// source had, the image costs the stored bytes and not the length, and
/// the record rebuilds the tar byte for byte.
#[test]
fn sparse_files_keep_their_holes_in_the_image() {
    if !require_mount_tools() || !strata_test_support::require("tar (GNU)", have("tar")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let f = fs::File::create(src.join("holes")).unwrap();
    f.write_all_at(&seeded_bytes(1, 5000), 1 << 20).unwrap();
    f.write_all_at(&seeded_bytes(2, 4096), 8 << 20).unwrap();
    f.set_len(256 << 20).unwrap();
    let f = fs::File::create(src.join("ends-in-data")).unwrap();
    f.write_all_at(&seeded_bytes(3, 7), (3 << 20) + 5).unwrap();
    fs::File::create(src.join("all-hole"))
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    fs::write(src.join("dense"), seeded_bytes(4, 10_000)).unwrap();
    for format in ["gnu", "posix"] {
        let dir = tmp.path().join(format);
        fs::create_dir(&dir).unwrap();
        let tar_path = dir.join("layer.tar");
        strata_test_support::run(
            Command::new("tar")
                .args([
                    "--sparse",
                    "--sparse-version=1.0",
                    "--format",
                    format,
                    "-cf",
                ])
                .arg(&tar_path)
                .arg("-C")
                .arg(&src)
                .args(["holes", "ends-in-data", "all-hole", "dense"]),
        );
        let tar = fs::read(&tar_path).unwrap();
        let img = dir.join("layer.erofs");
        let (report, record) = write_recording(&tar, &img);
        let allocated = fs::metadata(&img).unwrap().blocks() * 512;
        assert!(allocated < 1 << 20, "{format}: {allocated} bytes allocated");
        let fsck = Command::new("fsck.erofs").arg(&img).output().unwrap();
        assert!(fsck.status.success(), "{format}: {fsck:?}");
        let m = mount_image(&img, &dir.join("mnt"));
        for name in ["holes", "ends-in-data", "all-hole", "dense"] {
            assert!(
                fs::read(m.0.join(name)).unwrap() == fs::read(src.join(name)).unwrap(),
                "{format}: {name} differs"
            );
        }
        let mut out = Vec::new();
        let digest = strata_archive::reassemble(record.as_slice(), &m.0, &mut out).unwrap();
        assert_eq!(digest, report.diff_id, "{format}");
        assert!(out == tar, "{format}: the rebuilt tar differs");
    }
}

/// A terabyte of holes costs the image its length and not its blocks,
/// and the kernel reads the data at the far end.
#[test]
fn a_terabyte_sparse_file_is_a_sparse_image() {
    if !require_mount_tools() {
        return;
    }
    const TIB: u64 = 1 << 40;
    let mut tar = strata_test_support::gnu_sparse_member(
        "tera",
        TIB,
        &[(0, 4), (TIB - 4, 4)],
        None,
        b"headtail",
    );
    tar.resize(tar.len() + 1024, 0);
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("layer.erofs");
    let report = strata_erofs::write_image(tar.as_slice(), &img, &Options::default()).unwrap();
    assert_eq!(report.size, TIB);
    let md = fs::metadata(&img).unwrap();
    assert!(md.len() > TIB, "{}", md.len());
    assert!(
        md.blocks() * 512 < 1 << 20,
        "{} bytes allocated",
        md.blocks() * 512
    );
    let m = mount_image(&img, &tmp.path().join("mnt"));
    let f = fs::File::open(m.0.join("tera")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), TIB);
    let mut four = [0u8; 4];
    f.read_exact_at(&mut four, 0).unwrap();
    assert_eq!(&four, b"head");
    f.read_exact_at(&mut four, TIB - 4).unwrap();
    assert_eq!(&four, b"tail");
    f.read_exact_at(&mut four, TIB / 2).unwrap();
    assert_eq!(four, [0; 4]);
}

/// `tar` written as an image at `img` with its tar-split record: the
/// report and the record.
fn write_recording(tar: &[u8], img: &std::path::Path) -> (strata_erofs::Report, Vec<u8>) {
    let mut file = fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(img)
        .unwrap();
    let mut record = Vec::new();
    let report =
        strata_erofs::write_layer_recording(tar, &mut file, &Options::default(), Some(&mut record))
            .unwrap();
    (report, record)
}
