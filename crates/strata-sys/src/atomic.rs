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
