//! One registry and its transport: every request goes through
//! [`Client::send`], which adds credentials (only for the registry's own
//! origin), follows redirects (a bounded number, only for GET and HEAD),
//! answers a 401 challenge once, and retries 429, 5xx and broken
//! connections a bounded number of times with backoff. What credentials
//! a request carries and how a challenge is answered is `auth.rs`.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{Method, Request, Response};
use ureq::tls::{RootCerts, TlsConfig};
use ureq::{Agent, Body, SendBody};

use crate::auth_file::Credentials;
use crate::error::{Error, ErrorKind, Result};
use crate::url::path_of;
pub(crate) use crate::url::{encode, Origin};

/// How a [`Client`] behaves; the defaults suit a remote registry.
#[derive(Debug, Clone)]
pub struct Options {
    /// A registry the user marked insecure (`--tls-verify=false`, or
    /// `insecure = true` in registries.conf), as containers/image treats
    /// one: TLS without verifying the certificate, or plain HTTP when the
    /// registry does not speak TLS at all. Credentials may then reach an
    /// impostor, or travel in clear text.
    pub insecure: bool,
    /// Docker's `certs.d`: CAs for `<registry>` are read from
    /// `<certs_d>/<registry>/*.crt`, trusted besides the system roots.
    pub certs_d: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    /// Time to connect, and the longest a read may wait for a byte (a
    /// stalled server).
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Further tries after a 429, a 5xx or a broken connection, the
    /// first after `backoff`, each next one after twice as long.
    pub retries: u32,
    pub backoff: Duration,
    /// Redirects followed for one request.
    pub max_redirects: u32,
    /// Range requests made to resume one blob whose transfer was cut.
    pub blob_resumes: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            insecure: false,
            certs_d: None,
            credentials: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 4,
            backoff: Duration::from_millis(250),
            max_redirects: 10,
            blob_resumes: 5,
        }
    }
}

/// Longest a `Retry-After` is honoured for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A client of one registry (`host[:port]`).
pub struct Client {
    pub(crate) registry: String,
    pub(crate) origin: Origin,
    pub(crate) agent: Agent,
    pub(crate) opts: Options,
    pub(crate) auth: Mutex<AuthState>,
}

#[derive(Default)]
pub(crate) struct AuthState {
    /// The registry asked for basic auth.
    pub(crate) basic: bool,
    /// Bearer tokens by the scopes they were asked for.
    pub(crate) tokens: HashMap<String, String>,
}

/// A request's body: replayable bytes, or a stream sent once.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream(&'a mut dyn Read, u64),
    /// Of a length not known ahead: sent chunked.
    Unsized(&'a mut dyn Read),
}

/// A request, before auth and redirects.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Payload<'a>,
    /// The token scopes it needs (`repository:NAME:pull`).
    pub scopes: Vec<String>,
}

impl<'a> Req<'a> {
    pub fn new(method: Method, url: String, scopes: Vec<String>) -> Req<'a> {
        Req {
            method,
            url,
            headers: Vec::new(),
            body: Payload::Empty,
            scopes,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Req<'a> {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Payload<'a>) -> Req<'a> {
        self.body = body;
        self
    }

    fn replayable(&self) -> bool {
        !matches!(self.body, Payload::Stream(..) | Payload::Unsized(_))
    }
}

/// What one exchange came to.
enum Failure {
    Net(ureq::Error),
    Ours(Error),
}

impl Client {
    /// A client of `registry` (`host[:port]`).
    pub fn new(registry: &str, opts: Options) -> Result<Client> {
        if registry.is_empty() || registry.contains(['/', '@', ' ', '?', '#']) {
            return Err(Error::new(
                ErrorKind::Refused,
                format!("{registry:?} is not a registry host[:port]"),
            ));
        }
        let origin_of = |scheme: &str| {
            Origin::parse(&format!("{scheme}://{registry}/")).ok_or_else(|| {
                Error::new(
                    ErrorKind::Refused,
                    format!("{registry:?} is not a registry host[:port]"),
                )
            })
        };
        let agent_with = |tls: TlsConfig| -> Agent {
            Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(opts.connect_timeout))
                .timeout_per_read(Some(opts.read_timeout))
                .timeout_per_write(Some(opts.read_timeout))
                .tls_config(tls)
                .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        };
        let (origin, agent) = if opts.insecure {
            // As containers/image does for an insecure registry: HTTPS
            // whatever its certificate, and plain HTTP when the registry
            // does not answer over TLS at all.
            let agent = agent_with(TlsConfig::builder().disable_verification(true).build());
            let https = origin_of("https")?;
            let probe = Request::get(format!("{}/v2/", https.base()))
                .body(())
                .map_err(|e| Error::with(ErrorKind::Refused, "building a request", e))?;
            match agent.run(probe) {
                Ok(_) => (https, agent),
                Err(e) => {
                    tracing::debug!("{registry}: no TLS ({e}): plain HTTP, as marked insecure");
                    (origin_of("http")?, agent)
                }
            }
        } else {
            let roots = crate::tls::roots(opts.certs_d.as_deref(), registry)?;
            let tls = TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&roots))
                .build();
            (origin_of("https")?, agent_with(tls))
        };
        Ok(Client {
            registry: registry.to_owned(),
            origin,
            agent,
            opts,
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// The registry's `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `<scheme>://<registry>`: `http` only for a registry marked
    /// insecure that does not speak TLS.
    pub fn base_url(&self) -> String {
        self.origin.base().to_string()
    }

    /// `<scheme>://<registry>/v2/<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.origin.base())
    }

    /// Whether the registry answers the API at all (`GET /v2/`), with
    /// auth done if it asks: what `login` checks.
    pub fn ping(&self) -> Result<()> {
        let resp = self.send(Req::new(Method::GET, self.url(""), Vec::new()))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            _ => Err(self.refusal(resp, "the API check (GET /v2/)")),
        }
    }

    /// Sends `req`: auth, redirects, retries.
    pub(crate) fn send(&self, mut req: Req<'_>) -> Result<Response<Body>> {
        let mut attempt = 0;
        let mut challenged = false;
        loop {
            let failure = match self.follow(&mut req) {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 401 && !challenged && req.replayable() {
                        challenged = true;
                        if self.answer_challenge(&resp, &req.scopes)? {
                            continue;
                        }
                        return Ok(resp);
                    }
                    let retry = status == 429 || (500..=599).contains(&status);
                    if !(retry && req.replayable() && attempt < self.opts.retries) {
                        return Ok(resp);
                    }
                    let wait = retry_after(&resp).unwrap_or_else(|| self.backoff(attempt));
                    tracing::debug!("{} {}: {status}, retrying in {wait:?}", req.method, req.url);
                    std::thread::sleep(wait);
                    attempt += 1;
                    continue;
                }
                Err(f) => f,
            };
            match failure {
                Failure::Ours(e) => return Err(e),
                Failure::Net(e)
                    if retryable(&e) && req.replayable() && attempt < self.opts.retries =>
                {
                    tracing::debug!("{} {}: {e}, retrying", req.method, req.url);
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                Failure::Net(e) => {
                    return Err(network(
                        &self.registry,
                        &format!("{} {}", req.method, path_of(&req.url)),
                        e,
                    ))
                }
            }
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.opts.backoff.saturating_mul(1 << attempt.min(10))
    }

    /// One exchange and the redirects it leads to.
    fn follow(&self, req: &mut Req<'_>) -> std::result::Result<Response<Body>, Failure> {
        let mut url = req.url.clone();
        let follows = req.method == Method::GET || req.method == Method::HEAD;
        for _ in 0..=self.opts.max_redirects {
            let target = Origin::parse(&url).ok_or_else(|| {
                Failure::Ours(Error::new(
                    ErrorKind::Server,
                    format!("{}: {url:?} is not a URL strata follows", self.registry),
                ))
            })?;
            let ours = target.same(&self.origin);
            if target.scheme == "http" && !self.opts.insecure {
                return Err(Failure::Ours(Error::new(
                    ErrorKind::Refused,
                    format!(
                        "{}: refusing plain HTTP to {} (the registry is not marked insecure)",
                        self.registry, target.authority
                    ),
                )));
            }
            // Credentials go to the registry only: a blob redirected to a
            // storage host is fetched without them.
            let auth = if ours {
                self.authorization(&req.scopes)
            } else {
                None
            };
            let resp = self.exchange(req, &url, auth).map_err(Failure::Net)?;
            if !(follows && is_redirect(resp.status().as_u16())) {
                return Ok(resp);
            }
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Failure::Ours(Error::new(
                        ErrorKind::Server,
                        format!("{}: a redirect without a Location", self.registry),
                    ))
                })?;
            url = target.resolve(location);
        }
        Err(Failure::Ours(Error::new(
            ErrorKind::Refused,
            format!(
                "{}: {} {} was redirected more than {} times (a loop?)",
                self.registry,
                req.method,
                path_of(&req.url),
                self.opts.max_redirects
            ),
        )))
    }

    fn exchange(
        &self,
        req: &mut Req<'_>,
        url: &str,
        auth: Option<String>,
    ) -> std::result::Result<Response<Body>, ureq::Error> {
        let mut b = Request::builder().method(req.method.clone()).uri(url);
        for (k, v) in &req.headers {
            b = b.header(*k, v);
        }
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        match &mut req.body {
            Payload::Empty => self.agent.run(b.body(())?),
            Payload::Bytes(bytes) => self.agent.run(b.body(*bytes)?),
            Payload::Stream(reader, len) => {
                let b = b.header("content-length", len.to_string());
                self.agent.run(b.body(SendBody::from_reader(*reader))?)
            }
            Payload::Unsized(reader) => self.agent.run(b.body(SendBody::from_reader(*reader))?),
        }
    }

    /// The error for an unwanted answer to `what`, with the error codes
    /// the registry gave in its body
    /// (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes>).
    pub(crate) fn refusal(&self, mut resp: Response<Body>, what: &str) -> Error {
        let status = resp.status().as_u16();
        let codes: Vec<(String, String)> = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_vec()
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("errors")?.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                let code = e.get("code")?.as_str()?.to_owned();
                let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
                Some((code, msg.chars().take(200).collect()))
            })
            .collect();
        let mut e = self.status_error(status, what);
        if codes
            .iter()
            .any(|(c, _)| c == "DIGEST_INVALID" || c == "SIZE_INVALID")
        {
            e.kind = ErrorKind::Corrupt;
        }
        for (code, msg) in codes.iter().take(3) {
            e.msg.push_str(&format!(" ({code}: {msg})"));
        }
        e
    }

    /// The error for an answer of `status` to `what`.
    fn status_error(&self, status: u16, what: &str) -> Error {
        let r = &self.registry;
        let (kind, msg) = match status {
            401 if self.opts.credentials.is_some() => (
                ErrorKind::Unauthorized,
                format!("{r}: {what}: the credentials were refused; run `strata login {r}` again"),
            ),
            401 => (
                ErrorKind::Unauthorized,
                format!("{r}: {what}: authentication required; run `strata login {r}`"),
            ),
            403 => (
                ErrorKind::Denied,
                format!("{r}: {what}: access denied for these credentials"),
            ),
            404 => (ErrorKind::NotFound, format!("{r}: {what}: not found")),
            429 => (
                ErrorKind::TooManyRequests,
                format!("{r}: {what}: too many requests, still after retrying; try again later"),
            ),
            500..=599 => (
                ErrorKind::Server,
                format!("{r}: {what}: the registry answered {status}, still after retrying; try again later"),
            ),
            _ => (
                ErrorKind::Server,
                format!("{r}: {what}: unexpected answer {status}"),
            ),
        };
        Error::new(kind, msg)
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn retryable(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed
    )
}

pub(crate) fn network(registry: &str, what: &str, e: ureq::Error) -> Error {
    Error::with(ErrorKind::Network, format!("{registry}: {what}"), e)
}

fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}
