//! What the kernel caches in front of the union: directory entries and
//! attributes across renames of directories, and file pages across opens.
//! Each rename case runs as one shell script (so each step is a separate
//! command, as a user types them) within the kernel's entry timeout, on
//! the union in both formats and on the kernel's overlayfs over the same
//! lower tree; all must print the same. Needs root and /dev/fuse (SKIPPED
//! loudly otherwise).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// Runs `script` with `sh -c` in `dir`: what it printed, its errors and
/// its exit status, as one text to compare.
fn run(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("run sh");
    format!(
        "{}--- stderr:\n{}--- {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
    )
}

/// The lower tree of the rename cases: `d/pop/b`, `d/pop/sub/deep`,
/// `d/top`, an empty `e/`, an empty `t/` and `u/` holding only `only`.
fn rename_tree(l: &Path) {
    for d in ["d/pop/sub", "e", "t", "u"] {
        fs::create_dir_all(l.join(d)).expect("lower dir");
    }
    fs::write(l.join("d/pop/b"), "b\n").expect("lower file");
    fs::write(l.join("d/pop/sub/deep"), "deep\n").expect("lower file");
    fs::write(l.join("d/top"), "top\n").expect("lower file");
    fs::write(l.join("u/only"), "only\n").expect("lower file");
}

/// The union over [`rename_tree`] in format `fmt`, or `None` (SKIPPED).
fn rename_union(test: &str, fmt: Fmt) -> Option<Union> {
    Union::build(test, Layout::two(fmt), |l| rename_tree(&l[0]))
}

/// Runs `script` on the union in both formats and on the kernel's
/// overlayfs, each over a fresh copy of [`rename_tree`]; every one must
/// succeed and print `want`.
fn same_everywhere(test: &str, script: &str, want: &str) {
    let want = format!("{want}--- stderr:\n--- exit status: 0");
    for fmt in [Fmt::Aufs, Fmt::Overlay] {
        let Some(u) = rename_union(test, fmt) else {
            return;
        };
        assert_eq!(run(&u.mnt, script), want, "{fmt:?} union:\n{script}");
    }
    let Some(k) = Union::unmounted(test, Layout::two(Fmt::Overlay), |l, _| rename_tree(&l[0]))
    else {
        return;
    };
    let Some(kernel) = k.kernel_overlay(test) else {
        return;
    };
    assert_eq!(
        run(&kernel.mnt, script),
        want,
        "kernel overlayfs:\n{script}"
    );
}

/// The outside suite's case: a directory moved out of a renamed lower
/// directory is usable at once, not ENOENT until the kernel's entry
/// cache expires.
#[test]
fn dir_moved_out_of_a_renamed_dir_is_usable_at_once() {
    same_everywhere(
        "dir_moved_out_of_a_renamed_dir_is_usable_at_once",
        "set -e
         ls d/pop
         mv d dx
         mv dx/pop e/pop
         ls e/pop
         cat e/pop/b
         echo new > e/pop/new
         cat e/pop/new
         ls e/pop e/pop/sub",
        "b\nsub\nb\nsub\nb\nnew\ne/pop:\nb\nnew\nsub\n\ne/pop/sub:\ndeep\n",
    );
}

/// Children looked up before their directory is renamed are found, read,
/// written and created in at their new path.
#[test]
fn looked_up_children_of_a_renamed_dir_stay_reachable() {
    same_everywhere(
        "looked_up_children_of_a_renamed_dir_stay_reachable",
        "set -e
         cat d/pop/b d/pop/sub/deep
         stat -c %F d/pop/sub d/top
         mv d dx
         cat dx/pop/b dx/pop/sub/deep dx/top
         echo more >> dx/pop/b
         cat dx/pop/b
         touch dx/pop/sub/n
         ls dx/pop/sub
         rm dx/top
         ls dx",
        "b\ndeep\ndirectory\nregular file\nb\ndeep\ntop\nb\nmore\ndeep\nn\npop\n",
    );
}

/// A directory renamed twice, then its child moved twice.
#[test]
fn dir_renamed_twice_and_child_moved_twice() {
    same_everywhere(
        "dir_renamed_twice_and_child_moved_twice",
        "set -e
         ls d/pop
         mv d dx
         mv dx dy
         ls dy/pop
         cat dy/pop/b
         mv dy/pop e/pop
         mv e/pop e/pop2
         ls e/pop2
         cat e/pop2/b e/pop2/sub/deep
         touch e/pop2/c
         ls e/pop2 e
         ls",
        "b\nsub\nb\nsub\nb\nb\nsub\nb\ndeep\ne:\npop2\n\ne/pop2:\nb\nc\nsub\ndy\ne\nt\nu\n",
    );
}

/// A directory moved into another parent, then its child moved up to the
/// root.
#[test]
fn dir_moved_across_parents() {
    same_everywhere(
        "dir_moved_across_parents",
        "set -e
         ls d/pop
         mv d e/d
         ls e/d/pop
         cat e/d/pop/b
         mv e/d/pop pop
         ls pop
         cat pop/b
         mkdir pop/m
         ls pop e/d",
        "b\nsub\nb\nsub\nb\nb\nsub\nb\ne/d:\ntop\n\npop:\nb\nm\nsub\n",
    );
}

/// A renamed directory replacing an empty one (both looked up first),
/// and one replacing a directory emptied by deletions.
#[test]
fn dir_renamed_over_a_looked_up_dir() {
    same_everywhere(
        "dir_renamed_over_a_looked_up_dir",
        "set -e
         ls t d/pop
         mv -T d t
         ls t t/pop
         cat t/pop/b
         touch t/pop/x
         ls t/pop
         cat u/only
         rm u/only
         mv -T t/pop u
         ls u
         cat u/b",
        "d/pop:\nb\nsub\n\nt:\nt:\npop\ntop\n\nt/pop:\nb\nsub\nb\nb\nsub\nx\nonly\nb\nsub\nx\nb\n",
    );
}

/// The union keeps a directory's inode number when it (or a parent) is
/// renamed, so what the kernel holds stays the same file.
#[test]
fn renamed_dirs_keep_their_inode_numbers() {
    for fmt in [Fmt::Aufs, Fmt::Overlay] {
        let Some(u) = rename_union("renamed_dirs_keep_their_inode_numbers", fmt) else {
            return;
        };
        let pop = lstat(&u.p("d/pop")).ino();
        let b = lstat(&u.p("d/pop/b")).ino();
        fs::rename(u.p("d"), u.p("dx")).unwrap();
        assert_eq!(lstat(&u.p("dx/pop")).ino(), pop, "{fmt:?}: dx/pop");
        assert_eq!(lstat(&u.p("dx/pop/b")).ino(), b, "{fmt:?}: dx/pop/b");
        fs::rename(u.p("dx/pop"), u.p("e/pop")).unwrap();
        assert_eq!(lstat(&u.p("e/pop")).ino(), pop, "{fmt:?}: e/pop");
        assert_eq!(read(&u.p("e/pop/b")), "b\n");
        // Still so once the kernel has forgotten its entries.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(lstat(&u.p("e/pop")).ino(), pop, "{fmt:?}: e/pop later");
        assert_eq!(lstat(&u.p("e/pop/b")).ino(), b, "{fmt:?}: e/pop/b later");
    }
}

/// `RENAME_EXCHANGE` of two lower directories (each copied whole into the
/// upper branch first) whose children were looked up: the children are
/// reachable at their new paths at once, with their inode numbers.
#[test]
fn exchanged_dirs_keep_their_children_reachable() {
    for fmt in [Fmt::Aufs, Fmt::Overlay] {
        let Some(u) = rename_union("exchanged_dirs_keep_their_children_reachable", fmt) else {
            return;
        };
        assert_eq!(read(&u.p("d/pop/b")), "b\n");
        assert_eq!(read(&u.p("u/only")), "only\n");
        let pop = lstat(&u.p("d/pop")).ino();
        let only = lstat(&u.p("u/only")).ino();
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            u.p("d"),
            rustix::fs::CWD,
            u.p("u"),
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .expect("exchange d and u");
        assert_eq!(read(&u.p("u/pop/b")), "b\n", "{fmt:?}");
        assert_eq!(read(&u.p("d/only")), "only\n", "{fmt:?}");
        fs::write(u.p("u/pop/new"), "new\n").expect("create in u/pop");
        assert_eq!(list(&u.p("u/pop")), ["b", "new", "sub"], "{fmt:?}");
        assert_eq!(lstat(&u.p("u/pop")).ino(), pop, "{fmt:?}: u/pop");
        assert_eq!(lstat(&u.p("d/only")).ino(), only, "{fmt:?}: d/only");
    }
}

/// How many bytes of `path` are in the page cache, by `fincore` (which
/// opens the file: a union's open that drops the cache reads as 0).
fn resident(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("run fincore");
    assert!(out.status.success(), "fincore {}: {out:?}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("fincore printed {text:?}"))
}

/// A lower file read through the union stays in the page cache when it
/// is opened again (a warm re-read costs no request); once written, every
/// open reads what was written, through passthrough or not.
#[test]
fn lower_file_pages_stay_cached_across_opens() {
    let test = "lower_file_pages_stay_cached_across_opens";
    if !able(test) {
        return;
    }
    if Command::new("fincore").arg("--version").output().is_err() {
        skip(test, "fincore (util-linux) missing");
        return;
    }
    let size = big_content().len() as u64;
    for (upper, passthrough) in [(true, true), (true, false), (false, false)] {
        let what = format!("upper {upper}, passthrough {passthrough}");
        let layout = Layout {
            upper,
            ..Layout::two(Fmt::Overlay)
        };
        let Some(mut u) = Union::unmounted(test, layout, |l, _| standard_tree(&l[0])) else {
            return;
        };
        u.passthrough = passthrough;
        u.mount();
        let big = u.p("big");
        assert_eq!(fs::read(&big).unwrap(), big_content(), "{what}");
        assert_eq!(resident(&big), size, "{what}: pages kept across opens");
        if !upper {
            continue;
        }
        // Copy-up, then writes through fresh opens: every read sees them.
        let mut want = big_content();
        fs::OpenOptions::new()
            .append(true)
            .open(&big)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"!"))
            .unwrap();
        want.push(b'!');
        assert_eq!(fs::read(&big).unwrap(), want, "{what}: after copy-up");
        let f = fs::OpenOptions::new().write(true).open(&big).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"XYZ", 4096).unwrap();
        drop(f);
        want[4096..4099].copy_from_slice(b"XYZ");
        assert_eq!(fs::read(&big).unwrap(), want, "{what}: after a write");
        assert_eq!(fs::read(u.up("big")).unwrap(), want, "{what}: upper copy");
    }
}
