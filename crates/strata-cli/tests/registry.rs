//! `strata push`, `pull`, `login` and `logout` against a real registry
//! (Debian's `docker-registry` on 127.0.0.1, plain HTTP): an imported
//! image pushed, removed and pulled back by tag and by digest keeps its
//! ID; credentials are checked, kept 0600 and forgotten.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::{require_root, sh, Strata};
use containers::on_terminal;
use fixtures::{have_tools, without_escapes, Busybox};
use strata_registry::testing::{self, Config, Registry};

fn setup() -> Option<(Strata, Registry)> {
    if !require_root() {
        return None;
    }
    let reg = match Registry::start(Config::default()) {
        Ok(r) => r,
        Err(why) => {
            testing::skip(&why);
            return None;
        }
    };
    Some((Strata::new("vfs"), reg))
}

/// A one-layer image whose `/etc/motd` says `text`, imported as
/// `reference`: its ID.
fn motd_image(s: &Strata, text: &str, reference: &str) -> String {
    let tree = s.path("tree");
    sh(&format!(
        "mkdir -p '{0}/etc' && echo {text} > '{0}/etc/motd'",
        tree.display()
    ));
    s.import_tree(&tree, reference)
}

#[test]
fn push_rmi_pull_keeps_the_image_id() {
    let Some((s, reg)) = setup() else { return };
    let id = motd_image(&s, "hello", "img:1");
    let dest = format!("{}/test/app:1", reg.addr);
    let out = s.ok(&["push", "--tls-verify=false", "img:1", &dest]);
    assert!(out.contains("digest: sha256:"), "{out}");
    let digest = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap()
        .to_owned();

    s.ok(&["rmi", "img:1"]);
    let out = s.ok(&["pull", "--tls-verify=false", &dest]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert!(out.ends_with(&id), "{out}");
    let images = s.ok(&["images"]);
    assert!(
        images.contains(&format!("{}/test/app", reg.addr)),
        "{images}"
    );

    let again = s.ok(&["pull", "--tls-verify=false", &dest]);
    assert!(again.contains("Image is up to date"), "{again}");
    let pinned = format!("{}/test/app@{digest}", reg.addr);
    assert_eq!(s.ok(&["pull", "-q", "--tls-verify=false", &pinned]), id);

    // Every tag at once.
    s.ok(&[
        "push",
        "--tls-verify=false",
        &id,
        &format!("{}/test/app:2", reg.addr),
    ]);
    let repo = format!("{}/test/app", reg.addr);
    let out = s.ok(&["pull", "-a", "-q", "--tls-verify=false", &repo]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [id.as_str(), id.as_str()],
        "{out}"
    );
    let images = s.json(&["images", "--format", "json"]);
    let tags = &images[0]["RepoTags"];
    for t in ["1", "2"] {
        let want = serde_json::json!(format!("{repo}:{t}"));
        assert!(tags.as_array().unwrap().contains(&want), "{images}");
    }
    let err = s.err(&["pull", "-a", "--tls-verify=false", &dest]);
    assert!(err.contains("--all-tags"), "{err}");

    // TLS is the default: a plain-HTTP registry is not spoken to.
    let err = s.err(&["pull", &dest]);
    assert!(err.contains(&reg.addr), "{err}");
}

/// push's options: the upload concurrency and the compression level,
/// refused out of range with the option named; in range, the image
/// pulls back the same.
#[test]
fn push_takes_upload_concurrency_and_a_compression_level() {
    let Some((s, reg)) = setup() else { return };
    let id = motd_image(&s, "level", "img:1");
    let dest = format!("{}/test/opts:1", reg.addr);
    // Out of range: refused, naming what is wrong.
    let refused: [(&[&str], &str); 3] = [
        (&["--max-concurrent-uploads", "0"], "max-concurrent-uploads"),
        (&["--compression-level", "10"], "compression level 10"),
        (
            &["--compression-format", "zstd", "--compression-level", "23"],
            "compression level 23",
        ),
    ];
    for (opts, said) in refused {
        let args = [&["push", "--tls-verify=false"], opts, &["img:1", &dest]].concat();
        let err = s.err(&args);
        assert!(err.contains(said), "{opts:?}: {err}");
    }

    let out = s.ok(&[
        "push",
        "--tls-verify=false",
        "--max-concurrent-uploads",
        "1",
        "--compression-level",
        "1",
        "img:1",
        &dest,
    ]);
    assert!(out.contains("1 layers sent"), "{out}");
    s.ok(&["rmi", "img:1"]);
    assert_eq!(s.ok(&["pull", "-q", "--tls-verify=false", &dest]), id);
}

/// A pushed or pulled image records `name@sha256:<manifest digest>`:
/// `image inspect` shows it, `images --digests` lists it, and `rmi`,
/// `create` and `image inspect` take it as a name.
#[test]
fn repository_digests_are_recorded_shown_and_resolved() {
    let Some((s, reg)) = setup() else { return };
    let repo = format!("{}/test/digests", reg.addr);
    let dest = format!("{repo}:1");
    let id = motd_image(&s, "digests", &dest);
    let out = s.ok(&["push", "--tls-verify=false", &dest]);
    let digest = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap()
        .to_owned();
    let pinned = format!("{repo}@{digest}");
    let inspect = s.json(&["image", "inspect", &pinned]);
    assert_eq!(inspect[0]["Id"], serde_json::json!(id), "{inspect}");
    assert_eq!(
        inspect[0]["RepoDigests"],
        serde_json::json!([pinned]),
        "{inspect}"
    );
    let listed = s.ok(&["images", "--digests"]);
    let header = listed.lines().next().unwrap();
    assert!(header.contains("DIGEST"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&repo) && l.contains(&digest)),
        "{listed}"
    );
    assert!(!s.ok(&["images"]).contains("DIGEST"));

    // Removed, then pulled back by digest: recorded again, and a
    // container is created from the pinned name.
    s.ok(&["rmi", &dest]);
    let err = s.err(&["create", &pinned]);
    assert!(err.contains("repository digest"), "{err}");
    let err = s.err(&["pull", "--max-concurrent-downloads", "0", &pinned]);
    assert!(err.contains("max-concurrent-downloads"), "{err}");
    // Off a terminal, a line per layer as it completes, on stderr.
    let pull = |args: &[&str]| {
        let out = s.run(&[&["pull", "--tls-verify=false"], args, &[pinned.as_str()]].concat());
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.trim().ends_with(&id), "{stdout}");
        String::from_utf8(out.stderr).unwrap()
    };
    let lines = pull(&["--max-concurrent-downloads", "1"]);
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(lines.ends_with(": Pull complete\n"), "{lines}");
    let lines = pull(&[]);
    assert!(lines.ends_with(": Already exists\n"), "{lines}");
    assert_eq!(pull(&["-q"]), "");
    let inspect = s.json(&["image", "inspect", &id]);
    assert_eq!(inspect[0]["RepoDigests"], serde_json::json!([pinned]));
    assert_eq!(inspect[0]["RepoTags"], serde_json::json!([]));
    let c = s.ok(&["create", &pinned]);
    s.ok(&["rm", &c]);
    let out = s.ok(&["rmi", &pinned]);
    assert!(out.contains(&format!("Untagged: {pinned}")), "{out}");
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
}

#[test]
fn login_keeps_credentials_and_logout_forgets_them() {
    let Some((s, reg)) = setup() else { return };
    let file = s.path("auth.json");
    let mut child = s
        .cmd(&[
            "login",
            "--tls-verify=false",
            "--authfile",
            file.to_str().unwrap(),
            "-u",
            "someone",
            "--password-stdin",
            &reg.addr,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Login Succeeded"
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let kept: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert!(kept["auths"][&reg.addr]["auth"].is_string(), "{kept}");

    let out = s.ok(&["logout", "--authfile", file.to_str().unwrap(), &reg.addr]);
    assert!(out.contains("Removed login credentials"), "{out}");
    let kept: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert!(kept["auths"].get(&reg.addr).is_none(), "{kept}");
    let err = s.err(&["logout", "--authfile", file.to_str().unwrap(), &reg.addr]);
    assert!(err.contains("not logged in"), "{err}");
}

/// A pull killed (SIGKILL) while a layer streams in publishes nothing:
/// `check` finds no corruption, no image or layer appeared, and the next
/// pull brings the image in whole.
#[test]
fn a_pull_killed_midway_leaves_nothing_half_done() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use strata_registry::testing::proxy::{Action, Fault, Proxy};

    let Some((s, reg)) = setup() else { return };
    let tree = s.path("tree");
    sh(&format!(
        "mkdir -p '{0}/data' && head -c 3000000 /dev/urandom > '{0}/data/blob'",
        tree.display()
    ));
    let id = s.import_tree(&tree, "img:1");
    let dest = format!("{}/test/app:1", reg.addr);
    s.ok(&["push", "--tls-verify=false", "img:1", &dest]);
    s.ok(&["rmi", "img:1"]);
    assert_eq!(
        s.json(&["images", "--format", "json"]),
        serde_json::json!([])
    );

    // Blobs stall after their first megabyte: the config (smaller) comes
    // whole, the layer a third of the way.
    let stalled = Arc::new(AtomicUsize::new(0));
    let n = stalled.clone();
    let proxy = Proxy::start(&reg.addr, move |req| {
        if req.is_blob_get() {
            n.fetch_add(1, Ordering::SeqCst);
            Action::Mangle(Fault::StallAfter(1_000_000, Duration::from_secs(20)))
        } else {
            Action::Forward
        }
    });
    let via = format!("{}/test/app:1", proxy.addr);
    let mut child = s
        .cmd(&["pull", "--tls-verify=false", &via])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stalled.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The config and then the layer were asked for: the layer is mid-way.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        stalled.load(Ordering::SeqCst) >= 2,
        "the layer was never asked for"
    );

    // check reads the store as it was left: the killed pull's staging
    // may be there as debris (the next change clears it), never as
    // corruption.
    let checked = s.run(&["check", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap();
    let corrupt: Vec<&serde_json::Value> = report["Findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["Corruption"] == true)
        .collect();
    assert!(corrupt.is_empty(), "{corrupt:#?}");
    assert_eq!(
        s.json(&["images", "--format", "json"]),
        serde_json::json!([])
    );

    let out = s.ok(&["pull", "-q", "--tls-verify=false", &dest]);
    assert_eq!(out, id);
}

/// registries.conf as Podman reads it: a registry marked insecure is
/// spoken to over plain HTTP without --tls-verify=false; a mirror is
/// tried first (here the only place that answers); a blocked registry is
/// refused.
#[test]
fn registries_conf_marks_insecure_registries_and_mirrors() {
    let Some((s, reg)) = setup() else { return };
    let id = motd_image(&s, "mirrored", "img:1");
    let conf = s.path("registries.conf");
    let gone = format!("127.0.0.1:{}", testing::free_port());
    fs::write(
        &conf,
        format!(
            r#"
[[registry]]
location = "{reg}"
insecure = true

[[registry]]
location = "{gone}"
insecure = true
[[registry.mirror]]
location = "{reg}/mirrored"
insecure = true

[[registry]]
prefix = "blocked.example"
blocked = true
"#,
            reg = reg.addr
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    s.ok(&[
        "push",
        "--registries-conf",
        conf,
        "img:1",
        &format!("{}/mirrored/app:1", reg.addr),
    ]);
    s.ok(&["rmi", "img:1"]);
    let out = s.ok(&[
        "pull",
        "-q",
        "--registries-conf",
        conf,
        &format!("{gone}/app:1"),
    ]);
    assert_eq!(out, id);
    let err = s.err(&["pull", "--registries-conf", conf, "blocked.example/x:1"]);
    assert!(err.contains("blocked"), "{err}");
}

/// The first 12 hex digits of each digest in `v` (a JSON array of
/// `sha256:…` strings): what the progress lines name layers by.
fn shorts(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| fixtures::hex(d.as_str().unwrap())[..12].to_owned())
        .collect()
}

/// Whether `layer`'s line says `word` when last drawn on `screen` (the
/// lines are redrawn in place, padded to the terminal's width).
fn says(screen: &str, layer: &str, word: &str) -> bool {
    let shown = without_escapes(screen);
    let head = format!("{layer}: ");
    shown.rfind(&head).is_some_and(|at| {
        let rest = &shown[at + head.len()..];
        rest.starts_with(word) && rest[word.len()..].starts_with([' ', '\n'])
    })
}

/// On a terminal, push and pull draw a line per layer, each ending in
/// Docker's word for what became of it (pushed, mounted, already there;
/// pull complete); off one, push says the same once per layer on stderr.
#[test]
fn push_and_pull_draw_a_line_per_layer_on_a_terminal() {
    let test = "push_and_pull_draw_a_line_per_layer_on_a_terminal";
    let Some((s, reg)) = setup() else { return };
    if !have_tools(test, &["script", "umoci", "skopeo", "busybox", "gzip"]) {
        return;
    }
    let work = s.path("fixture");
    fs::create_dir(&work).unwrap();
    let bb = Busybox::build(&work);
    let archive = bb.docker_archive("d.tar", "busybox:v2");
    s.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    let inspect = s.json(&["image", "inspect", "busybox:v2"]);
    let layers = shorts(&inspect[0]["RootFS"]["Layers"]);
    assert_eq!(layers.len(), 2, "{inspect}");

    let push = |repo: &str| {
        let dest = format!("{}/{repo}", reg.addr);
        let screen = on_terminal(&s, &["push", "--tls-verify=false", "busybox:v2", &dest]);
        assert!(screen.contains("digest: sha256:"), "{screen:?}");
        screen
    };
    let screen = push("test/bb:1");
    for l in &layers {
        assert!(says(&screen, l, "Pushed"), "{l}: {screen:?}");
    }
    let screen = push("test/other:1");
    for l in &layers {
        assert!(says(&screen, l, "Mounted"), "{l}: {screen:?}");
    }
    // Off a terminal: the same words, a line each, once the layer is in.
    let out = s.run(&[
        "push",
        "--tls-verify=false",
        "busybox:v2",
        &format!("{}/test/bb:2", reg.addr),
    ]);
    assert!(out.status.success(), "{out:?}");
    let mut said: Vec<String> = String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    said.sort();
    let mut want: Vec<String> = layers
        .iter()
        .map(|l| format!("{l}: Layer already exists"))
        .collect();
    want.sort();
    assert_eq!(said, want);

    // Pulled into a store of its own, named by the blobs' digests.
    let manifest = sh(&format!(
        "skopeo inspect --raw --tls-verify=false docker://{}/test/bb:1",
        reg.addr
    ));
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let blobs: Vec<serde_json::Value> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    let blobs = shorts(&serde_json::Value::Array(blobs));
    let fresh = Strata::new("vfs");
    let screen = on_terminal(
        &fresh,
        &[
            "pull",
            "--tls-verify=false",
            &format!("{}/test/bb:1", reg.addr),
        ],
    );
    assert!(screen.contains("Downloaded newer image"), "{screen:?}");
    for b in &blobs {
        assert!(says(&screen, b, "Pull complete"), "{b}: {screen:?}");
    }
    let screen = on_terminal(
        &fresh,
        &[
            "pull",
            "--tls-verify=false",
            &format!("{}/test/other:1", reg.addr),
        ],
    );
    for b in &blobs {
        assert!(says(&screen, b, "Already exists"), "{b}: {screen:?}");
    }
}
