//! A unix socket connection bounded by one deadline for the whole call.
//!
//! Each `read`/`write` first sets the socket's timeout to what is left
//! until the deadline, so a plugin that trickles bytes cannot stretch a call
//! past it, and no thread ever blocks longer than that. `connect` is
//! bounded too: on Linux a blocking `connect(2)` to a unix socket whose
//! accept queue is full waits for room, up to `SO_SNDTIMEO` (see
//! `unix_stream_connect` in `net/unix/af_unix.c`), so the timeout is set
//! before connecting.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

/// A stream whose reads and writes fail with [`io::ErrorKind::TimedOut`]
/// once the deadline has passed.
pub(crate) struct DeadlineStream {
    stream: UnixStream,
    deadline: Instant,
}

impl DeadlineStream {
    /// Connects to the socket at `path`, the deadline being `timeout` from
    /// now.
    pub(crate) fn connect(path: &Path, timeout: Duration) -> io::Result<Self> {
        let deadline = Instant::now() + timeout;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_write_timeout(Some(left(deadline)?))?;
        socket.connect(&SockAddr::unix(path)?).map_err(timed_out)?;
        Ok(DeadlineStream {
            stream: UnixStream::from(OwnedFd::from(socket)),
            deadline,
        })
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(left(self.deadline)?))?;
        self.stream.read(buf).map_err(timed_out)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(left(self.deadline)?))?;
        self.stream.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// The time left until `deadline`, never zero (a zero timeout is refused
/// by `setsockopt` and would mean "forever").
fn left(deadline: Instant) -> io::Result<Duration> {
    let now = Instant::now();
    if now >= deadline {
        return Err(io::ErrorKind::TimedOut.into());
    }
    Ok(deadline - now)
}

/// `SO_RCVTIMEO`/`SO_SNDTIMEO` expiry shows as `EAGAIN`; call it a timeout.
fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::ErrorKind::TimedOut.into()
    } else {
        e
    }
}
