//! `pull` and `push` against a real registry (Debian's `docker-registry`
//! on 127.0.0.1): images pushed with the registry client, pulled through
//! the store's load pipeline, every layer checked against its digest and
//! diffID; images of the store pushed and pulled back into another.

use std::io::{Cursor, Write};

use sha2::{Digest as _, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use strata_registry::testing::proxy::{Action, Fault, Proxy};
use strata_registry::testing::{self, Config, Registry};
use strata_registry::{Client, Options};
use strata_store::{
    Digest, ErrorKind, ImageRef, LayerCompression, LayerStatus, NoProgress, Progress, Pulled,
    PushOptions, Pushed, Store,
};
use strata_test_support::Entry;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn sha(b: &[u8]) -> Digest {
    Digest::from_sha256(Sha256::new_with_prefix(b))
}

/// A one-file layer as a tar.
fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    strata_test_support::layer_tar(&[(name, Entry::File(content.to_vec()))])
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn host_arch() -> &'static str {
    strata_image::oci_arch()
}

fn put_blob(c: &Client, repo: &str, bytes: &[u8]) -> Digest {
    let d = sha(bytes);
    c.upload_blob(repo, &d, bytes.len() as u64, &mut &bytes[..])
        .unwrap();
    d
}

/// Pushes a one-layer image of `tar` (gzipped) for `arch`; returns
/// (manifest JSON, image ID).
fn push_one(c: &Client, repo: &str, tar: &[u8], arch: &str) -> (String, Digest) {
    push_image(c, repo, &[tar.to_vec()], &[sha(tar)], arch)
}

/// Pushes an image of `layers` (each gzipped) whose config says
/// `diff_ids`, for `arch`; returns (manifest JSON, image ID).
fn push_image(
    c: &Client,
    repo: &str,
    layers: &[Vec<u8>],
    diff_ids: &[Digest],
    arch: &str,
) -> (String, Digest) {
    let diffs: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diffs.join(",")
    );
    let config_digest = put_blob(c, repo, config.as_bytes());
    let descs: Vec<String> = layers
        .iter()
        .map(|l| {
            let gz = gzip(l);
            let d = put_blob(c, repo, &gz);
            format!(
                r#"{{"mediaType":"{OCI_LAYER_GZIP}","digest":"{d}","size":{}}}"#,
                gz.len()
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        descs.join(",")
    );
    (manifest, config_digest)
}

struct Fixture {
    _reg: Registry,
    client: Client,
    _t: tempfile::TempDir,
    store: Store,
}

/// `image` pushed through `client` as `repository:tag`, with gzip layers.
fn push_gzip(
    store: &Store,
    client: &Client,
    image: &str,
    repository: &str,
    tag: &str,
) -> strata_store::Result<Pushed> {
    store.push(
        client,
        image,
        repository,
        tag,
        LayerCompression::Gzip,
        &NoProgress,
    )
}

/// A client of the registry at `addr`, over plain HTTP.
fn plain_http(addr: &str) -> Client {
    Client::new(
        addr,
        Options {
            insecure: true,
            ..Options::default()
        },
    )
    .unwrap()
}

fn fixture() -> Option<Fixture> {
    if !strata_test_support::require_root() {
        return None;
    }
    let reg = match Registry::start(Config::default()) {
        Ok(r) => r,
        Err(why) => {
            strata_test_support::require(&why, false);
            return None;
        }
    };
    let client = plain_http(&reg.addr);
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(&t.path().join("root"), Some("vfs")).unwrap();
    Some(Fixture {
        _reg: reg,
        client,
        _t: t,
        store,
    })
}

#[test]
fn pull_by_tag_then_again_finds_every_layer_present() {
    let Some(f) = fixture() else { return };
    let base = layer_tar("etc/motd", b"hello\n");
    let top = layer_tar("app/run", b"#!/bin/sh\n");
    let (digest, id) = serve_app(&f.client, &[base.clone(), top.clone()]);
    let tag = ImageRef::parse("test/app:v1").unwrap();
    let pulled = f
        .store
        .pull(&f.client, "test/app", "v1", Some(&tag), None, &NoProgress)
        .unwrap();
    assert_eq!(pulled.image.id, id);
    assert_eq!(pulled.digest, digest);
    assert_eq!(
        (pulled.image.layers_new, pulled.image.layers_present),
        (2, 0)
    );
    let image = f.store.image(&id).unwrap();
    assert_eq!(image.diff_ids, vec![sha(&base), sha(&top)]);
    assert_eq!(image.tags, vec![tag.clone()]);

    // By digest, again: nothing left to fetch.
    let again = f
        .store
        .pull(
            &f.client,
            "test/app",
            &digest.to_string(),
            None,
            None,
            &NoProgress,
        )
        .unwrap();
    assert_eq!(again.image.id, id);
    assert_eq!((again.image.layers_new, again.image.layers_present), (0, 2));
}

#[test]
fn a_repository_digest_names_the_image_in_inspect_lookups_and_rmi() {
    let Some(f) = fixture() else { return };
    let base = layer_tar("etc/motd", b"digests\n");
    let (digest, id) = serve_app(&f.client, std::slice::from_ref(&base));
    let tag = ImageRef::parse("test/app:v1").unwrap();
    let pinned = format!("test/app@{digest}");
    // Not known before it is recorded: the error says what is missing.
    let pulled = f
        .store
        .pull(&f.client, "test/app", "v1", Some(&tag), None, &NoProgress)
        .unwrap();
    let e = f.store.resolve_image(&pinned).unwrap_err();
    assert!(e.to_string().contains("repository digest"), "{e}");
    f.store
        .add_repo_digest(&pulled.image.id, &tag.with_digest(&pulled.digest))
        .unwrap();
    let image = f.store.image(&id).unwrap();
    assert_eq!(image.tags, vec![tag.clone()]);
    assert_eq!(image.repo_digests, vec![ImageRef::parse(&pinned).unwrap()]);
    assert_eq!(f.store.resolve_image(&pinned).unwrap(), id);
    // A tag beside the digest changes nothing: the digest decides.
    assert_eq!(
        f.store
            .resolve_image(&format!("test/app:other@{digest}"))
            .unwrap(),
        id
    );
    // A tag is refused where a digest belongs.
    assert!(f.store.add_repo_digest(&id, &tag).is_err());
    // Another tag keeps the image when the digest is removed ...
    f.store.tag(&id, "test/app:v2").unwrap();
    assert_eq!(
        f.store.remove_image(&pinned, false).unwrap(),
        vec![format!("Untagged: {pinned}")]
    );
    assert!(f.store.image(&id).unwrap().repo_digests.is_empty());
    // ... and, as in Docker, the repository's digests go with its last tag.
    f.store.remove_image("test/app:v2", false).unwrap();
    f.store
        .add_repo_digest(&id, &tag.with_digest(&digest))
        .unwrap();
    let done = f.store.remove_image("test/app:v1", false).unwrap();
    assert!(done.contains(&format!("Untagged: {pinned}")), "{done:?}");
    assert!(done.contains(&format!("Deleted: {id}")), "{done:?}");
    assert!(f.store.images().unwrap().is_empty());
}

#[test]
fn pull_of_an_index_takes_this_machines_platform_or_the_one_asked_for() {
    let Some(f) = fixture() else { return };
    let ours = layer_tar("which", b"ours\n");
    let theirs = layer_tar("which", b"theirs\n");
    let other_arch = if host_arch() == "s390x" {
        "ppc64le"
    } else {
        "s390x"
    };
    let (m1, id_ours) = push_one(&f.client, "test/multi", &ours, host_arch());
    let (m2, id_theirs) = push_one(&f.client, "test/multi", &theirs, other_arch);
    let mut entries = Vec::new();
    for (m, arch) in [(&m2, other_arch), (&m1, host_arch())] {
        let d = f
            .client
            .put_manifest(
                "test/multi",
                &sha(m.as_bytes()).to_string(),
                OCI_MANIFEST,
                m.as_bytes(),
            )
            .unwrap();
        entries.push(format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#,
            m.len()
        ));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    );
    f.client
        .put_manifest("test/multi", "latest", OCI_INDEX, index.as_bytes())
        .unwrap();
    let pulled = pull_ref(&f, &f.client, "test/multi", "latest").unwrap();
    assert_eq!(pulled.image.id, id_ours);
    assert_eq!(pulled.digest, sha(index.as_bytes()));

    // Asked for the other platform: that one.
    let multi_for = |platform: &str| {
        f.store.pull(
            &f.client,
            "test/multi",
            "latest",
            None,
            Some(platform),
            &NoProgress,
        )
    };
    let pulled = multi_for(&format!("linux/{other_arch}")).unwrap();
    assert_eq!(pulled.image.id, id_theirs);
    let e = multi_for("linux/mips64le").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("linux/mips64le"), "{e}");
}

#[test]
fn a_layer_that_is_not_what_the_config_says_leaves_the_store_as_it_was() {
    let Some(f) = fixture() else { return };
    let real = layer_tar("etc/motd", b"hello\n");
    let claimed = sha(b"some other tar");
    let (manifest, _) = push_image(&f.client, "test/bad", &[real], &[claimed], host_arch());
    put_manifest(&f, "test/bad", "v1", &manifest);
    let e = pull_ref(&f, &f.client, "test/bad", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(f.store.images().unwrap().is_empty());
    assert!(f.store.layers().unwrap().is_empty());

    let e = pull_ref(&f, &f.client, "test/none", "v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn a_pushed_image_pulls_back_with_the_same_id_and_diff_ids() {
    let Some(f) = fixture() else { return };
    let tar = layer_tar("etc/motd", b"committed\n");
    let id = import_img(&f, &tar);
    let pushed = push_gzip(&f.store, &f.client, "img:1", "test/pushed", "1").unwrap();
    assert_eq!((pushed.layers_sent, pushed.layers_present), (1, 0));
    let m = f.client.get_manifest("test/pushed", "1").unwrap();
    assert_eq!(m.digest, pushed.digest);

    // Into a second store: the same image.
    let t = tempfile::tempdir().unwrap();
    let (other, pulled) = pull_into(&f, &t.path().join("root"), "test/pushed", "1");
    assert_eq!(pulled.image.id, id);
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(
        other.image(&id).unwrap().diff_ids,
        f.store.image(&id).unwrap().diff_ids
    );
    assert_eq!(other.image(&id).unwrap().diff_ids, vec![sha(&tar)]);

    // Again: the registry has the layer; the manifest is the same.
    let again = push_gzip(&f.store, &f.client, "img:1", "test/pushed", "1").unwrap();
    assert_eq!((again.layers_sent, again.layers_present), (0, 1));
    assert_eq!(again.digest, pushed.digest);
}

/// A layer pushed once is found again without compressing it: present
/// in its repository (HEAD), mounted into another of the same registry
/// (`POST ?mount=&from=`), and the pushed images are whole.
#[test]
fn a_layer_pushed_before_is_mounted_into_another_repository() {
    let Some(f) = fixture() else { return };
    let tar = layer_tar("etc/motd", b"mounted\n");
    let id = import_img(&f, &tar);
    let (proxy, c) = forwarding(&f);
    let push = |repo: &str| push_gzip(&f.store, &c, "img:1", repo, "1").unwrap();
    let first = push("test/one");
    assert_eq!(sent_mounted_present(&first), (1, 0, 0));
    let before = proxy.requests().len();
    let second = push("test/two");
    assert_eq!(sent_mounted_present(&second), (0, 1, 0));
    let requests = proxy.requests();
    let mounts: Vec<&str> = requests[before..]
        .iter()
        .filter(|r| r.method == "POST" && r.target.contains("mount="))
        .map(|r| r.target.as_str())
        .collect();
    // One mount, for the layer; the config (not in the second
    // repository) is uploaded, the layer is not.
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert!(
        mounts[0].contains("mount=sha256") && mounts[0].contains("from=test%2Fone"),
        "{mounts:?}"
    );
    assert!(
        !requests[before..].iter().any(|r| r.method == "PATCH"),
        "nothing is uploaded"
    );
    let third = push("test/two");
    assert_eq!(sent_mounted_present(&third), (0, 0, 1));
    assert_eq!(third.digest, second.digest);
    assert_pulls_back(&f, "test/two", "1", &id);
}

/// Layers that came by pull are mounted from the repository they came
/// from when the image is pushed to another of the same registry.
#[test]
fn a_pulled_layer_is_mounted_from_where_it_came() {
    let Some(f) = fixture() else { return };
    let (_, id) = two_layer_image(&f);
    pull_app(&f, &f.client).unwrap();
    let pushed = push_gzip(&f.store, &f.client, id.as_str(), "test/copy", "1").unwrap();
    assert_eq!(sent_mounted_present(&pushed), (0, 2, 0));
    assert_pulls_back(&f, "test/copy", "1", &id);
}

/// skopeo (containers/image, what Podman pulls and pushes with) reads
/// what strata pushed, and strata pulls what skopeo pushed: the same
/// image ID and diffIDs either way.
#[test]
fn skopeo_agrees_on_what_was_pushed() {
    let Some(f) = fixture() else { return };
    if !strata_test_support::require("skopeo (apt-get install skopeo)", testing::have("skopeo")) {
        return;
    }
    let tar = layer_tar("etc/motd", b"interop\n");
    let id = import_img(&f, &tar);
    let addr = f.client.registry().to_owned();
    let skopeo = |args: &[&str]| {
        strata_test_support::run(std::process::Command::new("skopeo").args(args)).stdout
    };

    // strata → skopeo.
    let pushed = push_gzip(&f.store, &f.client, "img:1", "test/by-strata", "1").unwrap();
    let at = format!("docker://{addr}/test/by-strata:1");
    let config = skopeo(&["inspect", "--tls-verify=false", "--config", "--raw", &at]);
    assert_eq!(sha(&config), id);
    let info: serde_json::Value =
        serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &at])).unwrap();
    assert_eq!(info["Digest"], pushed.digest.to_string());

    // skopeo → strata, from a docker-archive strata saved.
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("img.tar");
    f.store
        .save(
            &["img:1".to_owned()],
            strata_store::SaveFormat::DockerArchive,
            &archive,
            &NoProgress,
        )
        .unwrap();
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{addr}/test/by-skopeo:1"),
    ]);
    let (other, pulled) = pull_into(&f, &t.path().join("root"), "test/by-skopeo", "1");
    assert_eq!(pulled.image.id, id);
    assert_eq!(other.image(&id).unwrap().diff_ids, vec![sha(&tar)]);
}

#[test]
fn a_foreign_layer_is_refused_and_nothing_is_stored() {
    let Some(f) = fixture() else { return };
    let tar = layer_tar("etc/motd", b"foreign\n");
    let (manifest, _) = push_one(&f.client, "test/foreign", &tar, host_arch());
    let manifest = manifest.replace(
        OCI_LAYER_GZIP,
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    );
    put_manifest(&f, "test/foreign", "1", &manifest);
    let e = pull_ref(&f, &f.client, "test/foreign", "1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("foreign"), "{e}");
    assert!(f.store.images().unwrap().is_empty());
    assert!(f.store.layers().unwrap().is_empty());
}

/// `repo:tag` pulled into a store of its own at `root` (vfs).
fn pull_into(f: &Fixture, root: &std::path::Path, repo: &str, tag: &str) -> (Store, Pulled) {
    let other = Store::open(root, Some("vfs")).unwrap();
    let pulled = other
        .pull(&f.client, repo, tag, None, None, &NoProgress)
        .unwrap();
    (other, pulled)
}

/// The one-layer image of `tar`, imported as `img:1`: its ID.
fn import_img(f: &Fixture, tar: &[u8]) -> Digest {
    f.store
        .import(&mut Cursor::new(tar.to_vec()), Some("img:1"), "")
        .unwrap();
    f.store.resolve_image("img:1").unwrap()
}

/// `test/app:v1` pulled through `client` into the fixture's store.
fn pull_app(f: &Fixture, client: &Client) -> strata_store::Result<Pulled> {
    pull_ref(f, client, "test/app", "v1")
}

/// `repo:tag` pulled through `client` into the fixture's store, with no
/// tag to set, no platform and no progress.
fn pull_ref(f: &Fixture, client: &Client, repo: &str, tag: &str) -> strata_store::Result<Pulled> {
    f.store.pull(client, repo, tag, None, None, &NoProgress)
}

/// `manifest` put as `repo:tag` in the fixture's registry: its digest.
fn put_manifest(f: &Fixture, repo: &str, tag: &str, manifest: &str) -> Digest {
    f.client
        .put_manifest(repo, tag, OCI_MANIFEST, manifest.as_bytes())
        .unwrap()
}

/// `repo:tag`, pulled into a store of its own, is image `id`.
fn assert_pulls_back(f: &Fixture, repo: &str, tag: &str, id: &Digest) {
    let t = tempfile::tempdir().unwrap();
    let (_, pulled) = pull_into(f, &t.path().join("root"), repo, tag);
    assert_eq!(&pulled.image.id, id, "{repo}:{tag}");
}

/// How a push sent its layers: (sent, mounted from another repository,
/// already there).
fn sent_mounted_present(p: &Pushed) -> (usize, usize, usize) {
    (p.layers_sent, p.layers_mounted, p.layers_present)
}

/// `layers` pushed as the image `test/app:v1` for this machine's
/// architecture, each layer's diffID its tar's digest: (manifest digest,
/// image ID).
fn serve_app(c: &Client, layers: &[Vec<u8>]) -> (Digest, Digest) {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| sha(l)).collect();
    let (manifest, id) = push_image(c, "test/app", layers, &diff_ids, host_arch());
    let digest = c
        .put_manifest("test/app", "v1", OCI_MANIFEST, manifest.as_bytes())
        .unwrap();
    (digest, id)
}

/// An image `test/app:v1` of two gzipped layers; (layer tars, image ID).
fn two_layer_image(f: &Fixture) -> (Vec<Vec<u8>>, Digest) {
    let a = layer_tar("etc/motd", &[b'a'; 50_000]);
    let b = layer_tar("etc/issue", &[b'b'; 50_000]);
    let (_, id) = serve_app(&f.client, &[a.clone(), b.clone()]);
    (vec![a, b], id)
}

/// A proxy that forwards every request to the fixture's registry, and a
/// client through it (to count what a push or pull asks).
/// `img:1`, one layer of 100 kB of `seed`'s noise at `etc/motd`, and a
/// forwarding proxy with a client through it.
fn noisy_img_via_proxy(f: &Fixture, seed: &str) -> (Digest, Proxy, Client) {
    let tar = layer_tar("etc/motd", &noise(seed, 100_000));
    let id = import_img(f, &tar);
    let (proxy, c) = forwarding(f);
    (id, proxy, c)
}

fn forwarding(f: &Fixture) -> (Proxy, Client) {
    let proxy = Proxy::start(f.client.registry(), |_| Action::Forward);
    let c = through(&proxy);
    (proxy, c)
}

fn through(proxy: &Proxy) -> Client {
    Client::new(
        &proxy.addr,
        Options {
            insecure: true,
            backoff: std::time::Duration::from_millis(10),
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn a_corrupt_layer_blob_leaves_the_store_as_it_was() {
    let Some(f) = fixture() else { return };
    two_layer_image(&f);
    // The last blob fetched (a layer) has the mtime in its gzip header
    // changed: still a valid gzip of the same tar, of the same length,
    // but not the blob the manifest names.
    let blobs = Arc::new(AtomicUsize::new(0));
    let n = blobs.clone();
    let mangled = Arc::new(std::sync::Mutex::new(String::new()));
    let m = mangled.clone();
    let proxy = Proxy::start(f.client.registry(), move |req| {
        if req.is_blob_get() && n.fetch_add(1, Ordering::SeqCst) == 2 {
            *m.lock().unwrap() = req.path().to_owned();
            Action::Mangle(Fault::FlipByte(4))
        } else {
            Action::Forward
        }
    });
    let e = pull_app(&f, &through(&proxy)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e:?}");
    assert!(format!("{e:?}").contains("sha256"), "{e:?}");
    assert!(f.store.images().unwrap().is_empty());
    assert!(f.store.layers().unwrap().is_empty());
    // Bytes that are not the blob are not kept to resume from.
    let hex = mangled
        .lock()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    assert!(!f.store.root().join("partial/sha256").join(hex).exists());
}

#[test]
fn a_layer_cut_midway_is_resumed_and_the_pull_completes() {
    let Some(f) = fixture() else { return };
    let (_, id) = two_layer_image(&f);
    let cut = Arc::new(AtomicUsize::new(0));
    let n = cut.clone();
    let proxy = Proxy::start(f.client.registry(), move |req| {
        // Layer blobs (not the config) are the large ones.
        let layer = req.is_blob_get() && req.header("range").is_none();
        if layer && n.fetch_add(1, Ordering::SeqCst) >= 1 {
            Action::Mangle(Fault::CutAfter(60))
        } else {
            Action::Forward
        }
    });
    let pulled = pull_app(&f, &through(&proxy)).unwrap();
    assert_eq!(pulled.image.id, id);
    assert!(proxy
        .requests()
        .iter()
        .any(|r| r.header("range") == Some("bytes=60-")));
}

/// The store lock is not held while blobs stream in: with a pull stalled
/// mid-blob, another process opens the store (cleaning staging debris,
/// but not the pull's live staging), takes the lock and lists images;
/// the pull then completes.
#[test]
fn the_store_answers_while_a_pull_is_stalled_mid_blob() {
    use std::time::{Duration, Instant};
    let Some(f) = fixture() else { return };
    let (_, id) = two_layer_image(&f);
    let stall = Duration::from_secs(5);
    let blobs = Arc::new(AtomicUsize::new(0));
    let n = blobs.clone();
    let proxy = Proxy::start(f.client.registry(), move |req| {
        // The first blob is the config; the second a layer.
        let first = req.is_blob_get() && req.header("range").is_none();
        if first && n.fetch_add(1, Ordering::SeqCst) == 1 {
            Action::Mangle(Fault::StallAfter(60, stall))
        } else {
            Action::Forward
        }
    });
    let client = through(&proxy);
    std::thread::scope(|s| {
        let pull = s.spawn(|| pull_app(&f, &client));
        while blobs.load(Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let other = Store::open(f.store.root(), Some("vfs")).unwrap();
        drop(other.lock().unwrap());
        assert!(other.images().unwrap().is_empty());
        assert!(
            t.elapsed() < stall - Duration::from_secs(1),
            "the store waited {:?} for a stalled pull",
            t.elapsed()
        );
        let pulled = pull.join().unwrap().unwrap();
        assert_eq!(pulled.image.id, id);
    });
    assert_eq!(f.store.image(&id).unwrap().diff_ids.len(), 2);
}

/// A pull that dies mid-blob leaves the bytes it had in a partial file;
/// the next pull unpacks from that file and asks the registry for the
/// rest only, with a Range request.
#[test]
fn the_next_pull_resumes_a_blob_an_earlier_pull_left_partial() {
    let Some(f) = fixture() else { return };
    // Incompressible content: the blob is as large as the tar.
    let mut noise = Vec::new();
    let mut h = sha(b"seed");
    while noise.len() < 300_000 {
        noise.extend_from_slice(&hex_bytes(&h));
        h = sha(h.as_str().as_bytes());
    }
    let tar = layer_tar("data/noise", &noise);
    let gz = gzip(&tar);
    let blob = sha(&gz);
    let (_, id) = serve_app(&f.client, std::slice::from_ref(&tar));
    let cut = gz.len() * 6 / 10;
    let is_layer = {
        let blob = blob.to_string();
        move |r: &strata_registry::testing::proxy::Request| {
            r.is_blob_get() && r.path().ends_with(&blob)
        }
    };
    let proxy = Proxy::start(f.client.registry(), move |req| {
        if is_layer(req) && req.header("range").is_none() {
            Action::Mangle(Fault::CutAfter(cut))
        } else {
            Action::Forward
        }
    });
    let no_resume = Client::new(
        &proxy.addr,
        Options {
            insecure: true,
            blob_resumes: 0,
            ..Options::default()
        },
    )
    .unwrap();
    pull_app(&f, &no_resume).unwrap_err();
    assert!(f.store.images().unwrap().is_empty());
    let partial = f.store.root().join("partial/sha256").join(blob.hex());
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), cut as u64);

    let before = proxy.requests().len();
    let pulled = pull_app(&f, &through(&proxy)).unwrap();
    assert_eq!(pulled.image.id, id);
    let ranges: Vec<Option<String>> = proxy.requests()[before..]
        .iter()
        .filter(|r| r.is_blob_get() && r.path().ends_with(blob.as_str()))
        .map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, [Some(format!("bytes={cut}-"))]);
    assert!(!partial.exists());
    assert_eq!(f.store.image(&id).unwrap().diff_ids, vec![sha(&tar)]);
}

/// On vfs, where a layer's content is a copy of its parent's, layers are
/// applied one at a time, but the later ones download meanwhile: with the
/// first layer's transfer stalled, the others are already asked for.
#[test]
fn later_layers_download_while_the_first_is_applied_in_order() {
    use std::time::Duration;
    let Some(f) = fixture() else { return };
    let tars: Vec<Vec<u8>> = (0..3)
        .map(|i| layer_tar(&format!("etc/layer{i}"), &vec![b'0' + i as u8; 100_000]))
        .collect();
    let diffs: Vec<Digest> = tars.iter().map(|t| sha(t)).collect();
    let (manifest, id) = push_image(&f.client, "test/three", &tars, &diffs, host_arch());
    put_manifest(&f, "test/three", "v1", &manifest);
    let blobs: Vec<String> = tars.iter().map(|t| sha(&gzip(t)).to_string()).collect();
    let first = blobs[0].clone();
    let proxy = Proxy::start(f.client.registry(), move |req| {
        if req.is_blob_get() && req.path().ends_with(&first) && req.header("range").is_none() {
            Action::Mangle(Fault::StallAfter(10, Duration::from_millis(1500)))
        } else {
            Action::Forward
        }
    });
    let pulled = f
        .store
        .pull(
            &through(&proxy),
            "test/three",
            "v1",
            None,
            None,
            &NoProgress,
        )
        .unwrap();
    assert_eq!(pulled.image.id, id);
    assert_eq!(f.store.image(&id).unwrap().diff_ids, diffs);
    let order: Vec<(usize, bool)> = proxy
        .requests()
        .iter()
        .filter(|r| r.is_blob_get())
        .filter_map(|r| {
            let i = blobs.iter().position(|b| r.path().ends_with(b.as_str()))?;
            Some((i, r.header("range").is_some()))
        })
        .collect();
    let resumed_first = order
        .iter()
        .position(|&o| o == (0, true))
        .expect("{order:?}");
    for later in [1, 2] {
        let asked = order.iter().position(|&(i, _)| i == later).unwrap();
        assert!(asked < resumed_first, "layer {later} waited: {order:?}");
    }
    let partials = f.store.root().join("partial/sha256");
    assert_eq!(std::fs::read_dir(partials).map_or(0, |d| d.count()), 0);
}

fn hex_bytes(d: &Digest) -> Vec<u8> {
    d.hex().as_bytes().to_vec()
}

/// What a pull reported, layer by layer.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<(Digest, LayerStatus)>>);

impl Progress for Recorded {
    fn layer(&self, id: &Digest, status: LayerStatus) {
        self.0.lock().unwrap().push((id.clone(), status));
    }
}

impl Recorded {
    /// The statuses of `id` in order, consecutive repeats (download
    /// steps) folded.
    fn of(&self, id: &Digest) -> Vec<LayerStatus> {
        let mut out: Vec<LayerStatus> = Vec::new();
        for (d, st) in self.0.lock().unwrap().iter() {
            let step = match st {
                LayerStatus::Downloading { .. } => LayerStatus::Downloading {
                    done: 0,
                    total: None,
                },
                s => *s,
            };
            if d == id && out.last() != Some(&step) {
                out.push(step);
            }
        }
        out
    }
}

#[test]
fn each_layer_reports_waiting_downloading_verifying_applying_done() {
    let Some(f) = fixture() else { return };
    let tar = layer_tar("etc/motd", &[b'p'; 200_000]);
    let gz = gzip(&tar);
    serve_app(&f.client, std::slice::from_ref(&tar));
    let blob = sha(&gz);
    let rec = Recorded::default();
    f.store
        .pull(&f.client, "test/app", "v1", None, None, &rec)
        .unwrap();
    let any = LayerStatus::Downloading {
        done: 0,
        total: None,
    };
    assert_eq!(
        rec.of(&blob),
        [
            LayerStatus::Waiting,
            any,
            LayerStatus::Verifying,
            LayerStatus::Applying,
            LayerStatus::Done
        ]
    );
    let last = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find_map(|(_, s)| match s {
            LayerStatus::Downloading { done, total } => Some((*done, *total)),
            _ => None,
        })
        .unwrap();
    assert_eq!(last, (gz.len() as u64, Some(gz.len() as u64)));
    let again = Recorded::default();
    f.store
        .pull(&f.client, "test/app", "v1", None, None, &again)
        .unwrap();
    assert_eq!(again.of(&blob), [LayerStatus::AlreadyExists]);
}

#[test]
fn zstd_layers_push_and_pull_back() {
    let Some(f) = fixture() else { return };
    let tar = layer_tar("etc/motd", &[b'z'; 100_000]);
    let id = import_img(&f, &tar);
    let pushed = f
        .store
        .push(
            &f.client,
            "img:1",
            "test/zstd",
            "1",
            LayerCompression::Zstd,
            &NoProgress,
        )
        .unwrap();
    let m = f.client.get_manifest("test/zstd", "1").unwrap();
    assert_eq!(m.digest, pushed.digest);
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    assert_eq!(
        v["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let t = tempfile::tempdir().unwrap();
    let (other, pulled) = pull_into(&f, &t.path().join("root"), "test/zstd", "1");
    assert_eq!(pulled.image.id, id);
    assert_eq!(other.image(&id).unwrap().diff_ids, vec![sha(&tar)]);
}

/// `len` bytes gzip cannot shrink, the same for the same `seed`.
fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(seed.as_bytes());
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(len);
    out
}

/// What the push's blob uploads carried: (PATCH requests, body bytes of
/// every request to `/blobs/uploads/`).
fn upload_traffic(requests: &[strata_registry::testing::proxy::Request]) -> (usize, usize) {
    let uploads = requests
        .iter()
        .filter(|r| r.path().contains("/blobs/uploads/"));
    let patches = uploads.clone().filter(|r| r.method == "PATCH").count();
    (patches, uploads.map(|r| r.body.len()).sum())
}

/// An image pulled from a registry is pushed back to it, to its own
/// repository and to another, with no layer compressed or sent: the
/// pull's records name each layer's blob.
#[test]
fn a_second_push_of_a_pulled_image_sends_no_layer_bytes() {
    let Some(f) = fixture() else { return };
    let a = layer_tar("usr/lib/a.so", &noise("a", 300_000));
    let b = layer_tar("usr/lib/b.so", &noise("b", 300_000));
    let (manifest, id) = push_image(
        &f.client,
        "test/src",
        &[a.clone(), b.clone()],
        &[sha(&a), sha(&b)],
        host_arch(),
    );
    put_manifest(&f, "test/src", "1", &manifest);
    // Records name the registry by its address: pulled through the
    // proxy that the pushes go through.
    let (proxy, c) = forwarding(&f);
    pull_ref(&f, &c, "test/src", "1").unwrap();
    let before = proxy.requests().len();
    let push = |repo: &str| push_gzip(&f.store, &c, id.as_str(), repo, "2").unwrap();

    let same = push("test/src");
    assert_eq!(sent_mounted_present(&same), (0, 0, 2));
    // Nothing uploaded at all: the config is there too.
    assert_eq!(upload_traffic(&proxy.requests()[before..]), (0, 0));

    let before = proxy.requests().len();
    let other = push("test/dst");
    assert_eq!(sent_mounted_present(&other), (0, 2, 0));
    let (patches, bytes) = upload_traffic(&proxy.requests()[before..]);
    // The config (a few hundred bytes) is all that went.
    assert_eq!(patches, 0);
    assert!(bytes < 4096, "{bytes} bytes uploaded");

    let t = tempfile::tempdir().unwrap();
    let (back, pulled) = pull_into(&f, &t.path().join("root"), "test/dst", "2");
    assert_eq!(pulled.image.id, id);
    assert_eq!(back.image(&id).unwrap().diff_ids, vec![sha(&a), sha(&b)]);
}

/// A record naming a blob the registry no longer has (deleted, garbage
/// collected, or never there) costs a HEAD and a refused mount; the
/// layer is then compressed and sent, and the record set right.
#[test]
fn a_stale_recorded_digest_falls_back_to_upload() {
    let Some(f) = fixture() else { return };
    // Records name the registry by its address: every push goes
    // through the proxy.
    let (id, proxy, c) = noisy_img_via_proxy(&f, "stale");
    let first = push_gzip(&f.store, &c, "img:1", "test/a", "1").unwrap();
    assert_eq!(sent_mounted_present(&first), (1, 0, 0));

    // The records now name blobs nobody has: one in the repository
    // pushed to, one in another.
    let records =
        f._t.path()
            .join("root/image/vfs/distribution/v2metadata-by-diffid/sha256")
            .join(f.store.image(&id).unwrap().diff_ids[0].hex());
    assert!(records.is_file(), "{} was written", records.display());
    let reg = c.registry();
    let gone = |s: &str| sha(s.as_bytes()).to_string();
    let stale = format!(
        r#"[{{"Digest":"{}","SourceRepository":"{reg}/test/b","MediaType":"{OCI_LAYER_GZIP}","Size":10}},
            {{"Digest":"{}","SourceRepository":"{reg}/test/c","MediaType":"{OCI_LAYER_GZIP}","Size":10}}]"#,
        gone("one"),
        gone("two"),
    );
    std::fs::write(&records, stale).unwrap();

    let before = proxy.requests().len();
    let again = push_gzip(&f.store, &c, "img:1", "test/c", "1").unwrap();
    assert_eq!(sent_mounted_present(&again), (1, 0, 0));
    let requests = proxy.requests()[before..].to_vec();
    let heads = requests.iter().filter(|r| r.method == "HEAD").count();
    let mounts = requests
        .iter()
        .filter(|r| r.target.contains("mount="))
        .count();
    // Both records tried (the one of test/c by HEAD only), then the
    // config's HEAD.
    assert_eq!((heads, mounts), (3, 1), "{requests:#?}");
    let (patches, _) = upload_traffic(&requests);
    assert!(patches >= 1);
    assert_pulls_back(&f, "test/c", "1", &id);

    // The blob now in test/c is what the record names.
    let kept = std::fs::read_to_string(&records).unwrap();
    let m = f.client.get_manifest("test/c", "1").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    let digest = v["layers"][0]["digest"].as_str().unwrap();
    assert!(kept.contains(digest), "{kept}");
}

/// Five layers that no record serves are compressed and uploaded at
/// once (every upload begins before any ends), and the manifest lists
/// them in the image's order: pulled back, the same image and diffIDs.
#[test]
fn five_layers_upload_at_once_and_the_manifest_keeps_their_order() {
    let Some(f) = fixture() else { return };
    let tars: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            layer_tar(
                &format!("layer/{i}"),
                &noise(&i.to_string(), 150_000 * (5 - i)),
            )
        })
        .collect();
    let diffs: Vec<Digest> = tars.iter().map(|t| sha(t)).collect();
    let (manifest, id) = push_image(&f.client, "test/five", &tars, &diffs, host_arch());
    put_manifest(&f, "test/five", "1", &manifest);
    pull_ref(&f, &f.client, "test/five", "1").unwrap();

    // Another registry: the pull's records are of the first, so every
    // layer is compressed and sent.
    let other = match Registry::start(Config::default()) {
        Ok(r) => r,
        Err(why) => panic!("a second registry: {why}"),
    };
    // An upload's closing PUT waits (up to 10 s) until five uploads
    // have begun: only pushes that overlap get there without the wait.
    let begun = Arc::new(AtomicUsize::new(0));
    let seen = begun.clone();
    let proxy = Proxy::start(&other.addr, move |r| {
        if r.method == "POST" && r.path().ends_with("/blobs/uploads/") {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        if r.method == "PUT" && r.target.contains("digest=") && r.body.is_empty() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while seen.load(Ordering::SeqCst) < 5 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        Action::Forward
    });
    let c = through(&proxy);
    let opts = PushOptions {
        compression: LayerCompression::Gzip,
        max_concurrent_uploads: 5,
        compression_level: None,
    };
    let pushed = f
        .store
        .push_with(&c, id.as_str(), "test/five", "1", &opts, &NoProgress)
        .unwrap();
    assert_eq!(sent_mounted_present(&pushed), (5, 0, 0));
    let requests = proxy.requests();
    let first_end = requests
        .iter()
        .position(|r| r.method == "PUT" && r.target.contains("digest="))
        .unwrap();
    let started = requests[..first_end]
        .iter()
        .filter(|r| r.method == "POST" && r.path().ends_with("/blobs/uploads/"))
        .count();
    assert_eq!(started, 5, "uploads begun before the first ended");

    let direct = plain_http(&other.addr);
    let t = tempfile::tempdir().unwrap();
    let back = Store::open(&t.path().join("root"), Some("vfs")).unwrap();
    let pulled = back
        .pull(&direct, "test/five", "1", None, None, &NoProgress)
        .unwrap();
    assert_eq!(pulled.image.id, id);
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(back.image(&id).unwrap().diff_ids, diffs);
}

/// A push that breaks mid-layer (the upload is begun, then the
/// registry fails the bytes sent to it) fails, leaves no manifest in the
/// repository and no record in the store, and the next push completes.
#[test]
fn a_push_failed_mid_upload_publishes_nothing_and_the_next_completes() {
    let Some(f) = fixture() else { return };
    // Bytes gzip cannot shrink: several megabytes on the wire.
    let tar = layer_tar("usr/lib/big.so", &noise("cut", 10 << 20));
    let id = import_img(&f, &tar);
    let patches = Arc::new(AtomicUsize::new(0));
    let n = patches.clone();
    let proxy = Proxy::start(f.client.registry(), move |r| {
        if r.method == "PATCH" {
            n.fetch_add(1, Ordering::SeqCst);
            Action::Respond(500, Vec::new(), b"disk on fire".to_vec())
        } else {
            Action::Forward
        }
    });
    let e = push_gzip(&f.store, &through(&proxy), "img:1", "test/cut", "1").unwrap_err();
    assert!(e.to_string().contains("test/cut"), "{e}");
    assert_eq!(
        patches.load(Ordering::SeqCst),
        1,
        "a streamed body is not sent twice"
    );
    assert!(f.client.get_manifest("test/cut", "1").is_err());
    let records =
        f._t.path()
            .join("root/image/vfs/distribution/v2metadata-by-diffid/sha256")
            .join(sha(&tar).hex());
    assert!(!records.exists(), "no record of a blob that did not arrive");
    assert!(f.store.image(&id).unwrap().repo_digests.is_empty());

    let pushed = push_gzip(&f.store, &f.client, "img:1", "test/cut", "1").unwrap();
    assert_eq!(sent_mounted_present(&pushed), (1, 0, 0));
    assert_pulls_back(&f, "test/cut", "1", &id);
}

/// A compression level is the format's: one out of its range is refused
/// before the registry is asked anything; one in it gives an image that
/// pulls back the same.
#[test]
fn a_compression_level_out_of_range_is_refused_before_anything_is_sent() {
    let Some(f) = fixture() else { return };
    let (id, proxy, c) = noisy_img_via_proxy(&f, "level");
    for (compression, level) in [(LayerCompression::Gzip, 10), (LayerCompression::Zstd, 0)] {
        let opts = PushOptions {
            compression,
            compression_level: Some(level),
            ..PushOptions::default()
        };
        let e = f
            .store
            .push_with(&c, "img:1", "test/level", "1", &opts, &NoProgress)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains(&format!("level {level}")), "{e}");
    }
    assert!(proxy.requests().is_empty(), "nothing asked of the registry");

    let opts = PushOptions {
        compression_level: Some(1),
        ..PushOptions::default()
    };
    let pushed = f
        .store
        .push_with(&c, "img:1", "test/level", "1", &opts, &NoProgress)
        .unwrap();
    assert_eq!(sent_mounted_present(&pushed), (1, 0, 0));
    assert_pulls_back(&f, "test/level", "1", &id);
}

/// Where a layer's blob went is recorded per registry, by host and
/// port. Two registries on 127.0.0.1 (different random ports) serve the
/// same repository name: what the first has is never taken for the
/// second's (not even asked about there), each gets its own record, and
/// a record of the registry spoken to is still checked with HEAD: its
/// blob gone from the repository, the layer is sent again.
#[test]
fn blob_records_are_kept_per_registry_host_and_port() {
    let Some(f) = fixture() else { return };
    let tar = layer_tar("etc/motd", &noise("keyed", 100_000));
    let id = import_img(&f, &tar);
    let second = match Registry::start(Config::default()) {
        Ok(r) => r,
        Err(why) => panic!("a second registry: {why}"),
    };
    let (a, b) = (f.client.registry().to_owned(), second.addr.clone());
    assert_ne!(a, b);
    let b_proxy = Proxy::start(&b, |_| Action::Forward);
    let to_b = through(&b_proxy);
    let records_file =
        f._t.path()
            .join("root/image/vfs/distribution/v2metadata-by-diffid/sha256")
            .join(f.store.image(&id).unwrap().diff_ids[0].hex());
    // (where, digest) of each record.
    let records = || -> Vec<(String, String)> {
        let v: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&records_file).unwrap()).unwrap();
        let text = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
        v.iter()
            .map(|r| (text(&r["SourceRepository"]), text(&r["Digest"])))
            .collect()
    };

    let first = push_gzip(&f.store, &f.client, "img:1", "test/same", "1").unwrap();
    assert_eq!(sent_mounted_present(&first), (1, 0, 0));
    let kept = records();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].0, format!("{a}/test/same"));
    let blob = kept[0].1.clone();

    // The other port: the first registry's record is not tried there.
    let pushed = push_gzip(&f.store, &to_b, "img:1", "test/same", "1").unwrap();
    assert_eq!(sent_mounted_present(&pushed), (1, 0, 0));
    let asked = b_proxy.requests();
    let about_blob: Vec<_> = asked
        .iter()
        .filter(|r| r.method == "HEAD" || r.target.contains("mount="))
        .filter(|r| r.target.contains(blob.as_str()))
        .collect();
    assert!(about_blob.is_empty(), "{about_blob:#?}");
    let kept = records();
    let places: Vec<&str> = kept.iter().map(|(from, _)| from.as_str()).collect();
    let b_place = format!("{}/test/same", to_b.registry());
    assert!(
        places.contains(&format!("{a}/test/same").as_str()) && places.contains(&b_place.as_str()),
        "{kept:?}"
    );

    // The blob is gone from the second registry's repository: its record
    // is checked with HEAD, found stale, and the layer is sent again.
    let link = second
        .dir
        .path()
        .join("data/docker/registry/v2/repositories/test/same/_layers/sha256")
        .join(blob.strip_prefix("sha256:").unwrap());
    std::fs::remove_dir_all(&link).unwrap();
    let before = b_proxy.requests().len();
    let again = push_gzip(&f.store, &to_b, "img:1", "test/same", "2").unwrap();
    assert_eq!(sent_mounted_present(&again), (1, 0, 0));
    let asked = b_proxy.requests()[before..].to_vec();
    let heads = asked
        .iter()
        .filter(|r| r.method == "HEAD" && r.target.contains(blob.as_str()))
        .count();
    assert_eq!(heads, 1, "{asked:#?}");
    assert!(
        !asked.iter().any(|r| r.target.contains("mount=")),
        "{asked:#?}"
    );

    // The first registry still has it: found there by HEAD, and mounted
    // from there into another of its repositories.
    let present = push_gzip(&f.store, &f.client, "img:1", "test/same", "2").unwrap();
    assert_eq!(sent_mounted_present(&present), (0, 0, 1));
    let mounted = push_gzip(&f.store, &f.client, "img:1", "test/next", "1").unwrap();
    assert_eq!(sent_mounted_present(&mounted), (0, 1, 0));
    assert_pulls_back(&f, "test/next", "1", &id);
}
