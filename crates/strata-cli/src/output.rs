//! Where a command's output goes.

use std::fmt;
use std::io::{self, Write};

use serde::Serialize;

/// What a command prints, on standard output. Output that cannot be
/// written never stops the work: a reader that went away (`strata images
/// | head -1`) gets no more and the command finishes with its own status,
/// as if all had been read; any other write error is reported once and
/// makes the status a failure ([`Out::failed`]). Neither panics.
///
/// Lines are written with `writeln!(out, ...)`, which cannot fail.
pub struct Out {
    w: Box<dyn Write>,
    state: State,
}

/// What became of the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// Its reader went away.
    ReaderGone,
    /// A write failed otherwise (and was reported).
    Failed,
}

impl Out {
    pub fn stdout() -> Out {
        Out::new(Box::new(io::stdout()))
    }

    pub fn new(w: Box<dyn Write>) -> Out {
        Out {
            w,
            state: State::Open,
        }
    }

    /// Writes `args` unless an earlier write failed (what `writeln!`
    /// calls).
    pub fn write_fmt(&mut self, args: fmt::Arguments<'_>) {
        if self.state != State::Open {
            return;
        }
        if let Err(e) = self.w.write_fmt(args) {
            self.state = if e.kind() == io::ErrorKind::BrokenPipe {
                State::ReaderGone
            } else {
                eprintln!("strata: error: writing to standard output: {e}");
                State::Failed
            };
        }
    }

    /// `v` as pretty JSON, and a newline.
    pub fn json<T: Serialize + ?Sized>(&mut self, v: &T) -> serde_json::Result<()> {
        let text = serde_json::to_string_pretty(v)?;
        writeln!(self, "{text}");
        Ok(())
    }

    /// The writer itself, for output a command streams whole (a tar, a
    /// list of changes, a log) and whose write errors it handles itself.
    pub fn raw(&mut self) -> &mut dyn Write {
        &mut self.w
    }

    /// Whether a write failed other than for want of a reader: the
    /// command's status is then a failure.
    pub fn failed(&self) -> bool {
        self.state == State::Failed
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// A writer that takes `ok` writes, then fails every one with `kind`;
    /// `tries` counts the writes asked of it.
    struct Failing {
        ok: usize,
        kind: io::ErrorKind,
        tries: Rc<RefCell<usize>>,
        written: Rc<RefCell<Vec<u8>>>,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            *self.tries.borrow_mut() += 1;
            if self.ok == 0 {
                return Err(self.kind.into());
            }
            self.ok -= 1;
            self.written.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Writes three lines through an `Out` over a writer failing with
    /// `kind` after one write: what it failed, what was written, and how
    /// many writes were tried.
    fn three_lines(kind: io::ErrorKind) -> (bool, String, usize) {
        let tries = Rc::new(RefCell::new(0));
        let written = Rc::new(RefCell::new(Vec::new()));
        let mut out = Out::new(Box::new(Failing {
            ok: 1,
            kind,
            tries: tries.clone(),
            written: written.clone(),
        }));
        writeln!(out, "one");
        writeln!(out, "two");
        out.json(&["three"]).expect("JSON");
        let text = String::from_utf8(written.borrow().clone()).expect("UTF-8");
        let tried = *tries.borrow();
        (out.failed(), text, tried)
    }

    #[test]
    fn a_reader_gone_ends_output_without_failing() {
        let (failed, text, tries) = three_lines(io::ErrorKind::BrokenPipe);
        assert!(!failed);
        assert_eq!(text, "one\n");
        assert_eq!(tries, 2, "no write after the reader went away");
    }

    #[test]
    fn another_write_error_fails_once() {
        let (failed, text, tries) = three_lines(io::ErrorKind::StorageFull);
        assert!(failed);
        assert_eq!(text, "one\n");
        assert_eq!(tries, 2, "no write after the first failure");
    }

    #[test]
    fn lines_and_json_as_written() {
        let written = Rc::new(RefCell::new(Vec::new()));
        let mut out = Out::new(Box::new(Failing {
            ok: usize::MAX,
            kind: io::ErrorKind::Other,
            tries: Rc::default(),
            written: written.clone(),
        }));
        writeln!(out, "{:<4}|", "a");
        writeln!(out);
        out.json(&serde_json::json!({"A": [1]})).expect("JSON");
        assert!(!out.failed());
        let text = String::from_utf8(written.borrow().clone()).expect("UTF-8");
        assert_eq!(text, "a   |\n\n{\n  \"A\": [\n    1\n  ]\n}\n");
    }
}
