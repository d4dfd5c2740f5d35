//! POSIX and union behaviour of a mounted `strata-union`, one rule per
//! test, in the spirit of pjdfstest and unionmount-testsuite.
//!
//! Every test builds its branches in a temporary directory, mounts, works
//! through the union with ordinary system calls, and then looks underneath:
//! the lower branches must be untouched (checked on drop), and the upper
//! branch must hold the copied-up file or the whiteout in the format the
//! union was mounted with. Overlay-format unions are also handed to the
//! kernel's overlayfs, which must see the same tree.
//!
//! Needs root and /dev/fuse; says SKIPPED otherwise (and fails under CI).

#![forbid(unsafe_code)]

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{
    DirBuilderExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Barrier};

use common::*;
use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, RenameFlags, Timestamps, XattrFlags, CWD, UTIME_NOW,
    UTIME_OMIT,
};
use rustix::io::Errno;
use strata_test_support::append;

/// Runs one check once per whiteout format, as `<name>_aufs` and
/// `<name>_overlay`.
macro_rules! both_formats {
    ($($check:ident),* $(,)?) => {
        mod aufs {
            $(#[test] fn $check() { super::$check(super::Fmt::Aufs, concat!(stringify!($check), "_aufs")) })*
        }
        mod overlay {
            $(#[test] fn $check() { super::$check(super::Fmt::Overlay, concat!(stringify!($check), "_overlay")) })*
        }
    };
}

both_formats!(
    unlink_of_lower_file_writes_whiteout,
    unlink_of_lower_special_files_writes_whiteouts,
    recreate_after_unlink_shows_the_new_file,
    rmdir_of_lower_dir_writes_whiteout,
    rmdir_succeeds_once_every_lower_entry_is_deleted,
    recreated_dir_is_opaque,
    file_and_dir_replace_each_other,
    readdir_hides_whiteouts_and_lists_each_name_once,
    readdir_merges_2000_entries_across_three_branches,
    lookup_is_top_down_and_honours_branch_markers,
    chmod_copies_up_and_keeps_the_lower,
    rename_of_lower_file_across_dirs,
    rename_of_lower_dir_with_content,
    rename_dir_over_dir_emptied_by_whiteouts,
    user_xattrs_of_lower_file_copy_up,
    st_ino_is_stable_across_copy_up,
    st_ino_survives_remount,
    read_only_union_gives_erofs,
);

// ---------------------------------------------------------------- open/io

#[test]
fn create_lands_in_upper_only() {
    let Some(u) = Union::standard("create_lands_in_upper_only", Fmt::Aufs) else {
        return;
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(u.p("dir/new"))
        .expect("create in a lower-only dir");
    f.write_all(b"new\n").unwrap();
    drop(f);
    assert_eq!(read(&u.p("dir/new")), "new\n");
    let m = lstat(&u.p("dir/new"));
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert_eq!(read(&u.up("dir/new")), "new\n", "upper holds the new file");
    assert_eq!(list(&u.p("dir")), ["a", "b", "new", "sub"]);
}

#[test]
fn o_excl_fails_on_lower_names_and_works_after_unlink() {
    let Some(u) = Union::standard(
        "o_excl_fails_on_lower_names_and_works_after_unlink",
        Fmt::Aufs,
    ) else {
        return;
    };
    let excl = |p: &Path| OpenOptions::new().write(true).create_new(true).open(p);
    assert_errno(excl(&u.p("file")), Errno::EXIST, "O_EXCL on a lower file");
    assert_errno(excl(&u.p("dir")), Errno::EXIST, "O_EXCL on a lower dir");
    assert_errno(
        excl(&u.p("dangling")),
        Errno::EXIST,
        "O_EXCL on a dangling symlink",
    );
    fs::remove_file(u.p("file")).unwrap();
    excl(&u.p("file")).expect("O_EXCL on a whited-out name");
    assert_eq!(read(&u.p("file")), "");
}

#[test]
fn o_trunc_on_lower_file_copies_up_empty() {
    let Some(u) = Union::standard("o_trunc_on_lower_file_copies_up_empty", Fmt::Aufs) else {
        return;
    };
    let f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(u.p("file"))
        .unwrap();
    assert_eq!(f.metadata().unwrap().len(), 0, "fstat after O_TRUNC");
    drop(f);
    assert_eq!(lstat(&u.p("file")).len(), 0);
    assert_eq!(
        lstat(&u.up("file")).len(),
        0,
        "upper holds the truncated copy"
    );
}

#[test]
fn o_append_writes_after_lower_content() {
    let Some(u) = Union::standard("o_append_writes_after_lower_content", Fmt::Aufs) else {
        return;
    };
    let mut f = OpenOptions::new().append(true).open(u.p("file")).unwrap();
    f.write_all(b"one\n").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"two\n").unwrap();
    drop(f);
    assert_eq!(read(&u.p("file")), "lower file\none\ntwo\n");
    assert_eq!(read(&u.up("file")), "lower file\none\ntwo\n");
}

#[test]
fn reading_does_not_copy_up() {
    let Some(u) = Union::standard("reading_does_not_copy_up", Fmt::Aufs) else {
        return;
    };
    assert_eq!(read(&u.p("file")), "lower file\n");
    let _ = OpenOptions::new().read(true).open(u.p("dir/a")).unwrap();
    assert_eq!(list(&u.p("dir/sub")), ["deep"]);
    lstat(&u.p("link"));
    assert_eq!(
        u.upper_list(""),
        Vec::<String>::new(),
        "upper after reads only"
    );
}

#[test]
fn write_copies_up_whole_file_and_keeps_metadata() {
    let Some(u) = Union::standard("write_copies_up_whole_file_and_keeps_metadata", Fmt::Aufs)
    else {
        return;
    };
    let f = OpenOptions::new().write(true).open(u.p("big")).unwrap();
    f.write_all_at(b"X", 50_000).unwrap();
    drop(f);
    let mut want = big_content();
    want[50_000] = b'X';
    assert_eq!(
        fs::read(u.p("big")).unwrap(),
        want,
        "union content after a 1-byte write"
    );
    assert_eq!(fs::read(u.up("big")).unwrap(), want, "upper content");

    let f = OpenOptions::new().write(true).open(u.p("owned")).unwrap();
    f.write_all_at(b"O", 0).unwrap();
    drop(f);
    for m in [lstat(&u.p("owned")), lstat(&u.up("owned"))] {
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (1234, 5678, 0o640),
            "owner/mode kept"
        );
    }
    assert_eq!(read(&u.p("owned")), "Owned\n");
}

#[test]
fn pwrite_and_pread_at_offsets() {
    let Some(u) = Union::standard("pwrite_and_pread_at_offsets", Fmt::Aufs) else {
        return;
    };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(u.p("new"))
        .unwrap();
    f.write_all_at(b"abc", 10).unwrap();
    f.write_all_at(b"Z", 1).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 13);
    let mut buf = [0xffu8; 13];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"\0Z\0\0\0\0\0\0\0\0abc");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(u.p("file"))
        .unwrap();
    f.write_all_at(b"L", 0).unwrap();
    let mut buf = [0u8; 5];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"Lower");
    assert_eq!(read(&u.up("file")), "Lower file\n");
}

#[test]
fn write_past_eof_leaves_a_sparse_hole() {
    let Some(u) = Union::standard("write_past_eof_leaves_a_sparse_hole", Fmt::Aufs) else {
        return;
    };
    const AT: u64 = 16 << 20;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(u.p("sparse"))
        .unwrap();
    f.write_all_at(b"x", AT).unwrap();
    let m = f.metadata().unwrap();
    assert_eq!(m.len(), AT + 1);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "16 MiB hole allocated {} blocks",
        m.blocks()
    );
    let mut buf = vec![0xffu8; 4096];
    f.read_exact_at(&mut buf, AT / 2).unwrap();
    assert!(buf.iter().all(|b| *b == 0), "hole reads as zeros");
    assert!(
        lstat(&u.up("sparse")).blocks() * 512 < 1 << 20,
        "upper copy is sparse too"
    );
}

#[test]
fn truncate_by_path_copies_up_and_resizes() {
    let Some(u) = Union::standard("truncate_by_path_copies_up_and_resizes", Fmt::Aufs) else {
        return;
    };
    truncate_path(&u.p("file"), 3).expect("truncate(2) down");
    assert_eq!(read(&u.p("file")), "low");
    assert_eq!(read(&u.up("file")), "low");
    truncate_path(&u.p("file"), 8).expect("truncate(2) up");
    assert_eq!(fs::read(u.p("file")).unwrap(), b"low\0\0\0\0\0");
    assert_errno(
        truncate_path(&u.p("dir"), 0),
        Errno::ISDIR,
        "truncate(2) of a dir",
    );
    assert_errno(
        truncate_path(&u.p("nope"), 0),
        Errno::NOENT,
        "truncate(2) of nothing",
    );
}

#[test]
fn ftruncate_on_open_fd() {
    let Some(u) = Union::standard("ftruncate_on_open_fd", Fmt::Aufs) else {
        return;
    };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(u.p("file"))
        .unwrap();
    f.set_len(4).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 4);
    f.set_len(20).unwrap();
    drop(f);
    let mut want = b"lowe".to_vec();
    want.resize(20, 0);
    assert_eq!(fs::read(u.p("file")).unwrap(), want);
    assert_eq!(fs::read(u.up("file")).unwrap(), want);
}

#[test]
fn open_errors() {
    let Some(u) = Union::standard("open_errors", Fmt::Aufs) else {
        return;
    };
    assert_errno(File::open(u.p("nope")), Errno::NOENT, "open missing");
    assert_errno(
        File::create(u.p("nope/x")),
        Errno::NOENT,
        "create in missing dir",
    );
    assert_errno(
        File::open(u.p("file/x")),
        Errno::NOTDIR,
        "file as a path component",
    );
    assert_errno(
        OpenOptions::new().write(true).open(u.p("dir")),
        Errno::ISDIR,
        "open dir O_WRONLY",
    );
    let o = |p: &Path, f: OFlags| rustix::fs::openat(CWD, p, f, Mode::empty());
    assert_errno(
        o(&u.p("file"), OFlags::RDONLY | OFlags::DIRECTORY),
        Errno::NOTDIR,
        "O_DIRECTORY on file",
    );
    assert_errno(
        o(&u.p("link"), OFlags::RDONLY | OFlags::NOFOLLOW),
        Errno::LOOP,
        "O_NOFOLLOW on symlink",
    );
    assert_errno(
        File::open(u.p("dangling")),
        Errno::NOENT,
        "open dangling symlink",
    );
    o(&u.p("dir"), OFlags::RDONLY | OFlags::DIRECTORY).expect("O_DIRECTORY on a dir");
    assert_errno(
        o(&u.p("dir"), OFlags::RDONLY | OFlags::CREATE),
        Errno::ISDIR,
        "O_CREAT on a dir",
    );
    assert_errno(
        o(&u.p("dir"), OFlags::RDWR),
        Errno::ISDIR,
        "O_RDWR on a dir",
    );
    assert_errno(
        o(&u.p("dir"), OFlags::RDONLY | OFlags::TRUNC),
        Errno::ISDIR,
        "O_TRUNC on a dir",
    );
    std::os::unix::fs::symlink("loop2", u.p("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", u.p("loop2")).unwrap();
    assert_errno(
        File::open(u.p("loop1")),
        Errno::LOOP,
        "open of a symlink loop",
    );
    assert_eq!(
        u.upper_list(""),
        ["loop1", "loop2"],
        "failed opens left nothing in upper"
    );
}

/// A symlink to a symlink to a lower file: reads follow the chain, a
/// write copies up the file at its end only.
#[test]
fn symlink_chains_resolve_and_copy_up_the_end() {
    let Some(u) = Union::standard("symlink_chains_resolve_and_copy_up_the_end", Fmt::Aufs) else {
        return;
    };
    std::os::unix::fs::symlink("link", u.p("sym2")).unwrap();
    assert_eq!(read(&u.p("sym2")), "lower file\n");
    append(&u.p("sym2"), b"2");
    assert_eq!(read(&u.p("file")), "lower file\n2");
    assert!(lstat(&u.p("link")).file_type().is_symlink());
    assert_eq!(fs::read_link(u.p("link")).unwrap(), Path::new("file"));
    assert_eq!(
        read(&u.p("dirlink/../file")),
        "lower file\n2",
        "'..' after a symlinked dir is the dir's parent"
    );
}

/// Large writes split by FUSE land at the right offsets.
#[test]
fn large_writes_and_reads_round_trip() {
    let Some(u) = Union::standard("large_writes_and_reads_round_trip", Fmt::Aufs) else {
        return;
    };
    let data: Vec<u8> = (0..9 * 1024 * 1024 + 123u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut f = File::create(u.p("large")).unwrap();
    for chunk in data.chunks(1024 * 1024 + 7) {
        f.write_all(chunk).unwrap();
    }
    drop(f);
    assert!(
        fs::read(u.p("large")).unwrap() == data,
        "read back of 9 MiB differs"
    );
    let f = File::open(u.p("large")).unwrap();
    let mut buf = vec![0u8; 300_001];
    f.read_exact_at(&mut buf, 4_000_003).unwrap();
    assert!(
        buf[..] == data[4_000_003..4_300_004],
        "pread at an odd offset"
    );
    assert!(
        fs::read(u.up("large")).unwrap() == data,
        "upper copy differs"
    );
}

#[test]
fn writing_through_a_symlink_copies_up_the_target() {
    let Some(u) = Union::standard("writing_through_a_symlink_copies_up_the_target", Fmt::Aufs)
    else {
        return;
    };
    append(&u.p("link"), b"+\n");
    assert_eq!(read(&u.p("file")), "lower file\n+\n");
    assert_eq!(read(&u.up("file")), "lower file\n+\n");
    assert!(lstat(&u.p("link")).file_type().is_symlink());
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(u.p("dangling"))
        .expect("create via dangling symlink");
    assert!(
        u.up("nowhere").is_file(),
        "the dangling target is created in upper"
    );
}

#[test]
fn fsync_of_files_and_dirs() {
    let Some(u) = Union::standard("fsync_of_files_and_dirs", Fmt::Aufs) else {
        return;
    };
    let mut f = File::create(u.p("dir/synced")).unwrap();
    f.write_all(b"s").unwrap();
    f.sync_all().expect("fsync");
    f.sync_data().expect("fdatasync");
    File::open(u.p("dir"))
        .unwrap()
        .sync_all()
        .expect("fsync of a merged dir");
    File::open(u.p("file"))
        .unwrap()
        .sync_all()
        .expect("fsync of a lower file opened read-only");
}

// ---------------------------------------------------------------- metadata

fn chmod_copies_up_and_keeps_the_lower(fmt: Fmt, test: &str) {
    let Some(u) = Union::standard(test, fmt) else {
        return;
    };
    fs::set_permissions(u.p("file"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(lstat(&u.p("file")).mode(), 0o100600);
    let up = lstat(&u.up("file"));
    assert_eq!(up.mode(), 0o100600, "upper copy's mode");
    assert_eq!(read(&u.up("file")), "lower file\n", "upper copy's content");
    assert_eq!(up.mtime(), LOWER_MTIME, "copy-up keeps mtime");

    fs::set_permissions(u.p("dir"), fs::Permissions::from_mode(0o711)).unwrap();
    assert_eq!(lstat(&u.p("dir")).mode() & 0o7777, 0o711);
    assert!(lstat(&u.up("dir")).is_dir());
    assert_eq!(
        list(&u.p("dir")),
        ["a", "b", "sub"],
        "a copied-up dir still merges"
    );
}

#[test]
fn chown_copies_up_and_keeps_mode() {
    let Some(u) = Union::standard("chown_copies_up_and_keeps_mode", Fmt::Aufs) else {
        return;
    };
    rustix::fs::chownat(
        CWD,
        u.p("file"),
        Some(uid(4321)),
        Some(gid(8765)),
        AtFlags::empty(),
    )
    .unwrap();
    for m in [lstat(&u.p("file")), lstat(&u.up("file"))] {
        assert_eq!((m.uid(), m.gid(), m.mode()), (4321, 8765, 0o100644));
    }
    rustix::fs::chownat(CWD, u.p("owned"), None, None, AtFlags::empty()).unwrap();
    let m = lstat(&u.p("owned"));
    assert_eq!(
        (m.uid(), m.gid()),
        (1234, 5678),
        "chown(-1, -1) changes nothing"
    );
    rustix::fs::chownat(CWD, u.p("dir"), Some(uid(7)), None, AtFlags::empty()).unwrap();
    assert_eq!((lstat(&u.p("dir")).uid(), lstat(&u.p("dir")).gid()), (7, 0));
}

/// Linux clears setuid on chown of an executable file, for root too.
#[test]
fn chown_clears_setuid() {
    let Some(u) = Union::standard("chown_clears_setuid", Fmt::Aufs) else {
        return;
    };
    rustix::fs::chownat(CWD, u.p("suid"), Some(uid(4321)), None, AtFlags::empty()).unwrap();
    assert_eq!(lstat(&u.p("suid")).mode() & 0o7777, 0o755);
}

#[test]
fn copy_up_keeps_owner_mode_times_and_xattrs() {
    let Some(u) = Union::standard("copy_up_keeps_owner_mode_times_and_xattrs", Fmt::Aufs) else {
        return;
    };
    rustix::fs::setxattr(u.p("owned"), "user.new", b"v", XattrFlags::empty()).unwrap();
    rustix::fs::setxattr(u.p("xattr"), "user.new", b"v", XattrFlags::empty()).unwrap();
    for p in [u.p("owned"), u.up("owned")] {
        let m = lstat(&p);
        assert_eq!(
            (m.uid(), m.gid(), m.mode(), m.mtime(), m.len()),
            (1234, 5678, 0o100640, LOWER_MTIME, 6),
            "{}",
            p.display()
        );
    }
    assert_eq!(
        xattr(&u.up("xattr"), "user.lower").as_deref(),
        Some(&b"lowerval"[..])
    );
    assert_eq!(
        xattr(&u.up("xattr"), "user.new").as_deref(),
        Some(&b"v"[..])
    );
    // A parent copied up for a child keeps its owner and mode.
    fs::write(u.p("odir/child"), "c").unwrap();
    let m = lstat(&u.up("odir"));
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (1234, 5678, 0o750),
        "upper odir"
    );
}

#[test]
fn utimensat_sets_times_and_honours_now_and_omit() {
    let Some(u) = Union::standard("utimensat_sets_times_and_honours_now_and_omit", Fmt::Aufs)
    else {
        return;
    };
    let p = u.p("file");
    set_times(&p, ts(100, 5), ts(200, 7)).unwrap();
    let m = lstat(&p);
    assert_eq!(
        (m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec()),
        (100, 5, 200, 7)
    );
    let m = lstat(&u.up("file"));
    assert_eq!((m.atime(), m.mtime()), (100, 200), "upper copy's times");

    set_times(&p, ts(0, UTIME_OMIT), ts(0, UTIME_NOW)).unwrap();
    let m = lstat(&p);
    assert_eq!(m.atime(), 100, "UTIME_OMIT keeps atime");
    assert!(
        (m.mtime() - now()).abs() < 10,
        "UTIME_NOW mtime: {}",
        m.mtime()
    );

    set_times(&p, ts(0, UTIME_NOW), ts(300, 0)).unwrap();
    let m = lstat(&p);
    assert!(
        (m.atime() - now()).abs() < 10,
        "UTIME_NOW atime: {}",
        m.atime()
    );
    assert_eq!(m.mtime(), 300);

    // Both omitted: allowed, changes nothing.
    let times = Timestamps {
        last_access: ts(0, UTIME_OMIT),
        last_modification: ts(0, UTIME_OMIT),
    };
    rustix::fs::utimensat(CWD, &p, &times, AtFlags::empty()).unwrap();
    assert_eq!(lstat(&p).mtime(), 300);
}

#[test]
fn utimensat_nofollow_changes_the_symlink_not_its_target() {
    let Some(u) = Union::standard(
        "utimensat_nofollow_changes_the_symlink_not_its_target",
        Fmt::Aufs,
    ) else {
        return;
    };
    set_times(&u.p("link"), ts(300, 0), ts(400, 0)).expect("utimensat AT_SYMLINK_NOFOLLOW");
    assert_eq!(lstat(&u.p("link")).mtime(), 400);
    assert!(lstat(&u.p("link")).file_type().is_symlink());
    assert_eq!(
        fs::metadata(u.p("link")).unwrap().mtime(),
        LOWER_MTIME,
        "target untouched"
    );
    assert_eq!(
        lstat(&u.up("link")).mtime(),
        400,
        "upper holds the symlink's copy"
    );
}

#[test]
fn chmod_updates_ctime_and_write_updates_mtime() {
    let Some(u) = Union::standard("chmod_updates_ctime_and_write_updates_mtime", Fmt::Aufs) else {
        return;
    };
    let before = lstat(&u.p("file"));
    std::thread::sleep(std::time::Duration::from_millis(30));
    fs::set_permissions(u.p("file"), fs::Permissions::from_mode(0o640)).unwrap();
    let after = lstat(&u.p("file"));
    assert!(
        (after.ctime(), after.ctime_nsec()) > (before.ctime(), before.ctime_nsec()),
        "ctime {}.{} -> {}.{}",
        before.ctime(),
        before.ctime_nsec(),
        after.ctime(),
        after.ctime_nsec()
    );
    assert_eq!(after.mtime(), LOWER_MTIME, "chmod leaves mtime");
    fs::OpenOptions::new()
        .write(true)
        .open(u.p("dir/a"))
        .unwrap()
        .write_all(b"A")
        .unwrap();
    let m = lstat(&u.p("dir/a"));
    assert!(
        (m.mtime() - now()).abs() < 10,
        "write leaves mtime at {}",
        m.mtime()
    );
}

/// Creating, removing or renaming an entry updates its directory's mtime
/// (pjdfstest checks this for every such call).
#[test]
fn parent_mtime_updates_on_namespace_changes() {
    let Some(u) = Union::standard("parent_mtime_updates_on_namespace_changes", Fmt::Aufs) else {
        return;
    };
    type Op = Box<dyn Fn(&Union) -> std::io::Result<()>>;
    let ops: Vec<(&str, &[&str], Op)> = vec![
        (
            "create",
            &["dir"],
            Box::new(|u| fs::write(u.p("dir/c"), "c")),
        ),
        (
            "unlink",
            &["dir"],
            Box::new(|u| fs::remove_file(u.p("dir/a"))),
        ),
        (
            "mkdir",
            &["dir"],
            Box::new(|u| fs::create_dir(u.p("dir/d"))),
        ),
        (
            "rmdir",
            &["dir"],
            Box::new(|u| fs::remove_dir(u.p("dir/d"))),
        ),
        (
            "rename",
            &["dir"],
            Box::new(|u| fs::rename(u.p("dir/b"), u.p("dir/b2"))),
        ),
        (
            "rename across",
            &["dir", "empty"],
            Box::new(|u| fs::rename(u.p("dir/b2"), u.p("empty/b2"))),
        ),
        (
            "symlink",
            &["odir"],
            Box::new(|u| std::os::unix::fs::symlink("x", u.p("odir/s"))),
        ),
        (
            "link",
            &["odir"],
            Box::new(|u| fs::hard_link(u.p("file"), u.p("odir/l"))),
        ),
        (
            "unlink lower",
            &["odir"],
            Box::new(|u| fs::remove_file(u.p("odir/inner"))),
        ),
    ];
    for (what, dirs, op) in ops {
        for d in dirs {
            set_times(&u.p(d), ts(LOWER_MTIME, 0), ts(LOWER_MTIME, 0)).unwrap();
        }
        op(&u).unwrap_or_else(|e| panic!("{what}: {e}"));
        for d in dirs {
            let m = lstat(&u.p(d));
            assert!(
                (m.mtime() - now()).abs() < 10,
                "{what}: {d} mtime stayed {}",
                m.mtime()
            );
        }
    }
}

/// A non-root caller gets the permissions of the files' modes and owners,
/// and owns what it creates (also in the upper branch).
#[test]
fn non_root_permissions_are_enforced() {
    let Some(u) = Union::standard("non_root_permissions_are_enforced", Fmt::Aufs) else {
        return;
    };
    let ok = |s: &str, p: &[&Path]| as_nobody(s, p);
    let (file, secret, dir, sticky) = (u.p("file"), u.p("secret"), u.p("dir"), u.p("sticky"));
    assert!(
        ok("cat \"$1\" >/dev/null", &[&file]),
        "nobody reads a 0644 file"
    );
    assert!(
        !ok("echo x >> \"$1\"", &[&file]),
        "nobody writes root's 0644 file"
    );
    assert!(
        !ok("cat \"$1\"", &[&secret]),
        "nobody reads root's 0600 file"
    );
    assert!(
        !ok("test -w \"$1\"", &[&file]),
        "access(W_OK) on root's 0644 file"
    );
    assert!(
        ok("test -r \"$1\"", &[&file]),
        "access(R_OK) on a 0644 file"
    );
    assert!(
        !ok(": > \"$1/new\"", &[&dir]),
        "nobody creates in root's 0755 dir"
    );
    assert!(
        !ok("mkdir \"$1/new\"", &[&dir]),
        "nobody mkdirs in root's 0755 dir"
    );
    assert!(
        !ok("rm -f \"$1/a\"", &[&dir]),
        "nobody unlinks in root's 0755 dir"
    );
    assert!(
        !ok("chmod 777 \"$1\"", &[&file]),
        "nobody chmods root's file"
    );
    assert!(
        !ok("cat \"$1/locked/inner\"", &[&u.p("")]),
        "nobody traverses a 0700 dir"
    );
    assert!(
        !ok("ls \"$1\"", &[&u.p("locked")]),
        "nobody lists a 0700 dir"
    );
    assert!(
        ok(
            "echo mine > \"$1/mine\" && mkdir \"$1/minedir\"",
            &[&sticky]
        ),
        "nobody creates in 01777"
    );
    assert!(
        !ok("rm -f \"$1/theirs\"", &[&sticky]),
        "sticky dir protects others' files"
    );
    assert!(
        ok(
            "echo more >> \"$1\" && chmod 600 \"$1\"",
            &[&u.p("nobodys")]
        ),
        "nobody writes/chmods its own lower file"
    );
    assert!(
        !ok("touch -d @5 \"$1\"", &[&file]),
        "nobody sets times of root's file"
    );
    for p in [
        u.p("sticky/mine"),
        u.up("sticky/mine"),
        u.p("sticky/minedir"),
        u.up("sticky/minedir"),
    ] {
        let m = lstat(&p);
        assert_eq!(
            (m.uid(), m.gid()),
            (65534, 65534),
            "owner of {}",
            p.display()
        );
    }
    let m = lstat(&u.up("nobodys"));
    assert_eq!(
        (m.uid(), m.mode() & 0o777),
        (65534, 0o600),
        "nobody's copy-up keeps its owner"
    );
    assert!(
        ok("rm \"$1/mine\"", &[&sticky]),
        "nobody unlinks its own file in 01777"
    );
    assert_eq!(read(&u.p("file")), "lower file\n");
    assert_eq!(
        u.upper_list(""),
        ["nobodys", "sticky"],
        "failed attempts left nothing in upper"
    );
}

/// New entries in a setgid directory take the directory's group, and new
/// directories inherit the bit (for root and for other users).
#[test]
fn setgid_dir_gives_its_group_to_new_entries() {
    let Some(u) = Union::standard("setgid_dir_gives_its_group_to_new_entries", Fmt::Aufs) else {
        return;
    };
    fs::create_dir(u.p("sg")).unwrap();
    rustix::fs::chownat(CWD, u.p("sg"), None, Some(gid(4242)), AtFlags::empty()).unwrap();
    fs::set_permissions(u.p("sg"), fs::Permissions::from_mode(0o2777)).unwrap();
    fs::write(u.p("sg/f"), "f").unwrap();
    fs::create_dir(u.p("sg/d")).unwrap();
    assert!(
        as_nobody(": > \"$1/n\" && mkdir \"$1/nd\"", &[&u.p("sg")]),
        "nobody creates in a 02777 dir"
    );
    for rel in ["sg/f", "sg/d", "sg/n", "sg/nd"] {
        for p in [u.p(rel), u.up(rel)] {
            assert_eq!(lstat(&p).gid(), 4242, "group of {}", p.display());
        }
    }
    assert_eq!(lstat(&u.p("sg/n")).uid(), 65534);
    for rel in ["sg/d", "sg/nd"] {
        assert_ne!(lstat(&u.p(rel)).mode() & 0o2000, 0, "{rel} inherits setgid");
    }
}

/// The process umask applies to what is created through the union.
#[test]
fn create_honours_the_umask() {
    let Some(u) = Union::standard("create_honours_the_umask", Fmt::Aufs) else {
        return;
    };
    let ok = std::process::Command::new("sh")
        .args([
            "-c",
            "umask 027 && : > \"$1/um\" && mkdir \"$1/umd\" && mkfifo \"$1/ump\"",
            "sh",
        ])
        .arg(u.p("dir"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "creating under umask 027");
    assert_eq!(lstat(&u.p("dir/um")).mode() & 0o7777, 0o640);
    assert_eq!(lstat(&u.p("dir/umd")).mode() & 0o7777, 0o750);
    assert_eq!(lstat(&u.p("dir/ump")).mode() & 0o7777, 0o640);
}

/// pjdfstest: every call that changes an inode updates its ctime.
#[test]
fn ctime_updates_on_every_inode_change() {
    let Some(u) = Union::standard("ctime_updates_on_every_inode_change", Fmt::Aufs) else {
        return;
    };
    fs::write(u.p("h1"), "12345").unwrap();
    fs::hard_link(u.p("h1"), u.p("h2")).unwrap();
    type Op = Box<dyn Fn(&Union) -> std::io::Result<()>>;
    let ops: Vec<(&str, &str, Op)> = vec![
        (
            "link",
            "file",
            Box::new(|u| fs::hard_link(u.p("file"), u.p("file2"))),
        ),
        (
            "unlink of another name",
            "h2",
            Box::new(|u| fs::remove_file(u.p("h1"))),
        ),
        (
            "rename",
            "dir/b2",
            Box::new(|u| fs::rename(u.p("dir/b"), u.p("dir/b2"))),
        ),
        ("truncate", "h2", Box::new(|u| truncate_path(&u.p("h2"), 2))),
        (
            "O_TRUNC",
            "dir/a",
            Box::new(|u| {
                OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(u.p("dir/a"))
                    .map(drop)
            }),
        ),
        (
            "chown",
            "owned",
            Box::new(|u| {
                rustix::fs::chownat(CWD, u.p("owned"), Some(uid(9)), None, AtFlags::empty())
                    .map_err(Into::into)
            }),
        ),
        (
            "setxattr",
            "xattr",
            Box::new(|u| {
                rustix::fs::setxattr(u.p("xattr"), "user.c", b"c", XattrFlags::empty())
                    .map_err(Into::into)
            }),
        ),
        (
            "write",
            "h2",
            Box::new(|u| {
                OpenOptions::new()
                    .append(true)
                    .open(u.p("h2"))?
                    .write_all(b"w")
            }),
        ),
    ];
    for (what, target, op) in ops {
        let src = if what == "rename" { "dir/b" } else { target };
        let before = lstat(&u.p(src));
        std::thread::sleep(std::time::Duration::from_millis(20));
        op(&u).unwrap_or_else(|e| panic!("{what}: {e}"));
        let after = lstat(&u.p(target));
        assert!(
            (after.ctime(), after.ctime_nsec()) > (before.ctime(), before.ctime_nsec()),
            "{what}: ctime of {target} stayed {}.{:09}",
            after.ctime(),
            after.ctime_nsec()
        );
        if ["truncate", "O_TRUNC", "write"].contains(&what) {
            assert!(
                (after.mtime() - now()).abs() < 10,
                "{what}: mtime of {target} stayed {}",
                after.mtime()
            );
        }
    }
}

/// More of what a non-root caller may and may not do (pjdfstest's
/// EPERM/EACCES cases).
#[test]
fn non_root_ownership_rules() {
    let Some(u) = Union::standard("non_root_ownership_rules", Fmt::Aufs) else {
        return;
    };
    fs::write(u.p("shared"), "shared").unwrap();
    fs::set_permissions(u.p("shared"), fs::Permissions::from_mode(0o666)).unwrap();
    fs::write(u.p("suidfile"), "s").unwrap();
    fs::set_permissions(u.p("suidfile"), fs::Permissions::from_mode(0o4777)).unwrap();
    let ok = |s: &str, p: &Path| as_nobody(s, &[p]);
    assert!(
        !ok("truncate -s 0 \"$1\"", &u.p("file")),
        "nobody truncates root's 0644 file"
    );
    assert!(
        ok("touch \"$1\"", &u.p("shared")),
        "UTIME_NOW on a writable file of another owner"
    );
    assert!(
        !ok("touch -d @5 \"$1\"", &u.p("shared")),
        "explicit times on a file of another owner"
    );
    assert!(
        !ok("chgrp 0 \"$1\"", &u.p("nobodys")),
        "chgrp to a group the caller is not in"
    );
    assert!(
        ok("chown 65534:65534 \"$1\"", &u.p("nobodys")),
        "chown of own file to own ids"
    );
    assert!(!ok("chown 0 \"$1\"", &u.p("nobodys")), "giving a file away");
    assert!(
        !ok("mv \"$1/theirs\" \"$1/x\"", &u.p("sticky")),
        "rename of another's file in a sticky dir"
    );
    assert!(
        ok("echo w >> \"$1\"", &u.p("suidfile")),
        "nobody writes a 04777 file"
    );
    assert_eq!(
        lstat(&u.p("suidfile")).mode() & 0o7777,
        0o777,
        "write by non-root clears setuid"
    );
    assert_eq!(lstat(&u.p("shared")).uid(), 0);
    assert_eq!(read(&u.p("sticky/theirs")), "theirs\n");
}

/// The privileges a write, truncate or fallocate drops, as the kernel
/// drops them on any file system, whether the writes pass through to the
/// backing file or go through the server: by a caller without
/// CAP_FSETID, set-user-ID, and set-group-ID when group execute is set;
/// root's keep them; file capabilities go on any write. A set-user-ID
/// program written by another user runs without the bit at once (no
/// cached mode outlives the change).
#[test]
fn writes_and_truncates_drop_privileges() {
    privileges_dropped("writes_and_truncates_drop_privileges", true);
}

/// The same without passthrough: every write goes through the server.
#[test]
fn writes_and_truncates_drop_privileges_without_passthrough() {
    privileges_dropped(
        "writes_and_truncates_drop_privileges_without_passthrough",
        false,
    );
    let Some(u) = Union::standard_with(
        "writes_and_truncates_drop_privileges_without_passthrough",
        Fmt::Aufs,
        |u| u.passthrough = false,
    ) else {
        return;
    };
    // A lower set-user-ID file written by root keeps the bit (copied up
    // with it); one written by nobody loses it.
    append(&u.p("suid"), b"root\n");
    assert_eq!(lstat(&u.p("suid")).mode() & 0o7777, 0o4755);
    fs::set_permissions(u.p("suid"), fs::Permissions::from_mode(0o4777)).unwrap();
    assert!(as_nobody("echo w >> \"$1\"", &[&u.p("suid")]));
    assert_eq!(lstat(&u.p("suid")).mode() & 0o7777, 0o777);
}

fn privileges_dropped(test: &str, passthrough: bool) {
    let Some(u) = Union::standard_with(test, Fmt::Overlay, |u| u.passthrough = passthrough) else {
        return;
    };
    let mode = |name: &str| lstat(&u.p(name)).mode() & 0o7777;
    fs::create_dir(u.p("mine")).unwrap();
    rustix::fs::chown(u.p("mine"), Some(uid(65534)), Some(gid(65534))).unwrap();
    let dir = u.p("mine");
    assert!(
        as_nobody(
            "cd \"$1\" && exec 3>created && chmod 6775 created && echo x >&3 &&
             exec 4>nogx && chmod 6745 nogx && echo x >&4 &&
             echo t > trunc && chmod 4777 trunc && truncate -s 1 trunc &&
             echo t > falloc && chmod 4777 falloc && fallocate -l 65536 falloc",
            &[&dir]
        ),
        "nobody writes its own set-ID files"
    );
    assert_eq!(
        mode("mine/created"),
        0o775,
        "write through the creating open"
    );
    assert_eq!(mode("mine/nogx"), 0o2745, "no group execute: sgid stays");
    assert_eq!(mode("mine/trunc"), 0o777, "truncate by non-root");
    assert_eq!(mode("mine/falloc"), 0o777, "fallocate by non-root");
    // root's set-user-ID program, writable by all: runs as root until
    // nobody writes to it, and as nobody right after.
    fs::copy("/usr/bin/id", u.p("mine/idx")).unwrap();
    fs::set_permissions(u.p("mine/idx"), fs::Permissions::from_mode(0o4777)).unwrap();
    assert!(
        as_nobody("test \"$(\"$1\" -u)\" = 0", &[&u.p("mine/idx")]),
        "the set-user-ID bit works in the union"
    );
    assert!(
        as_nobody(
            "printf '\\177' 1<>\"$1\" && test \"$(\"$1\" -u)\" = 65534",
            &[&u.p("mine/idx")]
        ),
        "a written set-user-ID program runs without the bit at once"
    );
    assert_eq!(mode("mine/idx"), 0o777);
    // Root keeps the bits (CAP_FSETID).
    let mut f = fs::File::create(u.p("rootfile")).unwrap();
    fs::set_permissions(u.p("rootfile"), fs::Permissions::from_mode(0o6775)).unwrap();
    f.write_all(b"root writes\n").unwrap();
    truncate_path(&u.p("rootfile"), 4).unwrap();
    assert_eq!(mode("rootfile"), 0o6775, "root's write and truncate");
    // File capabilities (cap_net_raw, v2 format) go on the next write.
    let set_caps = || {
        let caps: [u8; 20] = [
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        rustix::fs::setxattr(
            u.p("rootfile"),
            "security.capability",
            &caps,
            XattrFlags::empty(),
        )
        .unwrap();
    };
    set_caps();
    assert!(xattr(&u.p("rootfile"), "security.capability").is_some());
    f.write_all(b"more\n").unwrap();
    assert_eq!(xattr(&u.p("rootfile"), "security.capability"), None);
    assert_eq!(xattr(&u.up("rootfile"), "security.capability"), None);
    drop(f);
    set_caps();
    truncate_path(&u.p("rootfile"), 1).unwrap();
    assert_eq!(
        xattr(&u.p("rootfile"), "security.capability"),
        None,
        "truncate"
    );
}

// ---------------------------------------------------------------- directories

#[test]
fn mkdir_lands_in_upper_and_refuses_existing_names() {
    let Some(u) = Union::standard("mkdir_lands_in_upper_and_refuses_existing_names", Fmt::Aufs)
    else {
        return;
    };
    fs::DirBuilder::new()
        .mode(0o750)
        .create(u.p("dir/sub/new"))
        .unwrap();
    assert_eq!(lstat(&u.p("dir/sub/new")).mode(), 0o40750);
    assert!(lstat(&u.up("dir/sub/new")).is_dir());
    assert_eq!(list(&u.p("dir/sub")), ["deep", "new"]);
    assert_errno(
        fs::create_dir(u.p("dir")),
        Errno::EXIST,
        "mkdir over a lower dir",
    );
    assert_errno(
        fs::create_dir(u.p("file")),
        Errno::EXIST,
        "mkdir over a lower file",
    );
    assert_errno(
        fs::create_dir(u.p("dangling")),
        Errno::EXIST,
        "mkdir over a dangling symlink",
    );
    assert_errno(
        fs::create_dir(u.p("nope/x")),
        Errno::NOENT,
        "mkdir in a missing dir",
    );
}

#[test]
fn rmdir_of_merged_nonempty_dir_is_enotempty() {
    let Some(u) = Union::standard("rmdir_of_merged_nonempty_dir_is_enotempty", Fmt::Aufs) else {
        return;
    };
    assert_errno(
        fs::remove_dir(u.p("dir")),
        Errno::NOTEMPTY,
        "rmdir lower-only non-empty",
    );
    fs::set_permissions(u.p("dir/sub"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_errno(
        fs::remove_dir(u.p("dir/sub")),
        Errno::NOTEMPTY,
        "rmdir copied-up non-empty",
    );
    fs::create_dir(u.p("new")).unwrap();
    fs::write(u.p("new/f"), "").unwrap();
    assert_errno(
        fs::remove_dir(u.p("new")),
        Errno::NOTEMPTY,
        "rmdir upper-only non-empty",
    );
    assert_errno(
        fs::remove_dir(u.p("file")),
        Errno::NOTDIR,
        "rmdir of a file",
    );
    assert_errno(fs::remove_file(u.p("dir")), Errno::ISDIR, "unlink of a dir");
    assert_eq!(list(&u.p("dir")), ["a", "b", "sub"]);
}

fn rmdir_of_lower_dir_writes_whiteout(fmt: Fmt, test: &str) {
    let Some(u) = Union::standard(test, fmt) else {
        return;
    };
    fs::remove_dir(u.p("empty")).unwrap();
    assert_gone(&u.p("empty"));
    assert!(!list(&u.p("")).contains(&"empty".to_string()));
    u.assert_whiteout("empty");
}

fn rmdir_succeeds_once_every_lower_entry_is_deleted(fmt: Fmt, test: &str) {
    let Some(u) = Union::standard(test, fmt) else {
        return;
    };
    fs::remove_file(u.p("dir/a")).unwrap();
    fs::remove_file(u.p("dir/b")).unwrap();
    fs::remove_file(u.p("dir/sub/deep")).unwrap();
    fs::remove_dir(u.p("dir/sub")).unwrap();
    assert_eq!(list(&u.p("dir")), Vec::<String>::new());
    fs::remove_dir(u.p("dir")).expect("rmdir of a dir holding only whiteouts");
    assert_gone(&u.p("dir"));
    u.assert_whiteout("dir");
}

fn unlink_of_lower_file_writes_whiteout(fmt: Fmt, test: &str) {
    let Some(mut u) = Union::standard(test, fmt) else {
        return;
    };
    fs::remove_file(u.p("file")).unwrap();
    assert_gone(&u.p("file"));
    assert_errno(fs::remove_file(u.p("file")), Errno::NOENT, "second unlink");
    assert!(!list(&u.p("")).contains(&"file".to_string()));
    u.assert_whiteout("file");
    assert_eq!(read(&u.low("file")), "lower file\n");
    assert_errno(
        fs::read_link(u.p("link")).and_then(|_| fs::read(u.p("link"))),
        Errno::NOENT,
        "symlink to the deleted file",
    );
    fs::remove_file(u.p("dir/sub/deep")).unwrap();
    assert_eq!(list(&u.p("dir/sub")), Vec::<String>::new());
    u.assert_whiteout("dir/sub/deep");
    u.remount();
    assert_gone(&u.p("file"));
    assert_gone(&u.p("dir/sub/deep"));
}

fn unlink_of_lower_special_files_writes_whiteouts(fmt: Fmt, test: &str) {
    let Some(u) = Union::standard(test, fmt) else {
        return;
    };
    for name in ["link", "dangling", "fifo", "null", "hard1"] {
        fs::remove_file(u.p(name)).unwrap_or_else(|e| panic!("unlink {name}: {e}"));
        assert_gone(&u.p(name));
        u.assert_whiteout(name);
    }
    assert_eq!(
        read(&u.p("file")),
        "lower file\n",
        "unlinking a symlink leaves its target"
    );
    assert_eq!(
        read(&u.p("hard2")),
        "hard\n",
        "unlinking a hardlink leaves the other name"
    );
}

fn recreate_after_unlink_shows_the_new_file(fmt: Fmt, test: &str) {
    let Some(mut u) = Union::standard(test, fmt) else {
        return;
    };
    fs::remove_file(u.p("file")).unwrap();
    fs::write(u.p("file"), "new\n").unwrap();
    assert_eq!(read(&u.p("file")), "new\n");
    assert_eq!(list(&u.p("")).iter().filter(|n| *n == "file").count(), 1);
    assert!(lstat(&u.up("file")).is_file(), "upper holds a regular file");
    assert_eq!(read(&u.up("file")), "new\n");
    if fmt == Fmt::Aufs {
        assert_gone(&u.up(".wh.file"));
    }
    u.remount();
    assert_eq!(read(&u.p("file")), "new\n");
}

fn recreated_dir_is_opaque(fmt: Fmt, test: &str) {
    let Some(mut u) = Union::standard(test, fmt) else {
        return;
    };
    fs::remove_dir_all(u.p("dir")).unwrap();
    fs::create_dir(u.p("dir")).unwrap();
    assert_eq!(
        list(&u.p("dir")),
        Vec::<String>::new(),
        "recreated dir shows no lower entries"
    );
    assert_gone(&u.p("dir/a"));
    assert_gone(&u.p("dir/sub/deep"));
    fs::write(u.p("dir/x"), "x").unwrap();
    assert_eq!(list(&u.p("dir")), ["x"]);
    assert!(
        u.is_opaque("dir"),
        "upper dir not marked opaque: {:?}",
        list_raw(&u.up("dir"))
    );
    u.remount();
    assert_eq!(list(&u.p("dir")), ["x"], "after remount");
}

fn file_and_dir_replace_each_other(fmt: Fmt, test: &str) {
    let Some(mut u) = Union::standard(test, fmt) else {
        return;
    };
    fs::remove_dir_all(u.p("dir")).unwrap();
    fs::write(u.p("dir"), "now a file").unwrap();
    assert!(lstat(&u.p("dir")).is_file());
    assert_eq!(read(&u.p("dir")), "now a file");
    fs::remove_file(u.p("file")).unwrap();
    fs::create_dir(u.p("file")).unwrap();
    assert!(lstat(&u.p("file")).is_dir());
    assert_eq!(list(&u.p("file")), Vec::<String>::new());
    u.remount();
    assert_eq!(read(&u.p("dir")), "now a file");
    assert_eq!(list(&u.p("file")), Vec::<String>::new());
}

/// Every name in a directory, `.` and `..` included, straight from
/// getdents, with d_ino and d_type.
fn getdents(dir: &Path) -> Vec<(String, u64, FileType)> {
    let fd =
        rustix::fs::openat(CWD, dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    let mut d = rustix::fs::Dir::read_from(&fd).unwrap();
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e.unwrap();
        out.push((
            e.file_name().to_string_lossy().into_owned(),
            e.ino(),
            e.file_type(),
        ));
    }
    out
}

fn readdir_hides_whiteouts_and_lists_each_name_once(fmt: Fmt, test: &str) {
    let Some(u) = Union::standard(test, fmt) else {
        return;
    };
    fs::remove_file(u.p("dir/a")).unwrap();
    fs::write(u.p("dir/c"), "c").unwrap();
    fs::set_permissions(u.p("dir/b"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(u.p("file")).unwrap();
    fs::remove_dir(u.p("empty")).unwrap();
    let mut names: Vec<String> = getdents(&u.p("dir")).into_iter().map(|e| e.0).collect();
    names.sort();
    assert_eq!(names, [".", "..", "b", "c", "sub"]);
    let mut root: Vec<String> = getdents(&u.p("")).into_iter().map(|e| e.0).collect();
    root.sort();
    let mut want: Vec<&str> = vec![
        ".", "..", "big", "dangling", "dir", "dirlink", "fifo", "hard1", "hard2", "link", "locked",
        "null", "nobodys", "odir", "owned", "secret", "sticky", "suid", "xattr",
    ];
    want.sort();
    assert_eq!(root, want);
    // Reading twice gives the same answer.
    assert_eq!(list(&u.p("dir")), list(&u.p("dir")));
}

#[test]
fn readdir_types_and_inodes_match_stat() {
    let Some(u) = Union::standard("readdir_types_and_inodes_match_stat", Fmt::Aufs) else {
        return;
    };
    fs::write(u.p("new"), "n").unwrap();
    fs::set_permissions(u.p("file"), fs::Permissions::from_mode(0o600)).unwrap();
    for (name, ino, ft) in getdents(&u.p("")) {
        if name == "." || name == ".." {
            continue;
        }
        let m = lstat(&u.p(&name));
        assert_eq!(
            ft,
            FileType::from_raw_mode(m.mode() as _),
            "d_type of {name}"
        );
        assert_eq!(ino, m.ino(), "d_ino of {name} vs st_ino");
    }
    let dot = getdents(&u.p("dir"))
        .into_iter()
        .find(|e| e.0 == "..")
        .unwrap();
    assert_eq!(dot.1, lstat(&u.p("")).ino(), "'..' of dir is the root");
}

/// rewinddir shows entries created and removed since the stream was
/// opened (POSIX readdir: a rewind reflects the directory's current state).
#[test]
fn rewinddir_sees_current_entries() {
    let Some(u) = Union::standard("rewinddir_sees_current_entries", Fmt::Aufs) else {
        return;
    };
    let fd = rustix::fs::openat(
        CWD,
        u.p("dir"),
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    let mut d = rustix::fs::Dir::read_from(&fd).unwrap();
    let names = |d: &mut rustix::fs::Dir| {
        let mut v = Vec::new();
        while let Some(e) = d.read() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." {
                v.push(n);
            }
        }
        v.sort();
        v
    };
    assert_eq!(names(&mut d), ["a", "b", "sub"]);
    fs::write(u.p("dir/c"), "c").unwrap();
    fs::remove_file(u.p("dir/a")).unwrap();
    d.rewind();
    assert_eq!(names(&mut d), ["b", "c", "sub"], "after rewinddir");
}

/// A new dir renamed onto the name of a deleted lower dir must not show
/// the lower dir's entries (overlayfs makes it opaque).
#[test]
fn rename_onto_deleted_lower_dir_name_is_opaque() {
    let Some(mut u) = Union::standard("rename_onto_deleted_lower_dir_name_is_opaque", Fmt::Overlay)
    else {
        return;
    };
    fs::remove_dir_all(u.p("dir")).unwrap();
    fs::create_dir(u.p("fresh")).unwrap();
    fs::write(u.p("fresh/f"), "f").unwrap();
    fs::rename(u.p("fresh"), u.p("dir")).unwrap();
    assert_eq!(list(&u.p("dir")), ["f"]);
    u.remount();
    assert_eq!(list(&u.p("dir")), ["f"], "after remount");
}

#[test]
fn dot_and_dotdot_resolve() {
    let Some(u) = Union::standard("dot_and_dotdot_resolve", Fmt::Aufs) else {
        return;
    };
    assert_eq!(lstat(&u.p("dir/sub/..")).ino(), lstat(&u.p("dir")).ino());
    assert_eq!(lstat(&u.p("dir/.")).ino(), lstat(&u.p("dir")).ino());
    assert_eq!(read(&u.p("dir/sub/../a")), "a\n");
    assert_eq!(read(&u.p("dirlink/sub/deep")), "deep\n");
    assert_errno(fs::remove_dir(u.p("dir/.")), Errno::INVAL, "rmdir of '.'");
}

fn readdir_merges_2000_entries_across_three_branches(fmt: Fmt, test: &str) {
    let layout = Layout {
        fmt,
        lowers: 2,
        upper: true,
        prefix: None,
    };
    let Some(u) = Union::build(test, layout, |l| {
        // bottom: f0000..f0999; middle: f0500..f1499 and whiteouts for f0000..f0099
        fs::create_dir(l[1].join("big")).unwrap();
        fs::create_dir(l[0].join("big")).unwrap();
        for i in 0..1000 {
            fs::write(l[1].join(format!("big/f{i:04}")), "bottom").unwrap();
        }
        for i in 500..1500 {
            fs::write(l[0].join(format!("big/f{i:04}")), "middle").unwrap();
        }
        for i in 0..100 {
            make_whiteout(fmt, &l[0].join("big"), &format!("f{i:04}"));
        }
    }) else {
        return;
    };
    for i in 1500..2100 {
        fs::write(u.p(&format!("big/f{i:04}")), "upper").unwrap();
    }
    let names: Vec<String> = getdents(&u.p("big")).into_iter().map(|e| e.0).collect();
    assert_eq!(names.len(), 2002, "entries incl. . and ..");
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 2002, "duplicates in readdir");
    let want: Vec<String> = (100..2100).map(|i| format!("f{i:04}")).collect();
    assert_eq!(sorted[2..], want[..], "merged names");
    assert_eq!(read(&u.p("big/f0100")), "bottom");
    assert_eq!(
        read(&u.p("big/f0700")),
        "middle",
        "middle branch wins over bottom"
    );
    assert_gone(&u.p("big/f0050"));
    fs::remove_dir_all(u.p("big")).expect("rm -r of the merged dir");
    assert_gone(&u.p("big"));
    u.assert_whiteout("big");
}

fn lookup_is_top_down_and_honours_branch_markers(fmt: Fmt, test: &str) {
    let layout = Layout::two(fmt);
    let Some(mut u) = Union::unmounted(test, layout, |l, up| {
        let (l, up) = (&l[0], up.unwrap());
        let w = |p: &Path, s: &str| fs::write(p, s).unwrap();
        let d = |p: &Path| fs::create_dir(p).unwrap();
        w(&l.join("same"), "lower");
        w(&up.join("same"), "upper");
        d(&l.join("mixed"));
        d(&up.join("mixed"));
        w(&l.join("mixed/l"), "l");
        w(&l.join("mixed/w"), "w");
        w(&up.join("mixed/u"), "u");
        make_whiteout(fmt, &up.join("mixed"), "w");
        d(&l.join("fileover"));
        w(&l.join("fileover/x"), "x");
        w(&up.join("fileover"), "file");
        w(&l.join("dirover"), "file");
        d(&up.join("dirover"));
        w(&up.join("dirover/x"), "x");
        w(&l.join("gone"), "gone");
        make_whiteout(fmt, up, "gone");
        d(&l.join("opq"));
        d(&up.join("opq"));
        w(&l.join("opq/old"), "old");
        w(&up.join("opq/new"), "new");
        make_opaque(fmt, &up.join("opq"));
    }) else {
        return;
    };
    u.mount();
    assert_eq!(read(&u.p("same")), "upper");
    assert_eq!(list(&u.p("mixed")), ["l", "u"]);
    assert!(lstat(&u.p("fileover")).is_file());
    assert_eq!(list(&u.p("dirover")), ["x"]);
    assert_gone(&u.p("gone"));
    assert_eq!(list(&u.p("opq")), ["new"]);
    assert_gone(&u.p("opq/old"));
    assert_eq!(
        list(&u.p("")),
        ["dirover", "fileover", "mixed", "opq", "same"]
    );
}

// ---------------------------------------------------------------- rename

#[test]
fn rename_of_upper_file_within_dir() {
    let Some(u) = Union::standard("rename_of_upper_file_within_dir", Fmt::Aufs) else {
        return;
    };
    fs::write(u.p("n1"), "n").unwrap();
    let ino = lstat(&u.p("n1")).ino();
    fs::rename(u.p("n1"), u.p("n2")).unwrap();
    assert_gone(&u.p("n1"));
    assert_eq!(read(&u.p("n2")), "n");
    assert_eq!(lstat(&u.p("n2")).ino(), ino, "rename keeps st_ino");
    assert_eq!(read(&u.up("n2")), "n");
    assert_gone(&u.up("n1"));
}

fn rename_of_lower_file_across_dirs(fmt: Fmt, test: &str) {
    let Some(u) = Union::standard(test, fmt) else {
        return;
    };
    let ino = lstat(&u.p("dir/a")).ino();
    fs::rename(u.p("dir/a"), u.p("empty/a")).unwrap();
    assert_gone(&u.p("dir/a"));
    assert_eq!(read(&u.p("empty/a")), "a\n");
    assert_eq!(lstat(&u.p("empty/a")).ino(), ino, "rename keeps st_ino");
    assert_eq!(list(&u.p("dir")), ["b", "sub"]);
    assert_eq!(list(&u.p("empty")), ["a"]);
    u.assert_whiteout("dir/a");
    assert_eq!(read(&u.up("empty/a")), "a\n");
    fs::rename(u.p("file"), u.p("renamed")).unwrap();
    assert_eq!(read(&u.p("renamed")), "lower file\n");
    u.assert_whiteout("file");
}

#[test]
fn rename_over_existing_lower_file() {
    let Some(u) = Union::standard("rename_over_existing_lower_file", Fmt::Aufs) else {
        return;
    };
    fs::rename(u.p("dir/a"), u.p("dir/b")).unwrap();
    assert_eq!(read(&u.p("dir/b")), "a\n");
    assert_eq!(list(&u.p("dir")), ["b", "sub"]);
    fs::rename(u.p("dir/b"), u.p("file")).unwrap();
    assert_eq!(read(&u.p("file")), "a\n");
    assert_gone(&u.p("dir/b"));
}

fn rename_of_lower_dir_with_content(fmt: Fmt, test: &str) {
    let Some(mut u) = Union::standard(test, fmt) else {
        return;
    };
    let want = snapshot(&u.p("dir"));
    let ino = lstat(&u.p("dir")).ino();
    fs::rename(u.p("dir"), u.p("moved")).expect("rename of a lower dir (no EXDEV)");
    assert_gone(&u.p("dir"));
    let got = snapshot(&u.p("moved"));
    assert!(
        tree::diff(&want, &got).is_empty(),
        "moved tree:\n{}",
        tree::diff(&want, &got).join("\n")
    );
    assert_eq!(
        lstat(&u.p("moved")).ino(),
        ino,
        "rename keeps the dir's st_ino"
    );
    let root = list(&u.p(""));
    assert!(
        root.contains(&"moved".into()) && !root.contains(&"dir".into()),
        "root: {root:?}"
    );
    fs::write(u.p("moved/sub/new"), "n").unwrap();
    assert_eq!(list(&u.p("moved/sub")), ["deep", "new"]);
    fs::rename(u.p("odir"), u.p("empty/odir")).expect("rename of a lower dir into another");
    assert_eq!(read(&u.p("empty/odir/inner")), "inner\n");
    u.remount();
    assert_gone(&u.p("dir"));
    assert_gone(&u.p("odir"));
    assert_eq!(read(&u.p("moved/sub/deep")), "deep\n", "after remount");
    assert_eq!(list(&u.p("moved")), ["a", "b", "sub"], "after remount");
    assert_eq!(list(&u.p("empty/odir")), ["inner"], "after remount");
    // And back again: the lower's `dir` must not show through the
    // moved one (a deleted entry stays deleted).
    fs::remove_file(u.p("moved/a")).unwrap();
    fs::rename(u.p("moved"), u.p("dir")).unwrap();
    assert_eq!(list(&u.p("dir")), ["b", "sub"]);
    assert_eq!(list(&u.p("dir/sub")), ["deep", "new"]);
}

/// Chains of renames over lower names, many renames out and back (with a
/// remount between), and a dir moved into another and back
/// (unionmount-testsuite's rename-mass and rename-move-dir).
#[test]
fn rename_chains_and_mass_renames() {
    let Some(mut u) = Union::build(
        "rename_chains_and_mass_renames",
        Layout::two(Fmt::Aufs),
        |l| {
            standard_tree(&l[0]);
            fs::create_dir(l[0].join("mass")).unwrap();
            for i in 0..200 {
                fs::write(l[0].join(format!("mass/m{i}")), format!("m{i}")).unwrap();
            }
        },
    ) else {
        return;
    };
    fs::rename(u.p("dir/a"), u.p("dir/tmp")).unwrap();
    fs::rename(u.p("dir/b"), u.p("dir/a")).unwrap();
    fs::rename(u.p("dir/tmp"), u.p("dir/b")).unwrap();
    assert_eq!(
        (read(&u.p("dir/a")), read(&u.p("dir/b"))),
        ("b\n".into(), "a\n".into())
    );
    assert_eq!(list(&u.p("dir")), ["a", "b", "sub"]);
    for i in 0..200 {
        fs::rename(u.p(&format!("mass/m{i}")), u.p(&format!("mass/n{i}"))).unwrap();
    }
    u.remount();
    for i in 0..200 {
        fs::rename(u.p(&format!("mass/n{i}")), u.p(&format!("mass/m{i}"))).unwrap();
    }
    let mut want: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(list(&u.p("mass")), want);
    assert_eq!(read(&u.p("mass/m137")), "m137");
    fs::rename(u.p("dir"), u.p("odir/dir")).unwrap();
    assert_eq!(list(&u.p("odir/dir/sub")), ["deep"]);
    u.remount();
    fs::rename(u.p("odir/dir"), u.p("dir")).unwrap();
    assert_eq!(list(&u.p("dir")), ["a", "b", "sub"]);
    assert_eq!(list(&u.p("odir")), ["inner"]);
    assert_eq!(read(&u.p("dir/sub/deep")), "deep\n");
    fs::rename(u.p("hard1"), u.p("dir/hard1")).unwrap();
    assert_eq!(
        (read(&u.p("dir/hard1")), read(&u.p("hard2"))),
        ("hard\n".into(), "hard\n".into())
    );
}

#[test]
fn rename_noreplace() {
    let Some(u) = Union::standard("rename_noreplace", Fmt::Aufs) else {
        return;
    };
    let r = |a: &str, b: &str| {
        rustix::fs::renameat_with(CWD, u.p(a), CWD, u.p(b), RenameFlags::NOREPLACE)
    };
    assert_errno(
        r("dir/a", "dir/b"),
        Errno::EXIST,
        "RENAME_NOREPLACE onto a lower file",
    );
    assert_errno(
        r("empty", "dir"),
        Errno::EXIST,
        "RENAME_NOREPLACE onto a lower dir",
    );
    assert_eq!(read(&u.p("dir/a")), "a\n");
    assert_eq!(read(&u.p("dir/b")), "b\n");
    fs::remove_file(u.p("file")).unwrap();
    r("dir/a", "file").expect("RENAME_NOREPLACE onto a whited-out name");
    assert_eq!(read(&u.p("file")), "a\n");
}

#[test]
fn rename_exchange_swaps_lower_entries() {
    let Some(u) = Union::standard("rename_exchange_swaps_lower_entries", Fmt::Aufs) else {
        return;
    };
    rustix::fs::renameat_with(CWD, u.p("dir/a"), CWD, u.p("dir/b"), RenameFlags::EXCHANGE)
        .expect("RENAME_EXCHANGE of two lower files");
    assert_eq!(read(&u.p("dir/a")), "b\n");
    assert_eq!(read(&u.p("dir/b")), "a\n");
    rustix::fs::renameat_with(CWD, u.p("file"), CWD, u.p("odir"), RenameFlags::EXCHANGE)
        .expect("RENAME_EXCHANGE of a lower file and a lower dir");
    assert_eq!(read(&u.p("odir")), "lower file\n");
    assert_eq!(list(&u.p("file")), ["inner"]);
}

#[test]
fn rename_dir_over_nonempty_dir_is_enotempty() {
    let Some(u) = Union::standard("rename_dir_over_nonempty_dir_is_enotempty", Fmt::Aufs) else {
        return;
    };
    // POSIX allows EEXIST too; Linux says ENOTEMPTY.
    let want = [Errno::NOTEMPTY, Errno::EXIST];
    assert_errno_any(
        fs::rename(u.p("empty"), u.p("dir")),
        &want,
        "rename dir over lower non-empty dir",
    );
    fs::create_dir(u.p("n")).unwrap();
    fs::write(u.p("n/f"), "").unwrap();
    assert_errno_any(
        fs::rename(u.p("empty"), u.p("n")),
        &want,
        "rename dir over upper non-empty dir",
    );
    assert_eq!(list(&u.p("dir")), ["a", "b", "sub"]);
}

fn rename_dir_over_dir_emptied_by_whiteouts(fmt: Fmt, test: &str) {
    let Some(mut u) = Union::standard(test, fmt) else {
        return;
    };
    for f in ["dir/a", "dir/b", "dir/sub/deep"] {
        fs::remove_file(u.p(f)).unwrap();
    }
    fs::remove_dir(u.p("dir/sub")).unwrap();
    fs::create_dir(u.p("src")).unwrap();
    fs::write(u.p("src/f"), "f").unwrap();
    fs::rename(u.p("src"), u.p("dir")).expect("rename over a dir holding only whiteouts");
    assert_eq!(list(&u.p("dir")), ["f"], "lower entries must not come back");
    fs::rename(u.p("odir"), u.p("empty")).expect("rename a lower dir over an empty lower dir");
    assert_eq!(list(&u.p("empty")), ["inner"]);
    u.remount();
    assert_eq!(list(&u.p("dir")), ["f"], "after remount");
    assert_eq!(list(&u.p("empty")), ["inner"], "after remount");
}

#[test]
fn rename_errors() {
    let Some(u) = Union::standard("rename_errors", Fmt::Aufs) else {
        return;
    };
    assert_errno(
        fs::rename(u.p("dir"), u.p("file")),
        Errno::NOTDIR,
        "rename dir over file",
    );
    assert_errno(
        fs::rename(u.p("file"), u.p("dir")),
        Errno::ISDIR,
        "rename file over dir",
    );
    assert_errno(
        fs::rename(u.p("dir"), u.p("dir/sub/x")),
        Errno::INVAL,
        "rename into own subdir",
    );
    assert_errno(
        fs::rename(u.p("nope"), u.p("x")),
        Errno::NOENT,
        "rename of nothing",
    );
    assert_errno(
        fs::rename(u.p("file"), u.p("nope/x")),
        Errno::NOENT,
        "rename into missing dir",
    );
    assert_eq!(list(&u.p("dir")), ["a", "b", "sub"]);
    assert_eq!(read(&u.p("file")), "lower file\n");
}

/// POSIX: renaming one name of a file onto another name of the same file
/// does nothing.
#[test]
fn rename_onto_own_hardlink_is_a_noop() {
    let Some(u) = Union::standard("rename_onto_own_hardlink_is_a_noop", Fmt::Aufs) else {
        return;
    };
    fs::write(u.p("h1"), "h").unwrap();
    fs::hard_link(u.p("h1"), u.p("h2")).unwrap();
    fs::rename(u.p("h1"), u.p("h2")).unwrap();
    assert_eq!(read(&u.p("h1")), "h");
    assert_eq!(read(&u.p("h2")), "h");
}

// ---------------------------------------------------------------- links and special files

#[test]
fn hardlink_in_union_counts_and_shares_inode() {
    let Some(u) = Union::standard("hardlink_in_union_counts_and_shares_inode", Fmt::Aufs) else {
        return;
    };
    fs::write(u.p("h1"), "h").unwrap();
    fs::hard_link(u.p("h1"), u.p("dir/h2")).unwrap();
    let (a, b) = (lstat(&u.p("h1")), lstat(&u.p("dir/h2")));
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        lstat(&u.up("h1")).ino(),
        lstat(&u.up("dir/h2")).ino(),
        "upper holds one inode"
    );
    fs::write(u.p("h1"), "changed").unwrap();
    assert_eq!(read(&u.p("dir/h2")), "changed");
    fs::remove_file(u.p("h1")).unwrap();
    assert_eq!(lstat(&u.p("dir/h2")).nlink(), 1);
    assert_errno(
        fs::hard_link(u.p("dir"), u.p("dl")),
        Errno::PERM,
        "link of a dir",
    );
    assert_errno(
        fs::hard_link(u.p("dir/h2"), u.p("file")),
        Errno::EXIST,
        "link onto a lower name",
    );
    assert_errno(
        fs::hard_link(u.p("nope"), u.p("x")),
        Errno::NOENT,
        "link of nothing",
    );
}

#[test]
fn hardlink_of_lower_file_copies_up() {
    let Some(u) = Union::standard("hardlink_of_lower_file_copies_up", Fmt::Aufs) else {
        return;
    };
    let ino = lstat(&u.p("file")).ino();
    fs::hard_link(u.p("file"), u.p("dir/flink")).unwrap();
    let (a, b) = (lstat(&u.p("file")), lstat(&u.p("dir/flink")));
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
    assert_eq!(
        (a.ino(), b.ino()),
        (ino, ino),
        "both names keep the file's st_ino"
    );
    assert_eq!(read(&u.p("dir/flink")), "lower file\n");
    append(&u.p("dir/flink"), b"+");
    assert_eq!(read(&u.p("file")), "lower file\n+");
    assert_eq!(lstat(&u.up("file")).ino(), lstat(&u.up("dir/flink")).ino());
}

#[test]
fn lower_hardlinks_share_an_inode() {
    let Some(u) = Union::standard("lower_hardlinks_share_an_inode", Fmt::Aufs) else {
        return;
    };
    let (a, b) = (lstat(&u.p("hard1")), lstat(&u.p("hard2")));
    assert_eq!(a.ino(), b.ino());
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
}

/// link(2) of a symlink links the symlink itself (unionmount's
/// hard-link-sym).
#[test]
fn hardlink_of_lower_symlink() {
    let Some(u) = Union::standard("hardlink_of_lower_symlink", Fmt::Aufs) else {
        return;
    };
    rustix::fs::linkat(CWD, u.p("link"), CWD, u.p("link2"), AtFlags::empty()).unwrap();
    let (a, b) = (lstat(&u.p("link")), lstat(&u.p("link2")));
    assert!(b.file_type().is_symlink());
    assert_eq!(fs::read_link(u.p("link2")).unwrap(), Path::new("file"));
    assert_eq!(a.ino(), b.ino());
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
    assert_eq!(lstat(&u.p("file")).nlink(), 1, "the target is not linked");
}

#[test]
fn symlink_and_readlink() {
    let Some(u) = Union::standard("symlink_and_readlink", Fmt::Aufs) else {
        return;
    };
    assert_eq!(fs::read_link(u.p("link")).unwrap(), Path::new("file"));
    assert_eq!(read(&u.p("link")), "lower file\n");
    assert!(lstat(&u.p("dangling")).file_type().is_symlink());
    std::os::unix::fs::symlink("dir/a", u.p("s")).unwrap();
    assert_eq!(fs::read_link(u.p("s")).unwrap(), Path::new("dir/a"));
    assert_eq!(read(&u.p("s")), "a\n");
    assert_eq!(
        fs::read_link(u.up("s")).unwrap(),
        Path::new("dir/a"),
        "upper symlink"
    );
    let long = "t/".repeat(2000) + "end";
    std::os::unix::fs::symlink(&long, u.p("long")).expect("symlink with a 4003-byte target");
    assert_eq!(fs::read_link(u.p("long")).unwrap(), Path::new(&long));
    assert_eq!(
        lstat(&u.p("long")).len(),
        long.len() as u64,
        "symlink st_size"
    );
    assert_errno(
        std::os::unix::fs::symlink("x", u.p("file")),
        Errno::EXIST,
        "symlink over a lower file",
    );
    assert_errno(
        fs::read_link(u.p("file")),
        Errno::INVAL,
        "readlink of a file",
    );
}

/// The kernel caches symlink targets: a symlink replaced (removed and made
/// again, renamed over, or a lower one replaced in the upper branch) shows
/// its new target at once, even when the upper file system reuses the
/// removed symlink's inode.
#[test]
fn replaced_symlinks_show_their_new_target() {
    let Some(u) = Union::standard("replaced_symlinks_show_their_new_target", Fmt::Overlay) else {
        return;
    };
    use std::os::unix::fs::symlink;
    assert_eq!(fs::read_link(u.p("link")).unwrap(), Path::new("file"));
    fs::remove_file(u.p("link")).unwrap();
    symlink("dir/a", u.p("link")).unwrap();
    assert_eq!(fs::read_link(u.p("link")).unwrap(), Path::new("dir/a"));
    assert_eq!(read(&u.p("link")), "a\n");
    for i in 0..50 {
        let target = format!("target-{i}");
        fs::remove_file(u.p("s"))
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .unwrap();
        symlink(&target, u.p("s")).unwrap();
        assert_eq!(fs::read_link(u.p("s")).unwrap(), Path::new(&target));
        symlink(format!("renamed-{i}"), u.p("t")).unwrap();
        fs::rename(u.p("t"), u.p("s")).unwrap();
        assert_eq!(
            fs::read_link(u.p("s")).unwrap(),
            Path::new(&format!("renamed-{i}"))
        );
    }
}

/// Closing does not go through the server (it answers no flush), and
/// nothing written before a close is lost: each write is read back by a
/// fresh open, and an error on close never shows.
#[test]
fn data_is_there_after_every_close() {
    let Some(u) = Union::standard("data_is_there_after_every_close", Fmt::Aufs) else {
        return;
    };
    for i in 0..200 {
        let name = u.p(&format!("f{}", i % 7));
        let body = format!("round {i}\n").repeat(i % 13 + 1);
        let f = fs::File::create(&name).unwrap();
        (&f).write_all(body.as_bytes()).unwrap();
        drop(f);
        assert_eq!(read(&name), body);
    }
    // A lower file written through one open, closed, read through another.
    append(&u.p("file"), b"more\n");
    assert_eq!(read(&u.p("file")), "lower file\nmore\n");
}

#[test]
fn lchown_changes_the_symlink_only() {
    let Some(u) = Union::standard("lchown_changes_the_symlink_only", Fmt::Aufs) else {
        return;
    };
    rustix::fs::chownat(
        CWD,
        u.p("link"),
        Some(uid(4321)),
        Some(gid(8765)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let m = lstat(&u.p("link"));
    assert_eq!((m.uid(), m.gid()), (4321, 8765));
    assert!(m.file_type().is_symlink());
    assert_eq!(lstat(&u.p("file")).uid(), 0, "target untouched");
    assert_eq!(lstat(&u.up("link")).uid(), 4321);
    assert_eq!(fs::read_link(u.p("link")).unwrap(), Path::new("file"));
}

#[test]
fn mkfifo_through_the_union_carries_data() {
    let Some(u) = Union::standard("mkfifo_through_the_union_carries_data", Fmt::Aufs) else {
        return;
    };
    rustix::fs::mknodat(
        CWD,
        u.p("dir/pipe"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let m = lstat(&u.p("dir/pipe"));
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert!(
        lstat(&u.up("dir/pipe")).file_type().is_fifo(),
        "upper holds a fifo"
    );
    assert!(lstat(&u.p("fifo")).file_type().is_fifo(), "lower fifo");
    let path = u.p("dir/pipe");
    let writer = std::thread::spawn(move || fs::write(path, "through the pipe"));
    assert_eq!(read(&u.p("dir/pipe")), "through the pipe");
    writer.join().unwrap().unwrap();
}

/// A character device 0/0 is a whiteout in overlay format: making one is
/// EPERM there (as kernel overlayfs answers) and leaves nothing in the
/// upper branch; in aufs format it is an ordinary device.
#[test]
fn mknod_of_a_whiteout_device() {
    let make = |u: &Union| mknod(&u.p("zero"), FileType::CharacterDevice, 0);
    let Some(u) = Union::standard("mknod_of_a_whiteout_device", Fmt::Overlay) else {
        return;
    };
    assert_errno(make(&u), Errno::PERM, "mknod c 0 0, overlay format");
    assert_gone(&u.p("zero"));
    assert!(
        fs::symlink_metadata(u.up("zero")).is_err(),
        "upper untouched"
    );
    drop(u);
    let Some(u) = Union::standard("mknod_of_a_whiteout_device", Fmt::Aufs) else {
        return;
    };
    make(&u).unwrap();
    for p in [u.p("zero"), u.up("zero")] {
        let m = lstat(&p);
        assert!(
            m.file_type().is_char_device() && m.rdev() == 0,
            "{}",
            p.display()
        );
    }
}

#[test]
fn mknod_device_nodes() {
    let Some(u) = Union::standard("mknod_device_nodes", Fmt::Aufs) else {
        return;
    };
    let dev = rustix::fs::makedev(1, 7);
    mknod(&u.p("full"), FileType::CharacterDevice, dev).unwrap();
    mknod(
        &u.p("blk"),
        FileType::BlockDevice,
        rustix::fs::makedev(7, 200),
    )
    .unwrap();
    for p in [u.p("full"), u.up("full")] {
        let m = lstat(&p);
        assert!(m.file_type().is_char_device(), "{}", p.display());
        assert_eq!(m.rdev(), dev, "{}", p.display());
    }
    assert!(lstat(&u.p("blk")).file_type().is_block_device());
    assert_eq!(lstat(&u.p("blk")).rdev(), rustix::fs::makedev(7, 200));
    let m = lstat(&u.p("null"));
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 3), "lower device's rdev");
    assert_errno(
        rustix::fs::mknodat(
            CWD,
            u.p("file"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        ),
        Errno::EXIST,
        "mknod over a lower file",
    );
}

#[test]
fn unix_socket_binds_and_connects() {
    let Some(u) = Union::standard("unix_socket_binds_and_connects", Fmt::Aufs) else {
        return;
    };
    let l = UnixListener::bind(u.p("dir/sock")).expect("bind in the union");
    assert!(lstat(&u.p("dir/sock")).file_type().is_socket());
    assert!(
        lstat(&u.up("dir/sock")).file_type().is_socket(),
        "upper holds the socket"
    );
    let mut c = UnixStream::connect(u.p("dir/sock")).expect("connect through the union");
    c.write_all(b"hi").unwrap();
    let (mut s, _) = l.accept().unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
}

// ---------------------------------------------------------------- xattrs

fn user_xattrs_of_lower_file_copy_up(fmt: Fmt, test: &str) {
    let Some(u) = Union::standard(test, fmt) else {
        return;
    };
    let p = u.p("xattr");
    assert_eq!(xattr(&p, "user.lower").as_deref(), Some(&b"lowerval"[..]));
    let mut names = xattr_names(&p).unwrap();
    names.sort();
    assert_eq!(names, ["user.lower", "user.other"]);
    assert_eq!(
        u.upper_list(""),
        Vec::<String>::new(),
        "reading xattrs copies nothing up"
    );
    rustix::fs::setxattr(&p, "user.new", b"v", XattrFlags::empty()).unwrap();
    assert_eq!(xattr(&p, "user.new").as_deref(), Some(&b"v"[..]));
    rustix::fs::removexattr(&p, "user.other").unwrap();
    assert_errno(
        rustix::fs::getxattr(&p, "user.other", &mut [0u8; 16][..]),
        Errno::NODATA,
        "removed xattr",
    );
    let mut names = xattr_names(&p).unwrap();
    names.sort();
    assert_eq!(names, ["user.lower", "user.new"]);
    let mut up_names = xattr_names(&u.up("xattr")).unwrap();
    up_names.retain(|n| n.starts_with("user."));
    up_names.sort();
    assert_eq!(
        up_names,
        ["user.lower", "user.new"],
        "upper copy's user xattrs"
    );
    rustix::fs::setxattr(u.p("dir"), "user.d", b"dir", XattrFlags::empty()).unwrap();
    assert_eq!(xattr(&u.up("dir"), "user.d").as_deref(), Some(&b"dir"[..]));
    assert_eq!(list(&u.p("dir")), ["a", "b", "sub"]);
}

#[test]
fn xattr_flags_and_sizes() {
    let Some(u) = Union::standard("xattr_flags_and_sizes", Fmt::Aufs) else {
        return;
    };
    let p = u.p("xattr");
    assert_errno(
        rustix::fs::setxattr(&p, "user.lower", b"x", XattrFlags::CREATE),
        Errno::EXIST,
        "XATTR_CREATE on existing",
    );
    assert_errno(
        rustix::fs::setxattr(&p, "user.none", b"x", XattrFlags::REPLACE),
        Errno::NODATA,
        "XATTR_REPLACE on missing",
    );
    assert_errno(
        rustix::fs::getxattr(&p, "user.none", &mut [0u8; 16][..]),
        Errno::NODATA,
        "getxattr missing",
    );
    assert_errno(
        rustix::fs::removexattr(&p, "user.none"),
        Errno::NODATA,
        "removexattr missing",
    );
    assert_eq!(
        rustix::fs::getxattr_query(&p, "user.lower").unwrap(),
        8,
        "size query"
    );
    assert_errno(
        rustix::fs::getxattr(&p, "user.lower", &mut [0u8; 3][..]),
        Errno::RANGE,
        "buffer too small",
    );
    rustix::fs::setxattr(&p, "user.lower", b"replaced", XattrFlags::REPLACE).unwrap();
    rustix::fs::setxattr(&p, "user.empty", b"", XattrFlags::CREATE).unwrap();
    assert_eq!(xattr(&p, "user.empty").as_deref(), Some(&b""[..]));
    let big = vec![b'v'; 2000];
    rustix::fs::setxattr(&p, "user.big", &big, XattrFlags::empty()).unwrap();
    assert_eq!(xattr(&p, "user.big"), Some(big));
    let need: usize = xattr_names(&p).unwrap().iter().map(|n| n.len() + 1).sum();
    assert!(
        rustix::fs::listxattr_query(&p).unwrap() >= need,
        "listxattr size query too small"
    );
}

/// overlayfs keeps its own bookkeeping in `trusted.overlay.*`; a union in
/// that format must never show it.
#[test]
fn overlay_private_xattrs_are_hidden() {
    let Some(mut u) = Union::standard("overlay_private_xattrs_are_hidden", Fmt::Overlay) else {
        return;
    };
    fs::remove_dir_all(u.p("dir")).unwrap();
    fs::create_dir(u.p("dir")).unwrap();
    assert!(u.is_opaque("dir"));
    let names = xattr_names(&u.p("dir")).unwrap();
    assert!(
        !names.iter().any(|n| n.starts_with("trusted.overlay.")),
        "listxattr shows {names:?}"
    );
    assert_errno(
        rustix::fs::getxattr(u.p("dir"), "trusted.overlay.opaque", &mut [0u8; 16][..]),
        Errno::NODATA,
        "getxattr of the opaque marker",
    );
    // Setting one through the union may fail, or be stored escaped (as
    // overlayfs does since Linux 6.7); it must never mark the dir opaque.
    let _ = rustix::fs::setxattr(
        u.p("odir"),
        "trusted.overlay.opaque",
        b"y",
        XattrFlags::empty(),
    );
    u.remount();
    assert_eq!(
        list(&u.p("odir")),
        ["inner"],
        "a merged dir after setxattr trusted.overlay.opaque"
    );
    rustix::fs::setxattr(u.p("file"), "trusted.mine", b"t", XattrFlags::empty())
        .expect("other trusted xattrs work for root");
    assert_eq!(
        xattr(&u.p("file"), "trusted.mine").as_deref(),
        Some(&b"t"[..])
    );
}

// ---------------------------------------------------------------- stat

#[test]
fn st_dev_is_the_unions_own() {
    let Some(u) = Union::standard("st_dev_is_the_unions_own", Fmt::Aufs) else {
        return;
    };
    fs::write(u.p("new"), "n").unwrap();
    fs::set_permissions(u.p("dir/a"), fs::Permissions::from_mode(0o600)).unwrap();
    let dev = lstat(&u.mnt).dev();
    assert_ne!(
        dev,
        lstat(u.root()).dev(),
        "union reports the backing st_dev"
    );
    for rel in [
        "",
        "file",
        "dir",
        "dir/a",
        "dir/sub/deep",
        "new",
        "link",
        "fifo",
        "null",
        "empty",
    ] {
        assert_eq!(lstat(&u.p(rel)).dev(), dev, "st_dev of {rel:?}");
    }
    assert_eq!(
        File::open(u.p("file")).unwrap().metadata().unwrap().dev(),
        dev,
        "fstat st_dev"
    );
}

fn st_ino_is_stable_across_copy_up(fmt: Fmt, test: &str) {
    let Some(u) = Union::standard(test, fmt) else {
        return;
    };
    let names = [
        "file",
        "dir",
        "dir/sub",
        "link",
        "fifo",
        "null",
        "owned",
        "dir/sub/deep",
    ];
    let before: Vec<u64> = names.iter().map(|n| lstat(&u.p(n)).ino()).collect();
    for n in ["file", "fifo", "null"] {
        fs::set_permissions(u.p(n), fs::Permissions::from_mode(0o600)).unwrap();
    }
    rustix::fs::chownat(
        CWD,
        u.p("link"),
        Some(uid(1)),
        None,
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    append(&u.p("owned"), b"+");
    fs::write(u.p("dir/sub/new"), "").unwrap(); // copies up dir and dir/sub
    rustix::fs::setxattr(u.p("dir/sub/deep"), "user.x", b"", XattrFlags::empty()).unwrap();
    let after: Vec<u64> = names.iter().map(|n| lstat(&u.p(n)).ino()).collect();
    assert_eq!(before, after, "st_ino of {names:?}");
    let f = File::open(u.p("file")).unwrap();
    assert_eq!(f.metadata().unwrap().ino(), before[0], "fstat st_ino");
}

/// overlayfs keeps a copied-up file's st_ino across remounts (its origin
/// xattr); a file never copied up keeps it trivially.
fn st_ino_survives_remount(fmt: Fmt, test: &str) {
    let Some(mut u) = Union::standard(test, fmt) else {
        return;
    };
    let names = ["file", "dir", "dir/a", "link"];
    let before: Vec<u64> = names.iter().map(|n| lstat(&u.p(n)).ino()).collect();
    fs::set_permissions(u.p("file"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(u.p("dir/new"), "").unwrap();
    u.remount();
    let after: Vec<u64> = names.iter().map(|n| lstat(&u.p(n)).ino()).collect();
    assert_eq!(
        before, after,
        "st_ino of {names:?} across copy-up and remount"
    );
}

#[test]
fn st_ino_is_unique_per_file() {
    let Some(u) = Union::standard("st_ino_is_unique_per_file", Fmt::Aufs) else {
        return;
    };
    fs::write(u.p("new"), "n").unwrap();
    fs::set_permissions(u.p("file"), fs::Permissions::from_mode(0o600)).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for p in std::iter::once(u.mnt.clone()).chain(walk(&u.mnt)) {
        let ino = lstat(&p).ino();
        let rel = p.strip_prefix(&u.mnt).unwrap().display().to_string();
        if let Some(other) = seen.insert(ino, rel.clone()) {
            let pair = [other.as_str(), rel.as_str()];
            assert!(
                pair == ["hard1", "hard2"] || pair == ["hard2", "hard1"],
                "st_ino {ino} shared by {pair:?}"
            );
        }
    }
}

#[test]
fn fstat_after_unlink_shows_nlink_zero() {
    let Some(u) = Union::standard("fstat_after_unlink_shows_nlink_zero", Fmt::Aufs) else {
        return;
    };
    fs::write(u.p("tmpf"), "still here").unwrap();
    let mut f = File::open(u.p("tmpf")).unwrap();
    fs::remove_file(u.p("tmpf")).unwrap();
    assert_eq!(f.metadata().expect("fstat after unlink").nlink(), 0);
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "still here", "read after unlink");
    assert_gone(&u.up("tmpf"));
    let mut f = File::open(u.p("file")).unwrap();
    fs::remove_file(u.p("file")).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(
        s, "lower file\n",
        "read of an unlinked lower file through an open fd"
    );
}

#[test]
fn statfs_reports_the_writable_branch() {
    let Some(u) = Union::standard("statfs_reports_the_writable_branch", Fmt::Aufs) else {
        return;
    };
    let got = rustix::fs::statvfs(&u.mnt).expect("statvfs of the union");
    let want = rustix::fs::statvfs(u.up("")).unwrap();
    assert_eq!(
        got.f_blocks * got.f_frsize,
        want.f_blocks * want.f_frsize,
        "size"
    );
    assert_eq!(got.f_namemax, 255);
    let f = File::open(u.p("file")).unwrap();
    let fgot = rustix::fs::fstatvfs(&f).expect("fstatvfs");
    assert_eq!(fgot.f_blocks * fgot.f_frsize, got.f_blocks * got.f_frsize);
}

// ---------------------------------------------------------------- names

#[test]
fn name_of_255_bytes_works() {
    let Some(u) = Union::standard("name_of_255_bytes_works", Fmt::Aufs) else {
        return;
    };
    let (a, b) = ("a".repeat(255), "b".repeat(255));
    fs::write(u.p(&a), "long").unwrap();
    assert_eq!(read(&u.p(&a)), "long");
    assert!(list(&u.p("")).contains(&a));
    fs::rename(u.p(&a), u.p(&format!("dir/{b}"))).unwrap();
    assert_eq!(read(&u.p(&format!("dir/{b}"))), "long");
    fs::create_dir(u.p(&a)).unwrap();
    fs::remove_dir(u.p(&a)).unwrap();
    fs::remove_file(u.p(&format!("dir/{b}"))).unwrap();
    assert_eq!(list(&u.p("dir")), ["a", "b", "sub"]);
}

/// Every call that takes a name refuses one of 256 bytes (pjdfstest's
/// `*/02.t`), whether or not the name exists.
#[test]
fn name_of_256_bytes_is_enametoolong() {
    let Some(u) = Union::standard("name_of_256_bytes_is_enametoolong", Fmt::Aufs) else {
        return;
    };
    let long = u.p(&"x".repeat(256));
    let inner = u.p(&format!("dir/{}", "x".repeat(256)));
    let e = Errno::NAMETOOLONG;
    for p in [&long, &inner] {
        let s = p.display().to_string();
        let s = &s[s.len() - 20..];
        assert_errno(
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(p),
            e,
            &format!("open O_CREAT …{s}"),
        );
        assert_errno(File::open(p), e, &format!("open …{s}"));
        assert_errno(fs::create_dir(p), e, &format!("mkdir …{s}"));
        assert_errno(
            fs::set_permissions(p, fs::Permissions::from_mode(0o644)),
            e,
            "chmod",
        );
        assert_errno(
            rustix::fs::chownat(CWD, p, Some(uid(1)), None, AtFlags::empty()),
            e,
            "chown",
        );
        assert_errno(truncate_path(p, 0), e, "truncate");
        assert_errno(fs::hard_link(u.p("file"), p), e, "link to a long name");
        assert_errno(fs::hard_link(p, u.p("x")), e, "link from a long name");
        assert_errno(fs::rename(u.p("file"), p), e, "rename to a long name");
        assert_errno(fs::rename(p, u.p("x")), e, "rename from a long name");
        assert_errno(fs::remove_dir(p), e, "rmdir");
        assert_errno(fs::remove_file(p), e, "unlink");
        assert_errno(fs::symlink_metadata(p), e, "lstat");
        assert_errno(std::os::unix::fs::symlink("t", p), e, "symlink");
        assert_errno(
            rustix::fs::mknodat(CWD, p, FileType::Fifo, Mode::from_raw_mode(0o600), 0),
            e,
            "mkfifo",
        );
        assert_errno(set_times(p, ts(1, 0), ts(1, 0)), e, "utimensat");
    }
    assert_eq!(read(&u.p("file")), "lower file\n");
}

/// A lower name of 255 bytes can be deleted: overlay whiteouts carry the
/// name unchanged (aufs's `.wh.` prefix cannot fit, as in aufs itself).
#[test]
fn unlink_of_lower_name_of_255_bytes() {
    let long = "w".repeat(255);
    let Some(u) = Union::build(
        "unlink_of_lower_name_of_255_bytes",
        Layout::two(Fmt::Overlay),
        |l| {
            fs::write(l[0].join(&long), "w").unwrap();
        },
    ) else {
        return;
    };
    fs::remove_file(u.p(&long)).unwrap();
    assert_gone(&u.p(&long));
    u.assert_whiteout(&long);
}

/// The relative path, below a mount point of `mnt_len` bytes, that makes
/// an absolute path of exactly 4095 bytes (PATH_MAX minus the NUL): dirs
/// of 99-byte names, then a file name filling the rest.
fn path_of_4095(mnt_len: usize) -> (Vec<String>, String) {
    let mut left = 4095 - mnt_len - 1;
    let mut dirs = Vec::new();
    while left > 255 {
        dirs.push(format!("{:d<99}", dirs.len()));
        left -= 100;
    }
    let file = "f".repeat(left);
    assert!(file.len() <= 255);
    (dirs, file)
}

/// Paths through the union are limited by the union's PATH_MAX, not by the
/// longer backing paths (the branches sit under a 400-byte prefix).
#[test]
fn path_near_path_max_works_beyond_the_backing_limit() {
    let layout = Layout {
        fmt: Fmt::Aufs,
        lowers: 1,
        upper: true,
        prefix: Some(format!("{}/{}", "p".repeat(200), "q".repeat(200))),
    };
    let Some(u) = Union::build(
        "path_near_path_max_works_beyond_the_backing_limit",
        layout,
        |_| {},
    ) else {
        return;
    };
    let (dirs, file) = path_of_4095(u.mnt.as_os_str().len());
    let mut p = u.mnt.clone();
    for d in &dirs {
        p.push(d);
        fs::create_dir(&p).unwrap_or_else(|e| {
            panic!(
                "mkdir at depth {} ({} bytes): {e}",
                dirs.len(),
                p.as_os_str().len()
            )
        });
    }
    p.push(&file);
    assert_eq!(p.as_os_str().len(), 4095);
    fs::write(&p, "deep").expect("create at 4095 bytes");
    assert_eq!(read(&p), "deep");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(lstat(&p).mode(), 0o100600);
    let mut p2 = p.clone();
    p2.set_file_name("g".repeat(file.len()));
    fs::rename(&p, &p2).unwrap();
    assert_eq!(list(p2.parent().unwrap()), ["g".repeat(file.len())]);
    let too_long = p2.with_file_name("g".repeat(file.len() + 1));
    assert_errno(
        fs::write(&too_long, ""),
        Errno::NAMETOOLONG,
        "create at 4096 bytes",
    );
    assert!(
        tree::snapshot(&u.up("")).len() > dirs.len(),
        "upper holds the deep tree"
    );
}

/// Copy-up of a deep lower file creates every parent in upper although
/// the backing paths pass PATH_MAX.
#[test]
fn deep_lower_file_copies_up_beyond_the_backing_limit() {
    let layout = Layout {
        fmt: Fmt::Overlay,
        lowers: 1,
        upper: true,
        prefix: Some(format!("{}/{}", "p".repeat(200), "q".repeat(200))),
    };
    let probe = tempfile::tempdir().unwrap();
    let mnt_len = probe.path().join("mnt").as_os_str().len();
    let (dirs, file) = path_of_4095(mnt_len);
    let (d2, f2) = (dirs.clone(), file.clone());
    let Some(u) = Union::build(
        "deep_lower_file_copies_up_beyond_the_backing_limit",
        layout,
        move |l| {
            let mut fd = rustix::fs::openat(
                CWD,
                &l[0],
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .unwrap();
            for d in &d2 {
                rustix::fs::mkdirat(&fd, d.as_str(), Mode::from_raw_mode(0o755)).unwrap();
                fd = rustix::fs::openat(
                    &fd,
                    d.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY,
                    Mode::empty(),
                )
                .unwrap();
            }
            let f = rustix::fs::openat(
                &fd,
                f2.as_str(),
                OFlags::WRONLY | OFlags::CREATE,
                Mode::from_raw_mode(0o644),
            )
            .unwrap();
            rustix::io::write(&f, b"deep lower").unwrap();
        },
    ) else {
        return;
    };
    assert_eq!(
        u.mnt.as_os_str().len(),
        mnt_len,
        "temp dirs of equal length"
    );
    let p = dirs
        .iter()
        .fold(u.mnt.clone(), |p, d| p.join(d))
        .join(&file);
    assert_eq!(read(&p), "deep lower");
    OpenOptions::new()
        .append(true)
        .open(&p)
        .expect("copy-up at depth")
        .write_all(b"+")
        .unwrap();
    assert_eq!(read(&p), "deep lower+");
    let up = tree::snapshot(&u.up(""));
    let rel = format!("{}/{file}", dirs.join("/"));
    assert_eq!(
        up.get(&rel).map(|n| n.data.as_str()),
        Some("\"deep lower+\""),
        "upper copy"
    );
    fs::remove_file(&p).unwrap();
    assert_gone(&p);
}

/// In aufs format `.wh.` names are the union's own: creating one through
/// the union must fail, or at least must not delete anything.
#[test]
fn aufs_whiteout_names_cannot_hide_files() {
    let Some(u) = Union::standard("aufs_whiteout_names_cannot_hide_files", Fmt::Aufs) else {
        return;
    };
    let made = [
        fs::write(u.p(".wh.file"), "").is_ok(),
        fs::create_dir(u.p("dir/.wh.a")).is_ok(),
        fs::write(u.p("dir/.wh..wh..opq"), "").is_ok(),
        fs::rename(u.p("hard1"), u.p(".wh.hard2")).is_ok(),
    ];
    assert_eq!(read(&u.p("file")), "lower file\n");
    assert_eq!(read(&u.p("hard2")), "hard\n");
    let d = list(&u.p("dir"));
    assert!(
        d.contains(&"a".to_string()) && d.contains(&"sub".to_string()),
        "dir lists {d:?} after {made:?}"
    );
}

// ---------------------------------------------------------------- concurrency

#[test]
fn eight_threads_create_write_read_and_unlink() {
    let Some(u) = Union::build(
        "eight_threads_create_write_read_and_unlink",
        Layout::two(Fmt::Aufs),
        |l| {
            fs::create_dir(l[0].join("c")).unwrap();
            for i in 0..64 {
                fs::write(l[0].join(format!("c/lower{i}")), format!("lower{i}")).unwrap();
            }
        },
    ) else {
        return;
    };
    let c = Arc::new(u.p("c"));
    let go = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (c, go) = (c.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                fs::create_dir(c.join(format!("d{t}"))).unwrap();
                for i in 0..100 {
                    let p = c.join(format!("t{t}-{i}"));
                    let data = format!("{t}-{i}-").repeat(100);
                    fs::write(&p, &data).unwrap();
                    assert_eq!(read(&p), data, "read back");
                    match i % 3 {
                        0 => fs::remove_file(&p).unwrap(),
                        1 => fs::rename(&p, c.join(format!("d{t}/{i}"))).unwrap(),
                        _ => {}
                    }
                }
                for i in (t..64).step_by(8) {
                    let p = c.join(format!("lower{i}"));
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
                    if i % 2 == 0 {
                        fs::remove_file(&p).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker panicked");
    }
    let mut want: Vec<String> = Vec::new();
    for t in 0..8 {
        want.push(format!("d{t}"));
        want.extend((0..100).filter(|i| i % 3 == 2).map(|i| format!("t{t}-{i}")));
        let mut inner: Vec<String> = (0..100)
            .filter(|i| i % 3 == 1)
            .map(|i| i.to_string())
            .collect();
        inner.sort();
        assert_eq!(list(&u.p(&format!("c/d{t}"))), inner);
        for i in (0..100).filter(|i| i % 3 == 1) {
            assert_eq!(
                read(&u.p(&format!("c/d{t}/{i}"))),
                format!("{t}-{i}-").repeat(100)
            );
        }
    }
    want.extend((0..64).filter(|i| i % 2 == 1).map(|i| format!("lower{i}")));
    want.sort();
    assert_eq!(list(&u.p("c")), want);
    for i in (0..64).filter(|i| i % 2 == 1) {
        assert_eq!(lstat(&u.p(&format!("c/lower{i}"))).mode() & 0o777, 0o600);
        assert_eq!(read(&u.up(&format!("c/lower{i}"))), format!("lower{i}"));
    }
}

/// Eight writers open the same lower file at once: there must be one
/// copy-up, holding every write.
#[test]
fn concurrent_copy_up_of_one_lower_file() {
    let Some(u) = Union::standard("concurrent_copy_up_of_one_lower_file", Fmt::Aufs) else {
        return;
    };
    let big = Arc::new(u.p("big"));
    let go = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let (big, go) = (big.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                let f = OpenOptions::new().write(true).open(&*big).unwrap();
                f.write_all_at(&[b'A' + t], t as u64 * 10_000).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer panicked");
    }
    let mut want = big_content();
    for t in 0..8u8 {
        want[t as usize * 10_000] = b'A' + t;
    }
    let got = fs::read(u.p("big")).unwrap();
    let lost: Vec<usize> = (0..8)
        .filter(|t| got[t * 10_000] != want[t * 10_000])
        .collect();
    assert!(lost.is_empty(), "writes of threads {lost:?} lost");
    assert_eq!(got, want);
    assert_eq!(fs::read(u.up("big")).unwrap(), want);
}

/// Eight threads create files in the same deep lower-only directory at
/// once: every parent is copied up once, and no create fails.
#[test]
fn concurrent_copy_up_of_shared_parents() {
    let Some(u) = Union::build(
        "concurrent_copy_up_of_shared_parents",
        Layout::two(Fmt::Overlay),
        |l| {
            fs::create_dir_all(l[0].join("t/a/b/c/d")).unwrap();
            fs::write(l[0].join("t/a/b/c/d/lower"), "l").unwrap();
        },
    ) else {
        return;
    };
    let d = Arc::new(u.p("t/a/b/c/d"));
    let go = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (d, go) = (d.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                fs::write(d.join(format!("n{t}")), t.to_string())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .expect("creator panicked")
            .expect("create under shared lower parents");
    }
    let mut want = vec!["lower".to_string()];
    want.extend((0..8).map(|t| format!("n{t}")));
    assert_eq!(list(&u.p("t/a/b/c/d")), want);
    assert_eq!(
        list(&u.up("t/a/b/c/d")).len(),
        8,
        "upper holds the 8 new files"
    );
}

// ---------------------------------------------------------------- read-only

fn read_only_union_gives_erofs(fmt: Fmt, test: &str) {
    let layout = Layout {
        fmt,
        lowers: 2,
        upper: false,
        prefix: None,
    };
    let Some(u) = Union::build(test, layout, |l| standard_tree(&l[1])) else {
        return;
    };
    assert_eq!(read(&u.p("file")), "lower file\n");
    assert_eq!(list(&u.p("dir")), ["a", "b", "sub"]);
    let e = Errno::ROFS;
    assert_errno(File::create(u.p("new")), e, "create");
    assert_errno(
        OpenOptions::new().write(true).open(u.p("file")),
        e,
        "open O_WRONLY",
    );
    assert_errno(
        OpenOptions::new().append(true).open(u.p("file")),
        e,
        "open O_APPEND",
    );
    assert_errno(fs::create_dir(u.p("d")), e, "mkdir");
    assert_errno(fs::remove_file(u.p("file")), e, "unlink");
    assert_errno(fs::remove_dir(u.p("empty")), e, "rmdir");
    assert_errno(fs::rename(u.p("file"), u.p("f2")), e, "rename");
    assert_errno(
        fs::set_permissions(u.p("file"), fs::Permissions::from_mode(0o600)),
        e,
        "chmod",
    );
    assert_errno(
        rustix::fs::chownat(CWD, u.p("file"), Some(uid(1)), None, AtFlags::empty()),
        e,
        "chown",
    );
    assert_errno(truncate_path(&u.p("file"), 0), e, "truncate");
    assert_errno(set_times(&u.p("file"), ts(1, 0), ts(1, 0)), e, "utimensat");
    assert_errno(
        rustix::fs::setxattr(u.p("file"), "user.x", b"", XattrFlags::empty()),
        e,
        "setxattr",
    );
    assert_errno(
        rustix::fs::removexattr(u.p("xattr"), "user.lower"),
        e,
        "removexattr",
    );
    assert_errno(std::os::unix::fs::symlink("x", u.p("s")), e, "symlink");
    assert_errno(fs::hard_link(u.p("file"), u.p("h")), e, "link");
    assert_errno(
        rustix::fs::mknodat(CWD, u.p("p"), FileType::Fifo, Mode::from_raw_mode(0o600), 0),
        e,
        "mkfifo",
    );
    assert_errno(
        rustix::fs::access(u.p("file"), rustix::fs::Access::WRITE_OK),
        e,
        "access(W_OK)",
    );
    let flags = rustix::fs::statvfs(&u.mnt).unwrap().f_flag;
    assert!(
        flags.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        "statvfs f_flag {flags:?} lacks ST_RDONLY"
    );
    // EROFS is for files and dirs: special files still open for writing.
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(u.p("fifo"))
        .expect("open a fifo O_RDWR");
    OpenOptions::new()
        .write(true)
        .open(u.p("null"))
        .expect("open a char device O_WRONLY");
}

// ---------------------------------------------------------------- the kernel's overlayfs

/// The changes the cross-checks make, through whichever mount is at `m`.
/// `dir_rename`: rename a lower dir (the kernel without redirect_dir says
/// EXDEV, so only the union does it).
fn mutate(m: &Path, dir_rename: bool) {
    let p = |r: &str| m.join(r);
    fs::remove_file(p("file")).unwrap();
    fs::remove_dir(p("empty")).unwrap();
    fs::remove_dir_all(p("dir")).unwrap();
    fs::create_dir(p("dir")).unwrap();
    fs::write(p("dir/new"), "new in opaque dir").unwrap();
    if dir_rename {
        fs::rename(p("odir"), p("renamed")).expect("rename of a lower dir");
        fs::write(p("renamed/added"), "added").unwrap();
    }
    fs::remove_file(p("locked/inner")).unwrap();
    fs::rename(p("big"), p("big-moved")).unwrap();
    fs::set_permissions(p("secret"), fs::Permissions::from_mode(0o640)).unwrap();
    rustix::fs::chownat(
        CWD,
        p("link"),
        Some(uid(42)),
        None,
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    append(&p("owned"), b"appended\n");
    fs::write(p("created"), "created\n").unwrap();
    fs::hard_link(p("created"), p("sticky/created2")).unwrap();
    std::os::unix::fs::symlink("created", p("newlink")).unwrap();
    rustix::fs::setxattr(p("xattr"), "user.new", b"v", XattrFlags::empty()).unwrap();
    rustix::fs::removexattr(p("xattr"), "user.other").unwrap();
    rustix::fs::mknodat(
        CWD,
        p("newfifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    fs::create_dir_all(p("newdir/a/b")).unwrap();
    fs::write(p("newdir/a/b/c"), "c").unwrap();
}

#[track_caller]
fn assert_same_tree(want: &tree::Tree, got: &tree::Tree, what: &str) {
    let d = tree::diff(want, got);
    assert!(d.is_empty(), "{what}:\n{}", d.join("\n"));
}

/// After the union (overlay format) has written its upper branch, the
/// kernel's overlayfs on the same branches shows the same tree.
#[test]
fn kernel_overlayfs_reads_the_unions_upper_the_same() {
    let test = "kernel_overlayfs_reads_the_unions_upper_the_same";
    let Some(mut u) = Union::standard(test, Fmt::Overlay) else {
        return;
    };
    mutate(&u.mnt, true);
    let seen = snapshot(&u.mnt);
    assert!(seen.contains_key("renamed/inner") && !seen.contains_key("odir"));
    u.unmount();
    let Some(k) = u.kernel_overlay(test) else {
        return;
    };
    assert_same_tree(
        &seen,
        &snapshot(&k.mnt),
        "kernel overlayfs vs the union (want)",
    );
}

/// The union (overlay format) reads an upper branch the kernel's overlayfs
/// wrote (whiteouts, opaque dirs, copy-ups with origin xattrs) the same
/// way, and never shows overlayfs's private xattrs.
#[test]
fn union_reads_the_kernels_upper_the_same() {
    let test = "union_reads_the_kernels_upper_the_same";
    let Some(mut u) = Union::standard(test, Fmt::Overlay) else {
        return;
    };
    u.unmount();
    let seen = {
        let Some(k) = u.kernel_overlay(test) else {
            return;
        };
        mutate(&k.mnt, false);
        snapshot(&k.mnt)
    };
    u.mount();
    assert_same_tree(
        &seen,
        &snapshot(&u.mnt),
        "the union vs kernel overlayfs (want)",
    );
    for p in std::iter::once(u.mnt.clone()).chain(walk(&u.mnt)) {
        let names = xattr_names(&p).unwrap_or_default();
        assert!(
            !names.iter().any(|n| n.starts_with("trusted.overlay.")),
            "{} shows {names:?}",
            p.display()
        );
    }
    // And it keeps working on top: delete what the kernel created.
    fs::remove_dir_all(u.p("newdir")).unwrap();
    fs::remove_file(u.p("created")).unwrap();
    assert_eq!(read(&u.p("sticky/created2")), "created\n");
}

/// `userxattr`: opaque marks go in `user.overlay.*`, are hidden the same
/// way, and the kernel's overlayfs (also with userxattr) agrees.
#[test]
fn overlay_userxattr_marks_and_kernel_agrees() {
    let test = "overlay_userxattr_marks_and_kernel_agrees";
    let Some(mut u) = Union::standard_with(test, Fmt::Overlay, |u| u.userxattr = true) else {
        return;
    };
    fs::remove_dir_all(u.p("dir")).unwrap();
    fs::create_dir(u.p("dir")).unwrap();
    fs::write(u.p("dir/x"), "x").unwrap();
    fs::remove_file(u.p("file")).unwrap();
    assert!(u.is_opaque("dir"), "no user.overlay.opaque on upper dir");
    u.assert_whiteout("file");
    let names = xattr_names(&u.p("dir")).unwrap();
    assert!(
        !names.iter().any(|n| n.starts_with("user.overlay.")),
        "listxattr shows {names:?}"
    );
    let seen = snapshot(&u.mnt);
    u.unmount();
    let Some(k) = u.kernel_overlay(test) else {
        return;
    };
    assert_same_tree(
        &seen,
        &snapshot(&k.mnt),
        "kernel overlayfs (userxattr) vs the union (want)",
    );
}
