//! `-u USER[:GROUP]` resolved against the container's own `/etc/passwd`
//! and `/etc/group`.
//!
//! The rules are runc's `GetExecUser` (libcontainer/user, used by Docker's
//! daemon) with the spec Docker writes:
//!
//! - `USER` is a name or a uid, `GROUP` a name or a gid; an empty spec means
//!   uid 0. A number is always an id, never a name, and must be in
//!   `0..=2147483647`; more than one `:`, or an empty side of one, is refused.
//! - A name must match a passwd entry. A uid need not: without an entry the
//!   process runs with gid 0 and home `/`. The first matching entry wins and
//!   gives the gid and the home (`/` when the entry leaves it empty).
//! - An explicit `GROUP` name must match a group entry (the first wins); a
//!   gid need not. An explicit group replaces the passwd gid, and then no
//!   supplementary groups are looked up (runc: they "only make sense in the
//!   implicit form").
//! - Otherwise the supplementary groups are those whose member list names
//!   the matched passwd entry, in file order.
//! - [`User::additional_gids`] is what goes into the OCI spec's
//!   `additionalGids`: the primary gid first, as Docker writes it since
//!   CVE-2023-25173 (so a group the file denies access to keeps denying it),
//!   then the supplementary groups, without duplicates.
//!
//! Lines are `name:passwd:uid:gid:gecos:home:shell` and
//! `name:passwd:gid:member,member`; blank lines, `#` comments, lines with
//! another number of fields or a non-numeric id, and lines that are not
//! UTF-8 are skipped, not fatal (an image's files are often hand-edited).
//!
//! The root file system is untrusted. Both files are opened with
//! `openat2(RESOLVE_BENEATH)` so that a symlink to `/etc/shadow` or
//! `../../etc/shadow` can never read the host's file: it is an error, where
//! Docker would resolve it inside the container instead. A fifo or device at
//! the name is never opened (it would block or have effects), and at most
//! [`MAX_FILE_SIZE`] bytes are read. A file that is missing is the same as an
//! empty one.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use strata_sys::Errno;

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// The most read from either file; bigger is refused, not truncated.
pub const MAX_FILE_SIZE: u64 = 16 << 20;

/// The largest uid or gid accepted in a spec, as runc's `maxID`.
const MAX_ID: u32 = i32::MAX as u32;

const PASSWD: &str = "etc/passwd";
const GROUP: &str = "etc/group";

/// Resolves `spec` (``, `name`, `uid`, `name:group`, `uid:gid`, `name:gid`,
/// `uid:group`) against `<root>/etc/passwd` and `<root>/etc/group`.
pub fn resolve(root: &Path, spec: &str) -> Result<User, String> {
    let (user, group) = parse_spec(spec)?;
    let root_fd = strata_sys::fs::open_dir(root)
        .map_err(|e| format!("cannot open container root {}: {e}", root.display()))?;
    let root_fd = root_fd.as_fd();

    let passwd = read_file(root_fd, PASSWD)?;
    let entry = passwd_entries(&passwd).find(|e| match user {
        Id::Num(uid) => e.uid == uid,
        Id::Name(name) => e.name == name,
    });
    let (uid, mut gid, home, name) = match (entry, user) {
        (Some(e), _) => (e.uid, e.gid, e.home, Some(e.name)),
        (None, Id::Num(uid)) => (uid, 0, "", None),
        (None, Id::Name(name)) => {
            return Err(format!(
                "unable to find user {name}: no matching entries in passwd file"
            ))
        }
    };

    let mut supplementary = Vec::new();
    match (group, name) {
        (Some(group), _) => {
            let groups = read_file(root_fd, GROUP)?;
            gid = explicit_gid(&groups, group)?;
        }
        (None, Some(name)) => {
            let groups = read_file(root_fd, GROUP)?;
            supplementary = group_entries(&groups)
                .filter(|g| g.members.split(',').any(|m| m == name))
                .map(|g| g.gid)
                .collect();
        }
        (None, None) => {}
    }

    let mut additional_gids = vec![gid];
    for g in supplementary {
        if !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/" } else { home }.to_owned(),
    })
}

/// One side of a spec: a number is always an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id<'a> {
    Num(u32),
    Name(&'a str),
}

/// Splits `USER[:GROUP]`; the empty spec is uid 0.
fn parse_spec(spec: &str) -> Result<(Id<'_>, Option<Id<'_>>), String> {
    let mut parts = spec.split(':');
    let user = parts.next().unwrap_or_default();
    let group = parts.next();
    if parts.next().is_some() {
        return Err(format!("invalid user {spec:?}: expected USER[:GROUP]"));
    }
    if group.is_some_and(|g| user.is_empty() || g.is_empty()) {
        return Err(format!(
            "invalid user {spec:?}: user and group must not be empty"
        ));
    }
    let user = if user.is_empty() {
        Id::Num(0)
    } else {
        parse_id(user, "uid")?
    };
    Ok((user, group.map(|g| parse_id(g, "gid")).transpose()?))
}

/// A name, or a number (digits, maybe after a `-`) that must be a valid id.
fn parse_id<'a>(s: &'a str, what: &str) -> Result<Id<'a>, String> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Id::Name(s));
    }
    match s.parse::<u32>() {
        Ok(id) if id <= MAX_ID => Ok(Id::Num(id)),
        _ => Err(format!(
            "invalid {what} {s}: uids and gids must be in range 0-{MAX_ID}"
        )),
    }
}

/// The gid an explicit `GROUP` names.
fn explicit_gid(groups: &[u8], group: Id<'_>) -> Result<u32, String> {
    let entry = group_entries(groups).find(|g| match group {
        Id::Num(gid) => g.gid == gid,
        Id::Name(name) => g.name == name,
    });
    match (entry, group) {
        (Some(g), _) => Ok(g.gid),
        (None, Id::Num(gid)) => Ok(gid),
        (None, Id::Name(name)) => Err(format!(
            "unable to find group {name}: no matching entries in group file"
        )),
    }
}

/// The contents of `path` under the container root, empty when it does not
/// exist.
fn read_file(root: BorrowedFd<'_>, path: &str) -> Result<Vec<u8>, String> {
    let file = match strata_sys::fs::open_regular_beneath(root, Path::new(path)) {
        Ok(file) => file,
        Err(e) => {
            return match Errno::from_io_error(&e) {
                // ENOTDIR: `etc` is not a directory, so there is no file
                // under it either.
                Some(Errno::NOENT | Errno::NOTDIR) => Ok(Vec::new()),
                Some(Errno::XDEV) => Err(format!(
                    "{path} in the container is a symlink that leads out of its root \
                     (absolute symlinks and `..` above the root are refused)"
                )),
                _ => Err(format!("cannot open {path} in the container: {e}")),
            };
        }
    };
    let mut data = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read {path} in the container: {e}"))?;
    if data.len() as u64 > MAX_FILE_SIZE {
        return Err(format!(
            "{path} in the container is larger than {} MiB",
            MAX_FILE_SIZE >> 20
        ));
    }
    Ok(data)
}

/// The lines of a passwd or group file worth parsing: UTF-8, not blank, not
/// a comment.
fn lines(data: &[u8]) -> impl Iterator<Item = &str> {
    data.split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// `name:passwd:uid:gid:gecos:home:shell`, as passwd(5).
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(data: &[u8]) -> impl Iterator<Item = PasswdEntry<'_>> {
    lines(data).filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, uid, gid, _, home, _] = fields[..] else {
            return None;
        };
        Some(PasswdEntry {
            name,
            uid: file_id(uid)?,
            gid: file_id(gid)?,
            home,
        })
    })
}

/// `name:passwd:gid:member,member`, as group(5).
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

fn group_entries(data: &[u8]) -> impl Iterator<Item = GroupEntry<'_>> {
    lines(data).filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, gid, members] = fields[..] else {
            return None;
        };
        Some(GroupEntry {
            name,
            gid: file_id(gid)?,
            members,
        })
    })
}

/// An id field of either file: digits only (`str::parse` would take `+1`).
fn file_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    use tempfile::TempDir;

    const PASSWD_FIXTURE: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
nohome:x:1002:1002:::/bin/sh
";

    const GROUP_FIXTURE: &str = "\
root:x:0:
daemon:x:1:
users:x:100:alice
alice:x:1000:
staff:x:50:alice,bob
wheel:x:10:root,alice
";

    /// A container root in a temporary directory, with a sibling directory
    /// outside it standing for the host.
    struct Fixture {
        dir: TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = TempDir::new().expect("temp dir");
            fs::create_dir_all(dir.path().join("root/etc")).expect("mkdir etc");
            fs::create_dir(dir.path().join("host")).expect("mkdir host");
            Self { dir }
        }

        fn with_files(passwd: &str, group: &str) -> Self {
            let f = Self::new();
            f.write("etc/passwd", passwd);
            f.write("etc/group", group);
            f
        }

        fn root(&self) -> PathBuf {
            self.dir.path().join("root")
        }

        fn host(&self) -> PathBuf {
            self.dir.path().join("host")
        }

        fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
            fs::write(self.root().join(rel), contents).expect("write fixture");
        }

        fn resolve(&self, spec: &str) -> Result<User, String> {
            resolve(&self.root(), spec)
        }

        /// Makes `rel` `len` bytes long, sparse.
        fn grow(&self, rel: &str, len: u64) {
            let file = fs::OpenOptions::new()
                .append(true)
                .open(self.root().join(rel))
                .expect("open fixture");
            file.set_len(len).expect("grow sparse");
        }

        /// Puts a host passwd file with an `evil` user beside the root.
        fn host_passwd(&self) -> PathBuf {
            let path = self.host().join("passwd");
            fs::write(&path, "evil:x:4242:4242::/evil:/bin/sh\n").expect("write host");
            path
        }
    }

    fn user(uid: u32, gid: u32, additional_gids: &[u32], home: &str) -> User {
        User {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
            home: home.to_owned(),
        }
    }

    fn standard() -> Fixture {
        Fixture::with_files(PASSWD_FIXTURE, GROUP_FIXTURE)
    }

    #[test]
    fn specs_resolve_with_and_without_passwd_and_group_files() {
        type Case = (&'static str, Result<User, String>);
        let with_files: &[Case] = &[
            // The empty spec: root, with its home and groups.
            ("", Ok(user(0, 0, &[0, 10], "/root"))),
            // A name: its uid, gid, home, and member groups in file order.
            (
                "alice",
                Ok(user(1000, 1000, &[1000, 100, 50, 10], "/home/alice")),
            ),
            // A uid with an entry: that entry.
            ("1001", Ok(user(1001, 100, &[100, 50], "/home/bob"))),
            // A uid without one: gid 0, home /.
            ("4000", Ok(user(4000, 0, &[0], "/"))),
            // An empty home in the entry is /.
            ("nohome", Ok(user(1002, 1002, &[1002], "/"))),
            // name:group takes the group, without supplementary ones.
            ("alice:staff", Ok(user(1000, 50, &[50], "/home/alice"))),
            // uid:gid needs no entries.
            ("4000:4001", Ok(user(4000, 4001, &[4001], "/"))),
            // name:gid without a group entry.
            ("bob:777", Ok(user(1001, 777, &[777], "/home/bob"))),
            // uid:group name.
            ("4000:wheel", Ok(user(4000, 10, &[10], "/"))),
            // An unknown name is an error.
            (
                "nobody2",
                Err("unable to find user nobody2: no matching entries in passwd file".into()),
            ),
            // An unknown group is an error.
            (
                "alice:staff2",
                Err("unable to find group staff2: no matching entries in group file".into()),
            ),
        ];
        let without_files: &[Case] = &[
            // The empty spec without files: root at /.
            ("", Ok(user(0, 0, &[0], "/"))),
            // A uid without a passwd file is fine.
            ("33", Ok(user(33, 0, &[0], "/"))),
            // A name without a passwd file is an error.
            (
                "alice",
                Err("unable to find user alice: no matching entries in passwd file".into()),
            ),
        ];
        for (f, cases) in [(standard(), with_files), (Fixture::new(), without_files)] {
            for (spec, want) in cases {
                assert_eq!(&f.resolve(spec), want, "{spec:?}");
            }
        }
    }

    #[test]
    fn specs_against_small_files() {
        let cases: [(&str, &str, &str, User); 3] = [
            // A number is always an id, never a name.
            (
                "1234:x:5:5::/n:/bin/sh\n",
                "",
                "1234",
                user(1234, 0, &[0], "/"),
            ),
            // The first matching entry wins.
            (
                "dup:x:10:10::/first:/bin/sh\ndup:x:11:11::/second:/bin/sh\n",
                "",
                "dup",
                user(10, 10, &[10], "/first"),
            ),
            // Supplementary groups are deduplicated.
            (
                "carol:x:7:7::/c:/bin/sh\n",
                "a:x:20:carol\nb:x:20:carol\nprimary:x:7:carol\nc:x:21:dave,carol\n",
                "carol",
                user(7, 7, &[7, 20, 21], "/c"),
            ),
        ];
        for (passwd, group, spec, want) in cases {
            let f = Fixture::with_files(passwd, group);
            assert_eq!(f.resolve(spec), Ok(want), "{spec}");
        }
    }

    #[test]
    fn group_name_without_group_file_is_an_error() {
        let f = Fixture::new();
        f.write("etc/passwd", PASSWD_FIXTURE);
        assert_eq!(
            f.resolve("alice:staff"),
            Err("unable to find group staff: no matching entries in group file".into())
        );
    }

    #[test]
    fn comments_blank_malformed_and_non_utf8_lines_are_skipped() {
        let f = Fixture::new();
        let mut passwd = b"# comment\n\n   \nshort:x:5:5\nbad:x:five:5::/b:/bin/sh\n\
            neg:x:-1:5::/n:/bin/sh\nplus:x:+6:5::/p:/bin/sh\n\
            long:x:8:8::/l:/bin/sh:extra\n"
            .to_vec();
        passwd.extend_from_slice(b"\xff\xfe:x:9:9::/bin:/bin/sh\n");
        passwd.extend_from_slice(b"  dave:x:1500:1500::/home/dave:/bin/sh\r\n");
        f.write("etc/passwd", passwd);
        f.write(
            "etc/group",
            b"# groups\n\nbroken:x:dave\nnan:x:x1:dave\n\xffg:x:30:dave\nok:x:31:dave\n",
        );

        assert_eq!(
            f.resolve("dave"),
            Ok(user(1500, 1500, &[1500, 31], "/home/dave"))
        );
        for name in ["short", "bad", "neg", "plus", "long"] {
            let err = f.resolve(name).expect_err(name);
            assert!(err.contains("no matching entries"), "{name}: {err}");
        }
        assert!(f.resolve("dave:broken").is_err());
    }

    #[test]
    fn bad_specs_are_refused() {
        let f = standard();
        let cases = [
            ("a:b:c", "expected USER[:GROUP]"),
            (":", "must not be empty"),
            (":staff", "must not be empty"),
            ("alice:", "must not be empty"),
            (
                "-1",
                "invalid uid -1: uids and gids must be in range 0-2147483647",
            ),
            ("99999999999", "invalid uid 99999999999"),
            ("2147483648", "invalid uid 2147483648"),
            ("alice:-5", "invalid gid -5"),
            ("alice:4294967296", "invalid gid 4294967296"),
        ];
        for (spec, want) in cases {
            let err = f.resolve(spec).expect_err(spec);
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn largest_id_is_accepted() {
        assert_eq!(
            standard().resolve("2147483647:2147483647"),
            Ok(user(
                i32::MAX as u32,
                i32::MAX as u32,
                &[i32::MAX as u32],
                "/"
            ))
        );
    }

    #[test]
    fn symlink_inside_the_root_is_followed() {
        let f = Fixture::new();
        fs::create_dir_all(f.root().join("usr/lib")).expect("mkdir");
        f.write("usr/lib/passwd", PASSWD_FIXTURE);
        symlink("../usr/lib/passwd", f.root().join("etc/passwd")).expect("symlink");
        assert_eq!(
            f.resolve("alice"),
            Ok(user(1000, 1000, &[1000], "/home/alice"))
        );
    }

    /// The host's file must never be read: every spec that reads passwd
    /// fails, including a uid that would otherwise be fine.
    fn assert_escape_refused(f: &Fixture, file: &str) {
        for spec in ["evil", "4242", ""] {
            let err = f.resolve(spec).expect_err(spec);
            assert!(
                err.starts_with(&format!(
                    "{file} in the container is a symlink that leads out"
                )),
                "{spec}: {err}"
            );
            assert!(!err.contains("/evil"), "{spec}: {err}");
        }
    }

    /// `etc/passwd`, or `etc` itself, a symlink to the host's:
    /// absolute, or through `..`.
    #[test]
    fn symlinks_to_host_are_refused() {
        let f = Fixture::new();
        let cases = [
            ("etc/passwd", f.host_passwd(), "../../host/passwd"),
            ("etc", f.host(), "../host"),
        ];
        for (link, absolute, dotdot) in cases {
            let link = f.root().join(link);
            for target in [absolute, PathBuf::from(dotdot)] {
                if fs::remove_file(&link).is_err() {
                    let _ = fs::remove_dir_all(&link);
                }
                symlink(&target, &link).expect("symlink");
                assert_escape_refused(&f, "etc/passwd");
            }
        }
    }

    #[test]
    fn absolute_symlink_is_refused_even_when_its_target_exists_inside() {
        let f = Fixture::new();
        f.write("passwd", PASSWD_FIXTURE);
        symlink("/passwd", f.root().join("etc/passwd")).expect("symlink");
        let err = f.resolve("alice").expect_err("absolute symlink");
        assert!(err.contains("leads out of its root"), "{err}");
    }

    #[test]
    fn group_symlink_to_host_is_refused() {
        let f = Fixture::new();
        f.write("etc/passwd", PASSWD_FIXTURE);
        fs::write(f.host().join("group"), "evil:x:4242:alice\n").expect("write host");
        symlink("../../host/group", f.root().join("etc/group")).expect("symlink");
        for spec in ["alice", "alice:evil"] {
            let err = f.resolve(spec).expect_err(spec);
            assert!(
                err.starts_with("etc/group in the container is a symlink"),
                "{err}"
            );
        }
    }

    #[test]
    fn etc_as_a_file_is_a_missing_passwd() {
        let f = Fixture::new();
        fs::remove_dir(f.root().join("etc")).expect("rmdir etc");
        f.write("etc", "not a directory");
        assert_eq!(f.resolve("5"), Ok(user(5, 0, &[0], "/")));
    }

    #[test]
    fn fifo_at_passwd_is_refused_without_blocking() {
        let f = Fixture::new();
        let etc = strata_sys::fs::open_dir(&f.root().join("etc")).expect("open etc");
        strata_sys::fs::mknod_at(
            etc.as_fd(),
            "passwd".as_ref(),
            strata_sys::FileType::Fifo,
            0o644,
            0,
        )
        .expect("mkfifo");

        // Opening a fifo for reading blocks until a writer comes: run the
        // resolution on its own thread so a regression fails, not hangs.
        let (tx, rx) = mpsc::channel();
        let root = f.root();
        std::thread::spawn(move || tx.send(resolve(&root, "0")));
        let err = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("resolve blocked on a fifo")
            .expect_err("fifo accepted");
        assert_eq!(
            err,
            "cannot open etc/passwd in the container: not a regular file"
        );
    }

    #[test]
    fn directory_at_passwd_is_refused() {
        let f = Fixture::new();
        fs::create_dir(f.root().join("etc/passwd")).expect("mkdir");
        let err = f.resolve("0").expect_err("directory accepted");
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn file_over_the_cap_is_refused() {
        let f = standard();
        f.grow("etc/group", MAX_FILE_SIZE + 1);
        let err = f.resolve("alice").expect_err("huge file accepted");
        assert_eq!(err, "etc/group in the container is larger than 16 MiB");
    }

    #[test]
    fn file_at_the_cap_is_read() {
        let f = standard();
        f.grow("etc/passwd", MAX_FILE_SIZE);
        assert_eq!(
            f.resolve("bob"),
            Ok(user(1001, 100, &[100, 50], "/home/bob"))
        );
    }

    #[test]
    fn missing_root_is_an_error() {
        let f = Fixture::new();
        let err = resolve(&f.root().join("nope"), "").expect_err("missing root");
        assert!(err.starts_with("cannot open container root"), "{err}");
    }
}
