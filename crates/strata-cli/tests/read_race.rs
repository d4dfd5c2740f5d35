//! Reading a running container's files while the container fights back.
//!
//! A container process swaps one name, `/f`, between a regular file, a
//! character device (1,5: `/dev/zero`) and a fifo, as fast as busybox can
//! rename. An outside probe did this with a block device: `cp ctr:/f`, a
//! commit and an export read the device's bytes (a disk the container's
//! device cgroup forbids it to read) as the file's content, and the fifo
//! made `commit` block for ever while it held the store lock.
//!
//! What must hold: a copied, committed or exported `/f` is the regular
//! file with its own content, or the device or fifo as a node — never a
//! device's bytes — and nothing blocks. `cp` and `--pause=false` rely on
//! the descriptor checks alone (they may fail, naming the file); a
//! default `commit` and `export` freeze the container (the runtime's
//! pause) and always succeed, and the container runs on afterwards.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::Strata;
use containers::{setup, wait_until};

const CONTENT: &[u8] = b"regular-content\n";

/// The swapping loop; `/v/count` counts its rounds.
const SWAPPER: &str = "echo regular-content > /r; cp /r /f; i=0; \
    while :; do \
      mknod /f.t c 1 5; mv -f /f.t /f; \
      mkfifo /f.t; mv -f /f.t /f; \
      cp /r /f.t; mv -f /f.t /f; \
      i=$((i+1)); echo $i > /v/count; \
    done";

/// What a read that lost the race may say; anything else is a bug.
const RACE_ERRORS: &[&str] = &["not a regular file", "replaced by another file"];

/// `/f` as it came out: the regular file with its content, or a node.
fn check_f(data: Option<&[u8]>, kind: &str, what: &str) {
    if let Some(d) = data {
        assert_eq!(
            d,
            CONTENT,
            "{what}: /f has {:?}, not its own content",
            String::from_utf8_lossy(d)
        );
    } else {
        assert!(matches!(kind, "char" | "fifo"), "{what}: /f is a {kind}");
    }
}

/// `/f` in a tree on the host (a copy, or a mounted container).
fn check_host_f(path: &Path, what: &str) -> bool {
    let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{what}: {e}"));
    let ft = md.file_type();
    if ft.is_file() {
        check_f(Some(&fs::read(path).unwrap()), "file", what);
        return true;
    }
    if ft.is_char_device() {
        assert_eq!(md.rdev(), libc_makedev(1, 5), "{what}: device number");
        check_f(None, "char", what);
    } else if ft.is_fifo() {
        check_f(None, "fifo", what);
    } else {
        panic!("{what}: /f is {ft:?}");
    }
    false
}

fn libc_makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfffff000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffffff00) << 12)
        | (minor & 0xff)
}

/// `/f` in an exported tar.
fn check_tar_f(tar: &Path, what: &str) {
    let mut a = tar::Archive::new(fs::File::open(tar).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if path.trim_start_matches("./") != "f" {
            continue;
        }
        match e.header().entry_type() {
            tar::EntryType::Regular => {
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                check_f(Some(&d), "file", what);
            }
            tar::EntryType::Char => check_f(None, "char", what),
            tar::EntryType::Fifo => check_f(None, "fifo", what),
            other => panic!("{what}: /f is a {other:?}"),
        }
        return;
    }
    panic!("{what}: no /f in the export");
}

/// A failed read must be a lost race, named as such.
fn lost_race(stderr: &str, what: &str) {
    assert!(
        RACE_ERRORS.iter().any(|m| stderr.contains(m)),
        "{what} failed otherwise: {stderr}"
    );
}

/// Starts the swapping container `racer`; returns its round counter.
fn start_racer(s: &Strata) -> PathBuf {
    s.ok(&[
        "create",
        "--name",
        "racer",
        "--network",
        "none",
        "-v",
        "racecount:/v",
        "busybox:test",
        "sh",
        "-c",
        SWAPPER,
    ]);
    assert_eq!(s.ok(&["start", "racer"]), "racer");
    let v = PathBuf::from(
        s.json(&["volume", "inspect", "racecount"])[0]["Mountpoint"]
            .as_str()
            .unwrap(),
    );
    let count = v.join("count");
    wait_until(30, "the container to swap files", || count.exists());
    count
}

fn rounds(count: &Path) -> u64 {
    fs::read_to_string(count)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Commits `racer` with `flags` and looks at `/f` in a container of the
/// result; false when the commit lost the race.
fn commit_and_check(s: &Strata, flags: &[&str], n: usize) -> bool {
    let what = format!("commit {flags:?} #{n}");
    let mut args = vec!["commit"];
    args.extend_from_slice(flags);
    args.push("racer");
    let d = s.exec(&args);
    if d.code != 0 {
        lost_race(&d.stderr, &what);
        return false;
    }
    let image = d.out().to_owned();
    let name = format!("chk{n}");
    s.ok(&["create", "--name", &name, &image, "true"]);
    let merged = PathBuf::from(s.ok(&["mount", &name]).trim());
    check_host_f(&merged.join("f"), &what);
    s.ok(&["umount", &name]);
    s.ok(&["rm", &name]);
    s.ok(&["rmi", &image]);
    true
}

#[test]
fn swapped_files_are_never_read_through() {
    let test = "swapped_files_are_never_read_through";
    let Some(s) = setup(test) else { return };
    let count = start_racer(&s);

    // cp: the descriptor checks alone.
    let out = s.path("out");
    fs::create_dir(&out).unwrap();
    let mut regular = 0;
    for i in 0..150 {
        let dest = out.join(format!("f{i}"));
        let d = s.exec(&["cp", "racer:/f", dest.to_str().unwrap()]);
        if d.code == 0 {
            regular += usize::from(check_host_f(&dest, &format!("cp #{i}")));
        } else {
            lost_race(&d.stderr, &format!("cp #{i}"));
        }
    }
    assert!(regular > 0, "no cp got the regular file");

    // export and commit reading the container running.
    for i in 0..10 {
        let tar = s.path(&format!("export{i}.tar"));
        let d = s.exec(&[
            "export",
            "--pause=false",
            "-o",
            tar.to_str().unwrap(),
            "racer",
        ]);
        if d.code == 0 {
            check_tar_f(&tar, &format!("export --pause=false #{i}"));
        } else {
            lost_race(&d.stderr, &format!("export --pause=false #{i}"));
        }
        commit_and_check(&s, &["--pause=false"], i);
    }

    // By default the container is frozen while it is read: nothing can
    // race, so every read succeeds; it runs on afterwards.
    for i in 0..3 {
        let tar = s.path(&format!("paused{i}.tar"));
        s.ok(&["export", "-o", tar.to_str().unwrap(), "racer"]);
        check_tar_f(&tar, &format!("export #{i}"));
        assert!(
            commit_and_check(&s, &[], 100 + i),
            "a paused commit lost a race"
        );
        let before = rounds(&count);
        wait_until(30, "the container to run on after the commit", || {
            rounds(&count) > before
        });
    }
    assert_eq!(s.inspect("racer")["State"]["Status"], "running");

    s.ok(&["rm", "-f", "racer"]);
    s.assert_clean("after the race", None);
}
