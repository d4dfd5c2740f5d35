//! The little HTTP/1.1 the plugin protocol needs: one `POST` per
//! connection (`Connection: close`), a response read with `httparse`, its
//! body delimited by `Content-Length`, by chunked transfer coding (what Go's
//! `net/http` sends when a handler sets no length) or by the end of the
//! connection. Sizes are bounded so a broken plugin cannot make us buffer
//! without end. Deadlines are the caller's business (see [`super::conn`]).
//!
//! RFC 9112 §6 (message body length) and §7.1 (chunked coding).

use std::io::{self, Read, Write};

/// The protocol's content type, sent as `Content-Type` and `Accept`.
pub(crate) const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// Largest body accepted: a `List` of many volumes fits with room to spare.
pub(crate) const MAX_BODY: usize = 16 << 20;
/// Largest status line plus headers accepted.
const MAX_HEAD: usize = 64 << 10;
/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 << 10;
const MAX_HEADERS: usize = 64;

/// A response: its status and its whole body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `POST path` with `body` and reads the response.
pub(crate) fn post(
    stream: &mut (impl Read + Write),
    path: &str,
    body: &[u8],
) -> io::Result<Response> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nUser-Agent: strata\r\n\
         Content-Type: {CONTENT_TYPE}\r\nAccept: {CONTENT_TYPE}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    stream.write_all(&req)?;
    stream.flush()?;
    read_response(stream)
}

/// How the body of a response ends.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads one response (skipping any `1xx` interim ones).
fn read_response(reader: &mut impl Read) -> io::Result<Response> {
    let mut input = Input::new(reader);
    loop {
        let (status, framing) = input.head()?;
        if (100..200).contains(&status) {
            continue;
        }
        let body = match framing {
            Framing::None => Vec::new(),
            Framing::Length(n) => input.exact(n)?,
            Framing::Chunked => input.chunked()?,
            Framing::UntilClose => input.until_close()?,
        };
        return Ok(Response { status, body });
    }
}

/// Bytes read from the connection and not yet consumed.
struct Input<'a, R> {
    reader: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a, R: Read> Input<'a, R> {
    fn new(reader: &'a mut R) -> Self {
        Input {
            reader,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more; `Ok(false)` at the end of the connection.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos > 64 << 10 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 8192];
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads until `n` bytes are available; `what` names them for the error.
    fn need(&mut self, n: usize, what: &str) -> io::Result<()> {
        while self.available().len() < n {
            if !self.fill()? {
                return Err(truncated(what));
            }
        }
        Ok(())
    }

    /// Parses the status line and headers.
    fn head(&mut self) -> io::Result<(u16, Framing)> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp
                .parse(self.available())
                .map_err(|e| invalid(format!("bad response head: {e}")))?
            {
                httparse::Status::Complete(len) => {
                    let status = resp.code.unwrap_or_default();
                    let framing = framing(status, resp.headers)?;
                    self.pos += len;
                    return Ok((status, framing));
                }
                httparse::Status::Partial if self.available().len() > MAX_HEAD => {
                    return Err(invalid(format!(
                        "response head longer than {MAX_HEAD} bytes"
                    )));
                }
                httparse::Status::Partial => {
                    if !self.fill()? {
                        return Err(truncated("response head"));
                    }
                }
            }
        }
    }

    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        self.need(n, "response body")?;
        let body = self.available()[..n].to_vec();
        self.pos += n;
        Ok(body)
    }

    /// Decodes a chunked body; trailers, if any, are left unread (the
    /// connection is closed after the call anyway).
    fn chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let (line, size) = loop {
                match httparse::parse_chunk_size(self.available()) {
                    Ok(httparse::Status::Complete(found)) => break found,
                    Ok(httparse::Status::Partial) if self.available().len() > MAX_CHUNK_LINE => {
                        return Err(invalid("chunk size line too long".to_string()));
                    }
                    Ok(httparse::Status::Partial) => {
                        if !self.fill()? {
                            return Err(truncated("chunked response body"));
                        }
                    }
                    Err(httparse::InvalidChunkSize) => {
                        return Err(invalid("bad chunk size".to_string()))
                    }
                }
            };
            self.pos += line;
            if size == 0 {
                return Ok(body);
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s <= MAX_BODY - body.len())
                .ok_or_else(too_big)?;
            self.need(size + 2, "chunked response body")?;
            let data = &self.available()[..size + 2];
            if &data[size..] != b"\r\n" {
                return Err(invalid("chunk not followed by CRLF".to_string()));
            }
            body.extend_from_slice(&data[..size]);
            self.pos += size + 2;
        }
    }

    fn until_close(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? {
            if self.available().len() > MAX_BODY {
                return Err(too_big());
            }
        }
        Ok(self.available().to_vec())
    }
}

/// RFC 9112 §6.3: no body for 1xx, 204 and 304; chunked wins over a
/// length; a length must be one number; otherwise the body runs to the
/// close.
fn framing(status: u16, headers: &[httparse::Header<'_>]) -> io::Result<Framing> {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    let mut length = None;
    for h in headers {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| invalid(format!("non-ASCII {} header", h.name)))?;
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(invalid(format!("unsupported Transfer-Encoding {value:?}")));
            }
            return Ok(Framing::Chunked);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .trim()
                .parse()
                .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("conflicting Content-Length headers".to_string()));
            }
            length = Some(n);
        }
    }
    match length {
        Some(n) if n > MAX_BODY => Err(too_big()),
        Some(n) => Ok(Framing::Length(n)),
        None => Ok(Framing::UntilClose),
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn truncated(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed before the end of the {what}"),
    )
}

fn too_big() -> io::Error {
    invalid(format!("response body larger than {MAX_BODY} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per `read`, to catch code that
    /// assumes whole reads.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn read(raw: &str) -> io::Result<Response> {
        read_response(&mut Trickle(raw.as_bytes()))
    }

    #[test]
    fn content_length_body_is_read_whole() {
        let r = read("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }

    #[test]
    fn chunked_body_is_decoded_with_extensions() {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                   3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n";
        assert_eq!(read(raw).unwrap().body, b"abc0123456789abcdef");
    }

    #[test]
    fn body_without_length_runs_to_close() {
        let r = read("HTTP/1.1 500 Internal Server Error\r\n\r\n{\"Err\":\"x\"}").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (500, &b"{\"Err\":\"x\"}"[..])
        );
    }

    #[test]
    fn interim_responses_are_skipped() {
        let r = read("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
    }

    #[test]
    fn short_bodies_are_truncation_errors() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"Mount",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
            "HTTP/1.1 200 OK\r\nContent-",
            "",
        ] {
            let err = read(raw).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{raw:?}: {err}");
        }
    }

    #[test]
    fn malformed_or_oversized_responses_are_refused() {
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let huge_chunk = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_BODY + 1
        );
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
            "NOT HTTP\r\n\r\n",
            &huge,
            &huge_chunk,
        ] {
            let err = read(raw).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{raw:?}: {err}");
        }
    }

    #[test]
    fn request_carries_the_protocol_headers() {
        struct Duplex {
            sent: Vec<u8>,
            answer: &'static [u8],
        }
        impl Read for Duplex {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.answer.read(buf)
            }
        }
        impl Write for Duplex {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.sent.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut d = Duplex {
            sent: Vec::new(),
            answer: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        };
        post(&mut d, "/VolumeDriver.List", b"{}").unwrap();
        let sent = String::from_utf8(d.sent).unwrap();
        assert!(
            sent.starts_with("POST /VolumeDriver.List HTTP/1.1\r\n"),
            "{sent}"
        );
        for h in [
            "Content-Type: application/vnd.docker.plugins.v1.2+json\r\n",
            "Accept: application/vnd.docker.plugins.v1.2+json\r\n",
            "Content-Length: 2\r\n",
            "Connection: close\r\n",
        ] {
            assert!(sent.contains(h), "{h} missing from {sent}");
        }
        assert!(sent.ends_with("\r\n\r\n{}"), "{sent}");
    }
}
