//! Progress for long work, on a terminal only: scripts and pipes see
//! nothing but the result.

use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar (known length) or a spinner, drawn on stderr when it is a
/// terminal; hidden otherwise.
pub fn bar(what: &str, len: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = match len {
        Some(n) => ProgressBar::new(n).with_style(bytes_style()),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}")
                .expect("a valid template"),
        ),
    };
    pb.set_message(what.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A bar of bytes with a known total.
pub fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .expect("a valid template")
        .progress_chars("=> ")
}

/// A reader that moves `pb` as bytes are read.
pub fn reader<R: Read + Send + 'static>(pb: &ProgressBar, r: R) -> Box<dyn Read + Send> {
    Box::new(pb.wrap_read(r))
}

/// A writer that moves `pb` as bytes are written.
pub fn writer<W: Write + 'static>(pb: &ProgressBar, w: W) -> Box<dyn Write> {
    Box::new(pb.wrap_write(w))
}
