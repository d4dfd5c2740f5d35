//! One driver in a temporary directory, and the guarantee that nothing
//! stays mounted after a behaviour ran, whether it passed or panicked.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::{Driver, ErrorKind, LayerKind, Result};

/// Makes a driver whose home is the given directory. The suite calls it
/// once per behaviour (twice where two instances share a home).
pub type Factory<'a> = &'a dyn MakeDriver;

/// What opens the driver under test. A plain `Fn(&Path) -> Box<dyn
/// Driver>` is one, whose harness lives in the system's temporary
/// directory; [`On`] puts the harness on a file system of the test's
/// choosing (a loop-mounted btrfs for the btrfs driver).
pub trait MakeDriver {
    /// The driver with its home at `home`.
    fn open(&self, home: &Path) -> Box<dyn Driver>;

    /// Where the harness makes its temporary directory; `None`: the
    /// system's.
    fn scratch(&self) -> Option<&Path> {
        None
    }
}

impl<F: Fn(&Path) -> Box<dyn Driver>> MakeDriver for F {
    fn open(&self, home: &Path) -> Box<dyn Driver> {
        self(home)
    }
}

/// `factory`, with the harness made under `dir`.
pub struct On<'a> {
    pub dir: &'a Path,
    pub factory: &'a dyn Fn(&Path) -> Box<dyn Driver>,
}

impl MakeDriver for On<'_> {
    fn open(&self, home: &Path) -> Box<dyn Driver> {
        (self.factory)(home)
    }

    fn scratch(&self) -> Option<&Path> {
        Some(self.dir)
    }
}

/// The driver `name` of the table ([`crate::BACKENDS`]) opened on
/// `home`, its fuse unions served by this process's threads: the factory
/// `conformance!` gives each driver. Panics, naming the driver, when it
/// cannot be opened.
pub fn open_backend(name: &str, home: &Path) -> Box<dyn Driver> {
    let opened = crate::backend(name).and_then(|b| (b.open)(home, &crate::Options::default()));
    opened.unwrap_or_else(|e| panic!("opening {name} on {}: {}", home.display(), chain(&e)))
}

/// True when the test can run. Otherwise says so loudly and, when `CI` is
/// set (where every requirement must be met), fails instead of skipping.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("requirement not met in CI: {what}");
    }
    eprintln!("SKIPPED (requirement not met: {what})");
    false
}

/// The suite mounts, changes owners and makes device nodes.
pub fn require_root() -> bool {
    require("root", strata_sys::fs::euid() == 0)
}

/// A driver with its home in a fresh temporary directory, plus a scratch
/// directory beside the home. Dropping it runs `cleanup` and then
/// unmounts whatever is still mounted anywhere under the temporary
/// directory, so a failing behaviour leaves no mounts behind.
pub struct Harness {
    // Declared before `tmp`: the driver goes before its directory does.
    driver: Box<dyn Driver>,
    home: PathBuf,
    tmp: tempfile::TempDir,
}

impl Harness {
    pub fn new(factory: Factory) -> Self {
        let mut b = tempfile::Builder::new();
        b.prefix("strata-conformance-");
        let tmp = match factory.scratch() {
            Some(dir) => b.tempdir_in(dir),
            None => b.tempdir(),
        }
        .expect("creating a temporary directory");
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).expect("creating the driver's home");
        let driver = factory.open(&home);
        Harness { driver, home, tmp }
    }

    pub fn driver(&self) -> &dyn Driver {
        &*self.driver
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The temporary directory holding the home.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// A second driver instance on the same home (another `strata`
    /// process, as far as the driver can tell).
    pub fn reopen(&self, factory: Factory) -> Box<dyn Driver> {
        factory.open(&self.home)
    }

    /// `get`, failing the test with the driver's error; the reference is
    /// kept ([`crate::Mount::keep`]) until [`Harness::put`].
    pub fn get(&self, id: &str) -> PathBuf {
        let p = self
            .driver
            .get(id, None)
            .unwrap_or_else(|e| panic!("get({id}): {}", chain(&e)))
            .keep();
        assert!(
            p.is_dir(),
            "get({id}) returned {}, which is not a directory",
            p.display()
        );
        p
    }

    pub fn put(&self, id: &str) {
        self.driver
            .put(id)
            .unwrap_or_else(|e| panic!("put({id}): {}", chain(&e)));
    }

    pub fn create(&self, id: &str, parent: Option<&str>) {
        self.driver
            .create(id, parent, LayerKind::ReadOnly)
            .unwrap_or_else(|e| panic!("create({id}, {parent:?}): {}", chain(&e)));
    }

    pub fn create_rw(&self, id: &str, parent: Option<&str>) {
        self.driver
            .create(id, parent, LayerKind::ReadWrite)
            .unwrap_or_else(|e| panic!("create_rw({id}, {parent:?}): {}", chain(&e)));
    }

    pub fn remove(&self, id: &str) {
        self.driver
            .remove(id)
            .unwrap_or_else(|e| panic!("remove({id}): {}", chain(&e)));
    }

    /// Layer `base` holding `file` (`base`): where most behaviours
    /// start.
    pub fn create_base(&self) {
        self.create("base", None);
        self.with_layer("base", |p| super::fixture::write(p, "file", b"base", 0o644));
    }

    /// [`Harness::create_base`], then a read-write layer `ctr` on it,
    /// mounted (`get`); where it is mounted.
    pub fn mounted_container(&self) -> PathBuf {
        self.create_base();
        self.create_rw("ctr", Some("base"));
        self.get("ctr")
    }

    /// Runs `fill` on the mounted layer, then puts it back.
    pub fn with_layer<T>(&self, id: &str, fill: impl FnOnce(&Path) -> T) -> T {
        let p = self.get(id);
        let out = fill(&p);
        self.put(id);
        out
    }

    /// The end of a behaviour that passed: `cleanup` must succeed and
    /// leave nothing mounted.
    pub fn finish(self) {
        self.driver
            .cleanup()
            .unwrap_or_else(|e| panic!("cleanup: {}", chain(&e)));
        let left = mounts_under(self.root());
        assert!(left.is_empty(), "mounts left after cleanup: {left:?}");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Never panic here: this runs while unwinding from a failed check.
        let cleaned = catch_unwind(AssertUnwindSafe(|| self.driver.cleanup()));
        match cleaned {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("conformance: cleanup failed: {}", chain(&e)),
            Err(_) => eprintln!("conformance: cleanup panicked"),
        }
        for m in mounts_under(self.tmp.path()) {
            eprintln!("conformance: unmounting leftover {}", m.display());
            if let Err(e) = strata_sys::mount::unmount(&m, true) {
                eprintln!("conformance: unmounting {}: {e}", m.display());
            }
        }
    }
}

/// Mount points at or below `dir` (empty when it is gone).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    strata_sys::mount::mounts_under(dir).unwrap_or_default()
}

pub fn is_mounted(path: &Path) -> bool {
    strata_sys::mount::is_mountpoint(path).unwrap_or(false)
}

/// The error and its sources on one line.
pub use crate::error::chain;

/// Asserts that `r` failed with `kind`.
pub fn assert_kind<T: std::fmt::Debug>(r: Result<T>, kind: ErrorKind, what: &str) {
    match r {
        Ok(v) => panic!("{what}: succeeded ({v:?}), expected a {kind:?} error"),
        Err(e) => assert_eq!(
            e.kind(),
            kind,
            "{what}: wrong error kind; error: {}",
            chain(&e)
        ),
    }
}
