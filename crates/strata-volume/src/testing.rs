//! A fake volume plugin for tests (feature `testing`): a unix socket
//! served by a thread, answering each request with what the test's
//! handler says (JSON, an `Err`, silence, a dropped connection, half an
//! answer) and recording what it was sent.
//!
//! ```no_run
//! # use strata_volume::testing::{FakePlugin, Reply};
//! # use serde_json::json;
//! let dir = std::env::temp_dir();
//! let plugin = FakePlugin::start(&dir, "fakevol", |r| match r.path.as_str() {
//!     "/VolumeDriver.Create" => Reply::err("disk full"),
//!     _ => Reply::default_for(r),
//! });
//! // ... `strata --plugin-dir DIR volume create --driver fakevol v1` ...
//! assert_eq!(plugin.paths(), ["/Plugin.Activate", "/VolumeDriver.Create"]);
//! ```
//!
//! One connection is served at a time, as the client makes one call at
//! a time. Dropping the plugin stops its thread (and closes the
//! connections it left hanging) and removes its socket; no thread stays
//! blocked.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

/// The protocol's content type, which the client must send.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// How long the fake waits for a request's bytes before giving up on the
/// connection (a client that connects and says nothing).
const READ_LIMIT: Duration = Duration::from_secs(5);

/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(5);

/// What the fake plugin does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status and JSON, with a `Content-Length`.
    Json(u16, Value),
    /// 200 and this JSON, chunked as Go's `net/http` does, in pieces of
    /// this many bytes.
    Chunked(Value, usize),
    /// These bytes as they are, then close (a partial answer: a plugin
    /// dying mid-answer).
    Raw(String),
    /// Keep the connection open and never answer (until the fake stops).
    Hang,
    /// Close the connection without a word (a plugin dying mid-call).
    Close,
}

impl Reply {
    /// 200 and `answer`.
    pub fn ok(answer: Value) -> Reply {
        Reply::Json(200, answer)
    }

    /// 200 and `{"Err": msg}`, as plugins report failures.
    pub fn err(msg: &str) -> Reply {
        Reply::Json(200, json!({ "Err": msg }))
    }

    /// Raw bytes (see [`Reply::Raw`]).
    pub fn raw(bytes: &str) -> Reply {
        Reply::Raw(bytes.to_owned())
    }

    /// Go's `404 page not found`, what a plugin answers to a call it does
    /// not implement.
    pub fn not_found() -> Reply {
        Reply::raw("HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\n\r\n404 page not found\n")
    }

    /// A well-behaved volume driver's answer, without state: every call
    /// succeeds, a volume `NAME` is at `/mnt/fake/NAME`, `List` is empty,
    /// the scope is local, and an unknown call is a 404.
    pub fn default_for(request: &Request) -> Reply {
        let name = request.name().unwrap_or_default();
        let mountpoint = format!("/mnt/fake/{name}");
        let answer = match request.path.as_str() {
            "/Plugin.Activate" => json!({"Implements": ["VolumeDriver"]}),
            "/VolumeDriver.Create" | "/VolumeDriver.Remove" | "/VolumeDriver.Unmount" => {
                json!({"Err": ""})
            }
            "/VolumeDriver.Mount" | "/VolumeDriver.Path" => {
                json!({"Mountpoint": mountpoint, "Err": ""})
            }
            "/VolumeDriver.Get" => {
                json!({"Volume": {"Name": name, "Mountpoint": mountpoint}, "Err": ""})
            }
            "/VolumeDriver.List" => json!({"Volumes": [], "Err": ""}),
            "/VolumeDriver.Capabilities" => json!({"Capabilities": {"Scope": "local"}}),
            _ => return Reply::not_found(),
        };
        Reply::ok(answer)
    }
}

/// A request the fake plugin received.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `/Plugin.Activate`, `/VolumeDriver.Create`, ...
    pub path: String,
    pub content_type: String,
    pub accept: String,
    /// The JSON body; `Null` for an empty one (or one that is not JSON).
    pub body: Value,
}

impl Request {
    /// The body's `Name`, if any.
    pub fn name(&self) -> Option<&str> {
        self.body.get("Name").and_then(Value::as_str)
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + 'static;

/// A plugin served from a thread until dropped.
pub struct FakePlugin {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakePlugin {
    /// Serves `DIR/NAME.sock`, where discovery in `dir` finds plugin
    /// `name`, answering each request with `handler`.
    pub fn start(
        dir: &Path,
        name: &str,
        handler: impl Fn(&Request) -> Reply + Send + 'static,
    ) -> FakePlugin {
        FakePlugin::serve(&dir.join(format!("{name}.sock")), handler)
    }

    /// Serves the socket `socket`, answering each request with `handler`.
    ///
    /// # Panics
    ///
    /// When the socket cannot be bound.
    pub fn serve(socket: &Path, handler: impl Fn(&Request) -> Reply + Send + 'static) -> Self {
        let listener = UnixListener::bind(socket).unwrap_or_else(|e| {
            panic!("binding the fake plugin's socket {}: {e}", socket.display())
        });
        // Polled, so that stopping does not depend on the socket file
        // still being there to connect to.
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (requests, stop) = (requests.clone(), stop.clone());
            move || serve(&listener, &handler, &requests, &stop)
        });
        FakePlugin {
            socket: socket.to_path_buf(),
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The requests' paths.
    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }

    /// The bodies of the requests to `path` (e.g. `/VolumeDriver.Create`).
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.body)
            .collect()
    }
}

impl Drop for FakePlugin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // A handler that panicked has already failed the test through
            // what the client saw; do not panic again while dropping.
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The accept loop, until `stop`.
fn serve(
    listener: &UnixListener,
    handler: &Handler,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) {
    // Hung connections stay open here until the server stops.
    let mut held = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("fake plugin accept: {e}"),
        };
        let ready = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(READ_LIMIT)))
            .and_then(|()| stream.set_write_timeout(Some(READ_LIMIT)));
        if ready.is_err() {
            continue;
        }
        let Some(request) = read_request(&stream) else {
            continue;
        };
        let reply = handler(&request);
        requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
        match reply {
            Reply::Hang => held.push(stream),
            reply => answer(&mut stream, reply),
        }
    }
}

/// Reads a request line, headers and a `Content-Length` body; `None` for
/// anything else.
fn read_request(stream: &UnixStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.strip_prefix("POST ")?.split(' ').next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
    Some(Request {
        path,
        content_type: header("content-type"),
        accept: header("accept"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

fn answer(stream: &mut UnixStream, reply: Reply) {
    let head = |status: u16, framing: &str| {
        format!("HTTP/1.1 {status} X\r\nContent-Type: {CONTENT_TYPE}\r\n{framing}\r\n\r\n")
    };
    // The client may be gone (that is what some tests are about).
    let _ = match reply {
        Reply::Json(status, value) => {
            let body = value.to_string();
            let framing = format!("Content-Length: {}", body.len());
            stream.write_all((head(status, &framing) + &body).as_bytes())
        }
        Reply::Chunked(value, size) => {
            let body = value.to_string();
            let mut out = head(200, "Transfer-Encoding: chunked").into_bytes();
            for piece in body.as_bytes().chunks(size.max(1)) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            stream.write_all(&out)
        }
        Reply::Raw(raw) => stream.write_all(raw.as_bytes()),
        Reply::Hang | Reply::Close => Ok(()),
    };
}
