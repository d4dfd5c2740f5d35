//! Files replaced whole: written under a temp name in the same directory,
//! fsynced, renamed over the final name, and the directory fsynced, so a
//! crash leaves the old content or the new, never a torn mix (rename(2),
//! fsync(2); DESIGN §3).

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `data` atomically and durably.
pub fn write(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(data)?;
    f.commit()
}

/// Makes `path` an empty regular file, durably: an empty file has no
/// content to tear, so it is made in place (`O_CREAT|O_NOFOLLOW`: a
/// symlink at the name is refused, never followed; an empty file already
/// there is kept) and its name made durable by the fsync of its
/// directory, one fsync where a replacement takes two and a rename.
pub fn create_empty(path: &Path) -> io::Result<()> {
    crate::fs::write_nofollow(path, b"")?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    sync_dir(dir.unwrap_or(Path::new(".")))
}

/// fsync of a directory: makes renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsync of every path (files and directories), the calls made at once,
/// each on a thread of its own: a journaling file system (ext4's jbd2,
/// xfs's log) then commits the changes together, where one call after
/// another would wait for a journal commit each. Every path is synced;
/// the first error is returned, naming its path.
pub fn sync_paths<P: AsRef<Path> + Sync>(paths: &[P]) -> io::Result<()> {
    let one = |p: &Path| {
        File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| io::Error::new(e.kind(), format!("syncing {}: {e}", p.display())))
    };
    match paths {
        [] => Ok(()),
        [p] => one(p.as_ref()),
        _ => std::thread::scope(|s| {
            let calls: Vec<_> = paths
                .iter()
                .map(|p| s.spawn(move || one(p.as_ref())))
                .collect();
            calls
                .into_iter()
                .map(|c| {
                    c.join()
                        .unwrap_or_else(|_| Err(io::Error::other("an fsync thread panicked")))
                })
                .collect::<io::Result<Vec<()>>>()
                .map(|_| ())
        }),
    }
}

/// A file being written under a temp name beside `dest`: [`commit`]
/// makes it `dest`, durably; dropped uncommitted, it is removed.
///
/// The temp file is made new (`O_CREAT|O_EXCL`): a symlink planted at the
/// temp name is never followed.
///
/// [`commit`]: AtomicFile::commit
#[derive(Debug)]
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Starts replacing `dest`, at the temp name `.<name>.tmp`. For
    /// writers that hold a lock over the directory: a temp file already
    /// there is a dead writer's, and is removed.
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        let tmp = temp_name(dest, None)?;
        let mut tries = 0;
        loop {
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            match Self::create_at(tmp.clone(), dest) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 3 => tries += 1,
                r => return r,
            }
        }
    }

    /// Starts replacing `dest`, at the temp name `.<name>.<unique>.tmp`:
    /// for a directory others may write in too, where nothing there is
    /// ours to remove.
    pub fn create_unique(dest: &Path, unique: &str) -> io::Result<AtomicFile> {
        Self::create_at(temp_name(dest, Some(unique))?, dest)
    }

    fn create_at(tmp: PathBuf, dest: &Path) -> io::Result<AtomicFile> {
        let file = File::options().write(true).create_new(true).open(&tmp)?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_owned(),
            file: Some(file),
        })
    }

    /// The temp file's path.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// fsync, rename over the final name, fsync of the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("an uncommitted file is open");
        let done = file.sync_all().and_then(|()| {
            drop(file);
            fs::rename(&self.tmp, &self.dest)
        });
        if let Err(e) = done {
            let _ = fs::remove_file(&self.tmp);
            return Err(e);
        }
        sync_dir(parent(&self.dest))
    }

    fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("an uncommitted file is open")
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Records of one change published together: each file is written now
/// under its temp name (not flushed), the caller makes them durable (a
/// syncfs of their file system that it pays anyway, or
/// [`Batch::sync_files`]), then [`Batch::publish`] puts them in place,
/// step by step: every rename of a step, then one fsync of each directory
/// the step renamed into. A later step is never durable before an
/// earlier one. Dropped unpublished, the temp files are removed.
///
/// Where each record written alone costs an fsync of the file, a rename
/// and an fsync of its directory, a batch costs one fsync per directory
/// per step, after the one flush.
#[derive(Debug, Default)]
pub struct Batch {
    /// Renames of each step: from, to, and whether `from` is a temp file
    /// of this batch (removed if never published).
    steps: Vec<Vec<(PathBuf, PathBuf, bool)>>,
    /// Directories made, or given new entries in place, whose entries a
    /// flush by [`Batch::sync_files`] must make durable.
    touched: Vec<PathBuf>,
    /// Directories [`Batch::make_dir`] made: removed, if empty, when the
    /// batch is dropped before anything of it was put in place.
    made: Vec<PathBuf>,
    /// Whether a step was put in place.
    published: bool,
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            steps: vec![Vec::new()],
            touched: Vec::new(),
            made: Vec::new(),
            published: false,
        }
    }

    /// Makes the directory `dir` (its parent exists) for records of the
    /// batch, unless it is there: flushed with the batch, and removed
    /// again if the batch is dropped unpublished and it is still empty.
    pub fn make_dir(&mut self, dir: &Path) -> io::Result<()> {
        match fs::create_dir(dir) {
            Ok(()) => {
                self.made.push(dir.to_owned());
                self.touched(dir);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes `data` at `dest`'s temp name (`.<name>.tmp`, what a dead
    /// writer left there replaced), to be renamed over `dest` in the
    /// current step.
    pub fn replace(&mut self, dest: &Path, data: &[u8]) -> io::Result<()> {
        let mut f = AtomicFile::create(dest)?;
        f.write_all(data)?;
        let file = f.file.take().expect("an uncommitted file is open");
        drop(file);
        let tmp = std::mem::take(&mut f.tmp);
        self.step().push((tmp, dest.to_owned(), true));
        Ok(())
    }

    /// Renames `from` (made by the caller, say a staging directory) over
    /// `to` in the current step.
    pub fn rename(&mut self, from: &Path, to: &Path) {
        self.step().push((from.to_owned(), to.to_owned(), false));
    }

    /// Notes that `dir` was made, or given an entry in place, for this
    /// change: [`Batch::sync_files`] makes its entry (or entries) durable.
    pub fn touched(&mut self, dir: &Path) {
        if !self.touched.iter().any(|d| d == dir) {
            self.touched.push(dir.to_owned());
        }
    }

    /// Ends the current step: what comes after is durable only after it.
    pub fn barrier(&mut self) {
        if !self.step().is_empty() {
            self.steps.push(Vec::new());
        }
    }

    /// Makes the temp files and what [`Batch::touched`] names durable,
    /// for a caller that flushes no whole file system: an fsync of each
    /// temp file and of each touched directory and its parent, all at
    /// once ([`sync_paths`]; nothing is published before they all end).
    pub fn sync_files(&self) -> io::Result<()> {
        let mut all: Vec<&Path> = Vec::new();
        let files = self.steps.iter().flatten().filter(|(_, _, tmp)| *tmp);
        all.extend(files.map(|(from, _, _)| from.as_path()));
        for d in &self.touched {
            for d in [d.as_path(), parent(d)] {
                if !all.contains(&d) {
                    all.push(d);
                }
            }
        }
        sync_paths(&all)
    }

    /// Puts everything in place, step by step. The caller made it all
    /// durable first. On an error, what was renamed stays.
    pub fn publish(mut self) -> io::Result<()> {
        while !self.steps.is_empty() {
            let mut dirs: Vec<PathBuf> = Vec::new();
            while let Some((from, to, _)) = self.steps[0].first() {
                // Left in the batch until renamed: on an error, Drop
                // removes what was not (this step's and the later ones').
                fs::rename(from, to)?;
                let dir = parent(to).to_owned();
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
                self.steps[0].remove(0);
            }
            self.steps.remove(0);
            // Something of the batch is in place: the directories it
            // made are no longer its own to remove.
            self.published = true;
            dirs.iter().try_for_each(|d| sync_dir(d))?;
        }
        Ok(())
    }

    fn step(&mut self) -> &mut Vec<(PathBuf, PathBuf, bool)> {
        self.steps.last_mut().expect("a batch has a step")
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for (from, _, tmp) in self.steps.iter().flatten() {
            if *tmp {
                let _ = fs::remove_file(from);
            }
        }
        if !self.published {
            for d in self.made.iter().rev() {
                // Only if empty: what others put there stays.
                let _ = fs::remove_dir(d);
            }
        }
    }
}

/// The directory `path` is in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn temp_name(dest: &Path, unique: Option<&str>) -> io::Result<PathBuf> {
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", dest.display()),
        )
    })?;
    let mut tmp = OsString::from(".");
    tmp.push(name);
    if let Some(u) = unique {
        tmp.push(".");
        tmp.push(u);
    }
    tmp.push(".tmp");
    Ok(parent(dest).join(tmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new directory for one test, removed by the test.
    fn tempdir(test: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("strata-sys-atomic-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir(&d).unwrap();
        d
    }

    #[test]
    fn a_batch_puts_its_files_in_place_only_when_published() {
        let d = tempdir("batch");
        let (a, b, moved) = (d.join("a"), d.join("b"), d.join("moved"));
        fs::write(&a, b"old").unwrap();
        let staged = d.join("staged");
        fs::create_dir(&staged).unwrap();
        let mut batch = Batch::new();
        batch.rename(&staged, &moved);
        batch.barrier();
        batch.replace(&a, b"new").unwrap();
        batch.replace(&b, b"bee").unwrap();
        batch.touched(&d);
        // Written, not yet in place.
        assert_eq!(fs::read(&a).unwrap(), b"old");
        assert!(!b.exists() && !moved.exists());
        batch.sync_files().unwrap();
        batch.publish().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new");
        assert_eq!(fs::read(&b).unwrap(), b"bee");
        assert!(moved.is_dir() && !staged.exists());
        let mut names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "moved"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_batch_dropped_unpublished_leaves_only_what_was_there() {
        let d = tempdir("batch-drop");
        let a = d.join("a");
        fs::write(&a, b"old").unwrap();
        let mut batch = Batch::new();
        batch.replace(&a, b"new").unwrap();
        batch.replace(&d.join("b"), b"bee").unwrap();
        let made = d.join("made");
        batch.make_dir(&made).unwrap();
        batch.replace(&made.join("c"), b"sea").unwrap();
        drop(batch);
        assert_eq!(fs::read(&a).unwrap(), b"old");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        // A rename that fails stops the publication; the rest, later
        // steps too, is removed.
        let mut batch = Batch::new();
        batch.rename(&d.join("missing"), &d.join("there"));
        batch.replace(&a, b"new").unwrap();
        batch.barrier();
        batch.make_dir(&made).unwrap();
        batch.replace(&made.join("c"), b"sea").unwrap();
        assert!(batch.publish().is_err());
        assert_eq!(fs::read(&a).unwrap(), b"old");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn write_replaces_whole_and_leaves_no_temp_file() {
        let d = tempdir("w");
        let p = d.join("record");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlink_at_the_temp_name_is_replaced_not_followed() {
        let d = tempdir("s");
        let outside = d.join("outside");
        fs::write(&outside, "canary").unwrap();
        std::os::unix::fs::symlink(&outside, d.join(".record.tmp")).unwrap();
        write(&d.join("record"), b"data").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"canary");
        assert_eq!(fs::read(d.join("record")).unwrap(), b"data");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_uncommitted_file_is_removed() {
        let d = tempdir("u");
        let mut f = AtomicFile::create_unique(&d.join("out"), "x1").unwrap();
        f.write_all(b"half").unwrap();
        assert!(f.temp_path().ends_with(".out.x1.tmp"));
        drop(f);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }
}
