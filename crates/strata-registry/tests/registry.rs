//! The client against a real registry (Debian's `docker-registry`) on
//! 127.0.0.1: push and pull back, TLS from a CA the test makes with
//! htpasswd auth, the bearer-token dance, and faults injected by a proxy
//! in front of it (cuts, corrupt bytes, stalls, redirects, 429/503).

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use strata_archive::Digest;
use strata_registry::{AuthFile, Client, Credentials, Error, ErrorKind, Mount, Options};

use strata_registry::testing::proxy::{Action, Fault, Proxy, Request};
use strata_registry::testing::{self, Config, Registry, PASSWORD, USER};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry over TLS from a private CA, with htpasswd auth.
const SECURED: Config = Config {
    tls: true,
    htpasswd: true,
};

/// The test user's credentials, with `password`.
fn user(password: &str) -> Credentials {
    Credentials {
        username: USER.into(),
        password: password.into(),
    }
}

/// A registry, or `None` after saying SKIPPED.
fn registry(cfg: Config) -> Option<Registry> {
    match Registry::start(cfg) {
        Ok(r) => Some(r),
        Err(why) => {
            testing::skip(&why);
            None
        }
    }
}

/// Options for a plain-HTTP registry on this machine: short waits.
fn local() -> Options {
    Options {
        insecure: true,
        backoff: Duration::from_millis(20),
        read_timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

fn sha(bytes: &[u8]) -> Digest {
    Digest::from_sha256(Sha256::new_with_prefix(bytes))
}

/// `n` bytes that do not repeat in any short pattern.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// An image pushed to `repo:tag`: a config and one layer blob.
struct Pushed {
    layer: Vec<u8>,
    layer_digest: Digest,
    manifest_digest: Digest,
}

fn push_image(c: &Client, repo: &str, tag: &str, layer_len: usize) -> Pushed {
    let layer = noise(layer_len, layer_len as u64);
    let layer_digest = sha(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    );
    let config_digest = sha(config.as_bytes());
    if c.blob_exists(repo, &layer_digest).unwrap().is_none() {
        c.upload_blob(repo, &layer_digest, layer.len() as u64, &mut &layer[..])
            .unwrap();
    }
    c.upload_blob_chunked(repo, &config_digest, &mut config.as_bytes(), 64)
        .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let manifest_digest = c
        .put_manifest(repo, tag, OCI_MANIFEST, manifest.as_bytes())
        .unwrap();
    assert_eq!(manifest_digest, sha(manifest.as_bytes()));
    Pushed {
        layer,
        layer_digest,
        manifest_digest,
    }
}

/// A plain registry and a client to it; `None` after saying SKIPPED.
fn with_client() -> Option<(Registry, Client)> {
    let reg = registry(Config::default())?;
    let c = Client::new(&reg.addr, local()).unwrap();
    // Marked insecure and speaking no TLS: plain HTTP.
    assert_eq!(c.base_url(), format!("http://{}", reg.addr));
    Some((reg, c))
}

/// A client to `addr` with the test user's credentials.
fn logged_in(addr: &str) -> Client {
    let creds = user(PASSWORD);
    let opts = Options {
        credentials: Some(creds),
        ..local()
    };
    Client::new(addr, opts).unwrap()
}

/// The registry with `test/app:v1` pushed (a layer of `layer_len` bytes)
/// and a client straight to it; `None` after saying SKIPPED.
fn with_pushed(layer_len: usize) -> Option<(Registry, Client, Pushed)> {
    let (reg, c) = with_client()?;
    let p = push_image(&c, "test/app", "v1", layer_len);
    Some((reg, c, p))
}

/// A proxy in front of `upstream` answering the requests `wanted` picks
/// as `act` says, and forwarding the rest.
fn proxy_on(
    upstream: &str,
    wanted: fn(&Request) -> bool,
    act: impl Fn(&Request) -> Action + Send + Sync + 'static,
) -> Proxy {
    Proxy::start(upstream, move |req| {
        if wanted(req) {
            act(req)
        } else {
            Action::Forward
        }
    })
}

/// [`proxy_on`] acting on the first `times` requests `wanted` picks and
/// forwarding the later ones; with the count of all those it picked.
fn proxy_on_first(
    upstream: &str,
    wanted: fn(&Request) -> bool,
    times: usize,
    act: impl Fn() -> Action + Send + Sync + 'static,
) -> (Proxy, Arc<AtomicUsize>) {
    let picked = Arc::new(AtomicUsize::new(0));
    let n = picked.clone();
    let proxy = proxy_on(upstream, wanted, move |_| {
        if n.fetch_add(1, Ordering::SeqCst) < times {
            act()
        } else {
            Action::Forward
        }
    });
    (proxy, picked)
}

/// `c` reads back the layer pushed as `p`, whole.
fn assert_reads_layer(c: &Client, p: &Pushed) {
    let blob = c
        .open_blob("test/app", &p.layer_digest, p.layer.len() as u64)
        .unwrap();
    assert_eq!(read_all(blob).unwrap(), p.layer);
}

fn read_all(mut r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

/// The registry error an I/O error carries.
fn kind_of(e: &std::io::Error) -> ErrorKind {
    Error::from_io(e)
        .unwrap_or_else(|| panic!("not a registry error: {e:?}"))
        .kind()
}

#[test]
fn push_then_pull_back_by_tag_and_digest() {
    let Some((_reg, c)) = with_client() else {
        return;
    };
    c.ping().unwrap();
    let p = push_image(&c, "test/app", "v1", 300_000);
    assert_eq!(
        c.blob_exists("test/app", &p.layer_digest).unwrap(),
        Some(p.layer.len() as u64)
    );
    let by_tag = c.get_manifest("test/app", "v1").unwrap();
    assert_eq!(by_tag.digest, p.manifest_digest);
    assert_eq!(by_tag.media_type, OCI_MANIFEST);
    let by_digest = c
        .get_manifest("test/app", &p.manifest_digest.to_string())
        .unwrap();
    assert_eq!(by_digest.bytes, by_tag.bytes);
    assert_reads_layer(&c, &p);
    // Without a descriptor's size: the registry's length, still checked
    // against the digest.
    let blob = c.open_blob_unsized("test/app", &p.layer_digest).unwrap();
    assert_eq!(blob.size(), p.layer.len() as u64);
    assert_eq!(read_all(blob).unwrap(), p.layer);

    let missing = c.get_manifest("test/app", "nope").unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
}

#[test]
fn blob_from_another_repository_is_mounted_not_sent() {
    let Some((_reg, c)) = with_client() else {
        return;
    };
    let p = push_image(&c, "test/base", "v1", 10_000);
    assert_eq!(
        c.blob_exists("test/derived", &p.layer_digest).unwrap(),
        None
    );
    assert_eq!(
        c.mount_blob("test/derived", &p.layer_digest, "test/base")
            .unwrap(),
        Mount::Mounted
    );
    assert!(c
        .blob_exists("test/derived", &p.layer_digest)
        .unwrap()
        .is_some());
    let absent = sha(b"never pushed");
    assert_eq!(
        c.mount_blob("test/derived", &absent, "test/base").unwrap(),
        Mount::NotMounted
    );
}

#[test]
fn blob_bytes_must_match_the_digest_the_registry_is_told() {
    let Some((_reg, c)) = with_client() else {
        return;
    };
    let lie = sha(b"something else");
    let e = c
        .upload_blob("test/app", &lie, 5, &mut &b"hello"[..])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("DIGEST_INVALID"), "{e}");
}

#[test]
fn tls_with_a_private_ca_and_htpasswd() {
    let Some(reg) = registry(SECURED) else {
        return;
    };
    let certs_d = reg.certs_d.clone();
    let opts = |creds: Option<Credentials>| Options {
        insecure: false,
        certs_d: certs_d.clone(),
        credentials: creds,
        backoff: Duration::from_millis(20),
        ..Options::default()
    };
    // Without our CA, marked insecure or not.
    let without_ca = |insecure: bool, creds: Option<Credentials>| {
        let opts = Options {
            certs_d: None,
            insecure,
            ..opts(creds)
        };
        Client::new(&reg.addr, opts).unwrap()
    };
    // No CA for it: the certificate is not trusted.
    let e = without_ca(false, None).ping().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    // Marked insecure (`--tls-verify=false`): TLS without verifying the
    // certificate, as Podman does, not plain HTTP to a TLS port; the
    // registry then asks for credentials over that TLS.
    let unverified = without_ca(true, None);
    assert_eq!(unverified.base_url(), format!("https://{}", reg.addr));
    let e = unverified.ping().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    without_ca(true, Some(user(PASSWORD))).ping().unwrap();

    let anonymous = Client::new(&reg.addr, opts(None)).unwrap();
    let e = anonymous.ping().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("strata login"), "{e}");

    let wrong = Client::new(&reg.addr, opts(Some(user("not-the-password")))).unwrap();
    let e = wrong.get_manifest("test/app", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(!format!("{e:?}").contains("not-the-password"), "{e:?}");

    // Credentials as `strata login` will keep them.
    let file = reg.dir.path().join("auth.json");
    let mut auth = AuthFile::open(&file).unwrap();
    auth.set(&reg.addr, &user(PASSWORD));
    auth.save().unwrap();
    let creds = AuthFile::open(&file).unwrap().get(&reg.addr).unwrap();
    let c = Client::new(&reg.addr, opts(creds)).unwrap();
    c.ping().unwrap();
    let p = push_image(&c, "test/app", "v1", 50_000);
    let m = c.get_manifest("test/app", "v1").unwrap();
    assert_eq!(m.digest, p.manifest_digest);
    assert_reads_layer(&c, &p);
}

/// A plain-HTTP registry is reached only when marked insecure.
#[test]
fn plain_http_only_when_marked_insecure() {
    let Some(reg) = registry(Config::default()) else {
        return;
    };
    let c = Client::new(
        &reg.addr,
        Options {
            insecure: false,
            retries: 0,
            ..local()
        },
    )
    .unwrap();
    // Speaking TLS to a plain-HTTP server fails; it never falls back.
    let e = c.ping().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
}

/// A gate in front of the registry that wants a bearer token from its
/// own token endpoint (`/token`), as Docker Hub does.
fn bearer_gate(upstream: &str, token_requests: Arc<std::sync::Mutex<Vec<Request>>>) -> Proxy {
    let realm_port = Arc::new(std::sync::Mutex::new(String::new()));
    let realm = realm_port.clone();
    let proxy = Proxy::start(upstream, move |req| {
        if req.path() == "/token" {
            token_requests.lock().unwrap().push(req.clone());
            let want = format!("Basic {}", base64_encode(&format!("{USER}:{PASSWORD}")));
            return if req.header("authorization") == Some(want.as_str()) {
                Action::Respond(200, vec![], br#"{"token":"good-token"}"#.to_vec())
            } else {
                Action::Respond(401, vec![], b"{}".to_vec())
            };
        }
        if req.header("authorization") == Some("Bearer good-token") {
            return Action::Forward;
        }
        let challenge = format!(
            r#"Bearer realm="http://{}/token",service="test-registry""#,
            realm.lock().unwrap()
        );
        Action::Respond(
            401,
            vec![("WWW-Authenticate".into(), challenge)],
            b"{}".to_vec(),
        )
    });
    *realm_port.lock().unwrap() = proxy.addr.clone();
    proxy
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn bearer_token_dance() {
    let Some((reg, _, p)) = with_pushed(20_000) else {
        return;
    };
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate = bearer_gate(&reg.addr, tokens.clone());

    let anonymous = Client::new(&gate.addr, local()).unwrap();
    let e = anonymous.get_manifest("test/app", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");

    let c = logged_in(&gate.addr);
    let m = c.get_manifest("test/app", "v1").unwrap();
    assert_eq!(m.digest, p.manifest_digest);
    assert_reads_layer(&c, &p);
    let seen = tokens.lock().unwrap().clone();
    let last = seen.last().expect("a token was asked for");
    assert!(
        last.target.contains("service=test-registry")
            && last.target.contains("scope=repository%3Atest%2Fapp%3Apull"),
        "{}",
        last.target
    );
    // The token is reused for the same scope: one request for the
    // anonymous client, one for this one.
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn blob_cut_midway_resumes_with_a_range_request() {
    let Some((reg, _, p)) = with_pushed(200_000) else {
        return;
    };
    let (proxy, _) = proxy_on_first(&reg.addr, Request::is_blob_get, 2, || {
        Action::Mangle(Fault::CutAfter(70_000))
    });
    let c = Client::new(&proxy.addr, local()).unwrap();
    assert_reads_layer(&c, &p);
    let ranges: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|r| r.is_blob_get())
        .map(|r| r.header("range").unwrap_or("-").to_owned())
        .collect();
    assert_eq!(ranges, ["-", "bytes=70000-", "bytes=140000-"]);
}

#[test]
fn a_partly_fetched_blob_resumes_from_its_offset() {
    let Some((_reg, c, p)) = with_pushed(100_000) else {
        return;
    };
    // From byte 40,000 on, the bytes before it hashed into `prefix`.
    let resume = |prefix| {
        c.resume_blob(
            "test/app",
            &p.layer_digest,
            p.layer.len() as u64,
            40_000,
            prefix,
        )
        .unwrap()
    };
    let rest = resume(Sha256::new_with_prefix(&p.layer[..40_000]));
    assert_eq!(read_all(rest).unwrap(), &p.layer[40_000..]);
    // A wrong prefix: the end of the stream says so.
    let rest = resume(Sha256::new_with_prefix(&p.layer[1..40_001]));
    let e = read_all(rest).unwrap_err();
    assert_eq!(kind_of(&e), ErrorKind::Corrupt, "{e}");
}

#[test]
fn a_corrupt_byte_fails_the_blob_at_its_end() {
    let Some((reg, _, p)) = with_pushed(50_000) else {
        return;
    };
    let proxy = proxy_on(&reg.addr, Request::is_blob_get, |_| {
        Action::Mangle(Fault::FlipByte(12_345))
    });
    let c = Client::new(&proxy.addr, local()).unwrap();
    let mut blob = c
        .open_blob("test/app", &p.layer_digest, p.layer.len() as u64)
        .unwrap();
    let mut got = Vec::new();
    let e = blob.read_to_end(&mut got).unwrap_err();
    assert_eq!(kind_of(&e), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains(&p.layer_digest.to_string()), "{e}");
    // Every byte was handed on before the check: nothing was spooled.
    assert_eq!(got.len(), p.layer.len());

    // A descriptor that says the wrong size is refused before reading.
    let e = c
        .open_blob("test/app", &p.layer_digest, p.layer.len() as u64 - 1)
        .err()
        .expect("a wrong size was accepted");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

#[test]
fn a_stalled_server_times_out() {
    let Some((reg, _, p)) = with_pushed(50_000) else {
        return;
    };
    let (proxy, stalls) = proxy_on_first(&reg.addr, Request::is_blob_get, usize::MAX, || {
        Action::Mangle(Fault::StallAfter(1000, Duration::from_secs(8)))
    });
    let c = Client::new(
        &proxy.addr,
        Options {
            read_timeout: Duration::from_millis(300),
            blob_resumes: 2,
            ..local()
        },
    )
    .unwrap();
    let started = Instant::now();
    let blob = c
        .open_blob("test/app", &p.layer_digest, p.layer.len() as u64)
        .unwrap();
    let e = read_all(blob).unwrap_err();
    assert_eq!(kind_of(&e), ErrorKind::Network, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // The first try and two resumes, each from where the last stalled.
    assert_eq!(stalls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_blob_redirected_to_another_host_is_fetched_without_credentials() {
    let Some((reg, _, p)) = with_pushed(30_000) else {
        return;
    };
    // The "storage host": forwards to the registry, logs what it saw.
    let storage = Proxy::start(&reg.addr, |_| Action::Forward);
    let storage_addr = storage.addr.clone();
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate = bearer_gate(&reg.addr, tokens);
    // In front of the gate: blob GETs answered with a 307 elsewhere.
    let front = proxy_on(&gate.addr, Request::is_blob_get, move |req| {
        if req.header("authorization").is_some() {
            let loc = format!("http://{storage_addr}{}", req.target);
            Action::Respond(307, vec![("Location".into(), loc)], Vec::new())
        } else {
            Action::Forward
        }
    });
    let c = logged_in(&front.addr);
    assert_reads_layer(&c, &p);
    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 1, "{at_storage:?}");
    assert_eq!(at_storage[0].header("authorization"), None);
}

#[test]
fn a_redirect_loop_is_cut_short() {
    let Some((reg, _, p)) = with_pushed(1_000) else {
        return;
    };
    let proxy = proxy_on(&reg.addr, Request::is_blob_get, |req| {
        Action::Respond(
            302,
            vec![("Location".into(), req.target.clone())],
            Vec::new(),
        )
    });
    let c = Client::new(&proxy.addr, local()).unwrap();
    let e = c
        .open_blob("test/app", &p.layer_digest, p.layer.len() as u64)
        .err()
        .expect("a redirect loop was followed to the end");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("redirected more than"), "{e}");
    let hops = proxy.requests().iter().filter(|r| r.is_blob_get()).count();
    assert_eq!(hops, Options::default().max_redirects as usize + 1);
}

#[test]
fn busy_and_failing_registries_are_retried_a_bounded_number_of_times() {
    let Some((reg, _, p)) = with_pushed(1_000) else {
        return;
    };
    // Two 503s, then the real answer.
    let (flaky, count) = proxy_on_first(&reg.addr, Request::is_manifest_get, 2, || {
        Action::Respond(503, vec![], Vec::new())
    });
    let c = Client::new(&flaky.addr, local()).unwrap();
    assert_eq!(
        c.get_manifest("test/app", "v1").unwrap().digest,
        p.manifest_digest
    );
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // 429 every time: given up after the retries.
    let busy = proxy_on(&reg.addr, Request::is_manifest_get, |_| {
        Action::Respond(429, vec![("Retry-After".into(), "0".into())], Vec::new())
    });
    let c = Client::new(&busy.addr, local()).unwrap();
    let e = c.get_manifest("test/app", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooManyRequests, "{e}");
    let tries = busy
        .requests()
        .iter()
        .filter(|r| r.is_manifest_get())
        .count();
    assert_eq!(tries, local().retries as usize + 1);
}

/// How getting `test/app:v1` fails through a proxy answering manifest
/// GETs as `act` says.
fn manifest_error(upstream: &str, act: impl Fn() -> Action + Send + Sync + 'static) -> Error {
    let proxy = proxy_on(upstream, Request::is_manifest_get, move |_| act());
    let c = Client::new(&proxy.addr, local()).unwrap();
    c.get_manifest("test/app", "v1").unwrap_err()
}

fn oci_manifest_type() -> Vec<(String, String)> {
    vec![("Content-Type".into(), OCI_MANIFEST.into())]
}

#[test]
fn manifests_are_capped_and_their_digest_checked() {
    let Some((reg, _, p)) = with_pushed(1_000) else {
        return;
    };
    let huge = vec![b' '; (4 << 20) + 1];
    let big = huge.clone();
    let e = manifest_error(&reg.addr, move || {
        Action::Respond(200, oci_manifest_type(), big.clone())
    });
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("4 MiB"), "{e}");

    let e = manifest_error(&reg.addr, move || {
        Action::RespondUnframed(200, oci_manifest_type(), huge.clone())
    });
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");

    // One byte changed on the way: by digest, the pin catches it; by
    // tag, the registry's Docker-Content-Digest does.
    let corrupt = proxy_on(&reg.addr, Request::is_manifest_get, |_| {
        Action::Mangle(Fault::FlipByte(5))
    });
    let c = Client::new(&corrupt.addr, local()).unwrap();
    for reference in [p.manifest_digest.to_string(), "v1".to_owned()] {
        let e = c.get_manifest("test/app", &reference).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{reference}: {e}");
    }
}

#[test]
fn a_blob_written_as_it_is_made_is_uploaded_in_chunks() {
    use std::io::Write;
    let Some((_reg, c)) = with_client() else {
        return;
    };
    let data = noise(100_000, 7);
    let mut up = c.begin_upload("test/app", 16 << 10).unwrap();
    for piece in data.chunks(777) {
        up.write_all(piece).unwrap();
    }
    let (digest, size) = up.finish(None).unwrap();
    assert_eq!((digest.clone(), size), (sha(&data), data.len() as u64));
    assert_eq!(c.blob_exists("test/app", &digest).unwrap(), Some(size));
    let blob = c.open_blob("test/app", &digest, size).unwrap();
    assert_eq!(read_all(blob).unwrap(), data);

    // Told to expect another digest: not committed.
    let other = noise(1_000, 8);
    let mut up = c.begin_upload("test/app", 16 << 10).unwrap();
    up.write_all(&other).unwrap();
    let e = up.finish(Some(&digest)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(c.blob_exists("test/app", &sha(&other)).unwrap(), None);
}

/// A blob of unknown length goes in one streamed PATCH and is committed
/// under the digest of what was read; a reader that fails midway leaves
/// nothing committed.
#[test]
fn a_blob_read_as_it_is_made_is_uploaded_in_one_stream() {
    let Some(reg) = registry(Config::default()) else {
        return;
    };
    let c = Client::new(&reg.addr, local()).unwrap();
    let data = noise(300_000, 9);
    let (digest, size) = c.upload_stream("test/app", &mut &data[..]).unwrap();
    assert_eq!((digest.clone(), size), (sha(&data), data.len() as u64));
    assert_eq!(c.blob_exists("test/app", &digest).unwrap(), Some(size));
    let blob = c.open_blob("test/app", &digest, size).unwrap();
    assert_eq!(read_all(blob).unwrap(), data);

    /// Yields `left` bytes, then fails.
    struct Failing<'a> {
        data: &'a [u8],
        left: usize,
    }
    impl std::io::Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Err(std::io::Error::other("the compressor died"));
            }
            let n = buf.len().min(self.left).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.left -= n;
            Ok(n)
        }
    }
    let other = noise(200_000, 10);
    let mut failing = Failing {
        data: &other,
        left: 100_000,
    };
    assert!(c.upload_stream("test/app", &mut failing).is_err());
    assert_eq!(c.blob_exists("test/app", &sha(&other)).unwrap(), None);
    assert_eq!(
        c.blob_exists("test/app", &sha(&other[..100_000])).unwrap(),
        None
    );
}

#[test]
fn login_keeps_only_credentials_the_registry_takes() {
    use std::os::unix::fs::PermissionsExt;
    let Some(reg) = registry(SECURED) else {
        return;
    };
    let file = reg.dir.path().join("containers/auth.json");
    let opts = || Options {
        certs_d: reg.certs_d.clone(),
        ..Options::default()
    };
    let wrong = user("wrong");
    let e = strata_registry::login(&reg.addr, &wrong, opts(), &file).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(!file.exists());

    let right = user(PASSWORD);
    strata_registry::login(&reg.addr, &right, opts(), &file).unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let from_file = Options::for_registry(&reg.addr, Some(&file)).unwrap();
    assert_eq!(from_file.credentials, Some(right));
    let c = Client::new(
        &reg.addr,
        Options {
            certs_d: reg.certs_d.clone(),
            ..from_file
        },
    )
    .unwrap();
    c.ping().unwrap();

    strata_registry::logout(&reg.addr, &file).unwrap();
    assert_eq!(AuthFile::open(&file).unwrap().get(&reg.addr).unwrap(), None);
    let e = strata_registry::logout(&reg.addr, &file).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn tags_are_listed() {
    let Some((_reg, c)) = with_client() else {
        return;
    };
    for tag in ["v1", "v2", "latest"] {
        push_image(&c, "test/app", tag, 1_000);
    }
    let mut tags = c.list_tags("test/app").unwrap();
    tags.sort();
    assert_eq!(tags, ["latest", "v1", "v2"]);
    let e = c.list_tags("test/none").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}
