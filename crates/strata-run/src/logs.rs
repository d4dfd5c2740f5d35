//! A background container's output, kept as Docker's `json-file` log
//! driver keeps it, so `strata logs` reads like `docker logs`:
//!
//! ```text
//! containers/<id>/<id>-json.log     one JSON object a line:
//!   {"log":"up\n","stream":"stdout","time":"2026-12-06T05:40:01.123456789Z"}
//! containers/<id>/<id>-json.log.1   the previous file, after a rotation
//! ```
//!
//! A line longer than 16 KiB is cut into records of 16 KiB (the last one
//! ends with the newline), as Docker cuts them; bytes that are not UTF-8
//! become U+FFFD, as in Docker's JSON. The file is rotated once it passes
//! [`MAX_SIZE`], keeping one older file: a container never fills the
//! disk with its output (Docker keeps everything unless `max-size` is
//! set; its `local` driver keeps 100 MB).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use strata_store::{Container, Error, Result, Status, Store};

/// A log file is rotated past this size (two are kept).
pub const MAX_SIZE: u64 = 10 << 20;

/// Longest piece of a line one record holds.
pub const MAX_LINE: usize = 16 << 10;

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// `containers/<id>/<id>-json.log`.
pub fn path(store: &Store, c: &Container) -> PathBuf {
    store.container_path(c).join(format!("{}-json.log", c.id))
}

fn rotated(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// The writing side: records appended from the container's stdout and
/// stderr (one thread each, see [`pump`]), rotated by size.
pub struct LogWriter {
    file: Mutex<(File, u64)>,
    path: PathBuf,
}

impl LogWriter {
    /// Opens (appends to) the log at `path`.
    pub fn open(path: &Path) -> Result<Arc<LogWriter>> {
        let file = append(path)?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .len();
        Ok(Arc::new(LogWriter {
            file: Mutex::new((file, size)),
            path: path.to_owned(),
        }))
    }

    /// Appends one record of `stream` holding `bytes`.
    pub fn record(&self, stream: &str, bytes: &[u8]) -> io::Result<()> {
        let r = Record {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: stream.to_owned(),
            time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        };
        let mut line = serde_json::to_vec(&r).expect("serialising a log record");
        line.push(b'\n');
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.1 > 0 && guard.1 + line.len() as u64 > MAX_SIZE {
            std::fs::rename(&self.path, rotated(&self.path))?;
            *guard = (append(&self.path).map_err(io::Error::other)?, 0);
        }
        guard.0.write_all(&line)?;
        guard.1 += line.len() as u64;
        Ok(())
    }
}

fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// Copies `from` into `log` as records of `stream`, a line (or
/// [`MAX_LINE`] bytes) each, until `from` ends.
pub fn pump(from: impl Read, stream: &str, log: &LogWriter) {
    let mut r = BufReader::with_capacity(MAX_LINE, from);
    let mut line = Vec::with_capacity(MAX_LINE);
    loop {
        line.clear();
        let got = (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut line);
        match got {
            Ok(0) => return,
            Ok(_) => {
                if let Err(e) = log.record(stream, &line) {
                    tracing::error!("writing {}: {e}", log.path.display());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::error!("reading the container's {stream}: {e}");
                return;
            }
        }
    }
}

/// What `strata logs` shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `-f`: keep printing what comes while the container runs.
    pub follow: bool,
    /// `--tail N`: only the last N records.
    pub tail: Option<usize>,
    /// `-t`: each record's time before it.
    pub timestamps: bool,
}

/// `strata logs`: the container's records, stdout's to `out` and
/// stderr's to `err`, as `docker logs` splits them.
pub fn show(
    store: &Store,
    c: &Container,
    opts: Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let path = path(store, c);
    let shown = path.display().to_string();
    let mut emit = |r: &Record| -> io::Result<()> {
        let to: &mut dyn Write = if r.stream == "stderr" {
            &mut *err
        } else {
            &mut *out
        };
        if opts.timestamps {
            write!(to, "{} ", r.time)?;
        }
        to.write_all(r.log.as_bytes())
    };
    let io_err = |e: io::Error| Error::io(format!("reading {shown}"), e);
    let mut records = VecDeque::new();
    let mut keep = |r| {
        records.push_back(r);
        if opts.tail.is_some_and(|n| records.len() > n) {
            records.pop_front();
        }
    };
    if let Some(f) = open(&rotated(&path)).map_err(io_err)? {
        read_records(BufReader::new(f), &mut keep).map_err(io_err)?;
    }
    // Followed from where this read ends.
    let mut current = open(&path).map_err(io_err)?.map(|f| (f, 0));
    if let Some((f, at)) = &mut current {
        *at = read_records(BufReader::new(&*f), &mut keep).map_err(io_err)?;
    }
    for r in &records {
        emit(r).map_err(|e| Error::io("writing the logs", e))?;
    }
    if opts.follow {
        follow(store, c, &path, current, &mut emit).map_err(io_err)?;
    }
    Ok(())
}

/// The file at `path`, or `None` when there is none.
fn open(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads whole records from `r`; a line that does not parse is skipped
/// (with a warning): one damaged record hides nothing else.
fn read_records(mut r: impl BufRead, f: &mut dyn FnMut(Record)) -> io::Result<u64> {
    let mut line = Vec::new();
    let mut done = 0;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        // A record still being written is read on the next round.
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(done);
        }
        done += n as u64;
        match serde_json::from_slice::<Record>(&line) {
            Ok(rec) => f(rec),
            Err(e) => tracing::warn!("skipping a damaged log record: {e}"),
        }
    }
}

/// Prints records as they are appended to `path` after `file`'s
/// offset, across rotations, until the container no longer runs and all
/// it wrote is printed.
fn follow(
    store: &Store,
    c: &Container,
    path: &Path,
    mut file: Option<(File, u64)>,
    emit: &mut dyn FnMut(&Record) -> io::Result<()>,
) -> io::Result<()> {
    let mut failed = None;
    loop {
        let running = store
            .container_state(c)
            .map(|s| s.status == Status::Running)
            .unwrap_or(false);
        // Rotated (seen before the held file is read: the writer is done
        // with the old file once it has renamed it): drain the old one,
        // then go on with the new one from its start.
        let now = std::fs::metadata(path).ok().map(|m| m.ino());
        let held = file
            .as_ref()
            .and_then(|(f, _)| f.metadata().ok().map(|m| m.ino()));
        let rotated = now.is_some() && now != held;
        if let Some((f, at)) = &mut file {
            f.seek(SeekFrom::Start(*at))?;
            *at += read_records(BufReader::new(&*f), &mut |r| {
                if failed.is_none() {
                    failed = emit(&r).err();
                }
            })?;
            if let Some(e) = failed.take() {
                return Err(e);
            }
        }
        if rotated {
            file = File::open(path).ok().map(|f| (f, 0));
            continue;
        }
        if !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(path: &Path) -> Vec<Record> {
        let mut v = Vec::new();
        read_records(BufReader::new(File::open(path).unwrap()), &mut |r| {
            v.push(r)
        })
        .unwrap();
        v
    }

    #[test]
    fn lines_become_records_and_long_lines_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-json.log");
        let log = LogWriter::open(&p).unwrap();
        let long = vec![b'a'; MAX_LINE + 10];
        let mut input = b"one\ntwo\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\n\xffend");
        pump(input.as_slice(), "stderr", &log);
        let got = records(&p);
        let logs: Vec<&str> = got.iter().map(|r| r.log.as_str()).collect();
        assert_eq!(logs.len(), 5, "{logs:?}");
        assert_eq!(logs[0], "one\n");
        assert_eq!(logs[1], "two\n");
        assert_eq!(logs[2].len(), MAX_LINE);
        assert_eq!(logs[3], format!("{}\n", "a".repeat(10)));
        assert_eq!(logs[4], "\u{fffd}end");
        assert!(got.iter().all(|r| r.stream == "stderr"));
        assert!(got[0].time.ends_with('Z') && got[0].time.contains('T'));
    }

    #[test]
    fn the_log_rotates_and_keeps_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-json.log");
        let log = LogWriter::open(&p).unwrap();
        let line = vec![b'x'; MAX_LINE - 1];
        let mut n = 0;
        while !rotated(&p).exists() && n < 10_000 {
            log.record("stdout", &line).unwrap();
            n += 1;
        }
        assert!(rotated(&p).exists(), "not rotated after {n} records");
        assert!(std::fs::metadata(rotated(&p)).unwrap().len() <= MAX_SIZE);
        assert!(!rotated(&rotated(&p)).exists());
        assert_eq!(records(&p).len(), 1);
    }

    #[test]
    fn a_damaged_record_hides_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-json.log");
        std::fs::write(
            &p,
            "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\nnot json\n\
             {\"log\":\"b\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n{\"log\":",
        )
        .unwrap();
        let logs: Vec<String> = records(&p).into_iter().map(|r| r.log).collect();
        assert_eq!(logs, ["a\n", "b\n"]);
    }
}
