//! The store's rules a Docker user relies on, through the built binary on
//! real overlay mounts: the init layer replaces what the image has at its
//! paths, `rmi` keeps the parents of committed images (and prunes them
//! after, as `docker rmi` does), `layers` counts references, `history`,
//! the store's directory modes (CVE-2021-41091), listings that run
//! while another process removes containers, and the automatic choice of
//! a driver keeping no home of the drivers it skipped.

mod common;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{as_root, assert_success, name_and_number, require_root, Strata};
use serde_json::Value;

/// A small tree with etc/ and bin/.
fn base_tree(s: &Strata, name: &str) -> PathBuf {
    let src = s.path(name);
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::create_dir_all(src.join("bin")).unwrap();
    fs::write(src.join("etc/os-release"), "ID=strata-test\n").unwrap();
    fs::write(src.join("bin/tool"), "#!/bin/sh\n").unwrap();
    src
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The chainIDs of the store's layers, with their reference counts.
fn refs(s: &Strata) -> Vec<(String, u64)> {
    name_and_number(&s.layers_json(), "ChainID", "Refs")
}

fn refs_of(s: &Strata, chain: &str) -> u64 {
    refs(s)
        .into_iter()
        .find(|(c, _)| c == chain)
        .unwrap_or_else(|| panic!("no layer {chain}"))
        .1
}

#[test]
fn init_layer_replaces_what_the_image_has() {
    let Some(s) = as_root("overlay2") else { return };
    // A host file the image's symlinks point at: it must stay as it is.
    let secret = s.path("host-secret");
    fs::write(&secret, "host\n").unwrap();
    let src = base_tree(&s, "hostile");
    std::os::unix::fs::symlink(&secret, src.join("etc/hosts")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../../../host-secret",
        src.join("etc/resolv.conf"),
    )
    .unwrap();
    fs::write(src.join("etc/mtab"), "not a link\n").unwrap();
    fs::create_dir(src.join("etc/hostname")).unwrap();
    fs::write(src.join("proc"), "a file where a mount point goes\n").unwrap();
    fs::create_dir(src.join("dev")).unwrap();
    std::os::unix::fs::symlink(&secret, src.join("dev/shm")).unwrap();
    s.import_tree(&src, "hostile:1");
    let id = s.ok(&["create", "--name", "c", "hostile:1"]);
    let merged = PathBuf::from(s.ok(&["mount", "c"]));

    for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        let m = fs::symlink_metadata(merged.join(f)).unwrap();
        assert!(m.is_file(), "{f} is not a regular file: {m:?}");
        assert_eq!(m.len(), 0, "{f} is not the init layer's empty file");
    }
    assert_eq!(
        fs::read_link(merged.join("etc/mtab")).unwrap(),
        Path::new("/proc/mounts")
    );
    for d in ["proc", "sys", "dev", "dev/pts", "dev/shm"] {
        let m = fs::symlink_metadata(merged.join(d)).unwrap();
        assert!(m.is_dir(), "{d} is not a directory: {m:?}");
    }
    // The image's own files are still there.
    assert_eq!(
        fs::read_to_string(merged.join("etc/os-release")).unwrap(),
        "ID=strata-test\n"
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host\n");

    // The container's layer records, as Docker lays them out.
    let mounts = s.root().join("image/overlay2/layerdb/mounts").join(&id);
    let mount_id = fs::read_to_string(mounts.join("mount-id")).unwrap();
    assert_eq!(
        fs::read_to_string(mounts.join("init-id")).unwrap(),
        format!("{mount_id}-init")
    );
    let layers = s.json(&["layers", "--format", "json"]);
    assert_eq!(
        fs::read_to_string(mounts.join("parent")).unwrap(),
        layers[0]["ChainID"].as_str().unwrap()
    );
    assert!(s.root().join("overlay2").join(&mount_id).is_dir());
    assert!(s
        .root()
        .join("overlay2")
        .join(format!("{mount_id}-init"))
        .is_dir());
    assert!(s
        .root()
        .join("containers")
        .join(&id)
        .join("config.json")
        .is_file());
    s.ok(&["umount", "c"]);
    s.ok(&["rm", "c"]);
}

#[test]
fn rmi_keeps_parents_and_prunes_them_after() {
    let Some(s) = as_root("overlay2") else { return };
    let base = s.import_tree(&base_tree(&s, "base"), "base:1");
    let base_chain = s.json(&["layers", "--format", "json"])[0]["ChainID"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(&["create", "--name", "c", "base:1"]);
    // The image's top layer: held by the image and the container.
    assert_eq!(refs_of(&s, &base_chain), 2);
    let m = PathBuf::from(s.ok(&["mount", "c"]));
    fs::write(m.join("etc/motd"), "hello\n").unwrap();
    s.ok(&["umount", "c"]);
    let child = s.ok(&["commit", "c", "child:1"]);
    s.ok(&["rm", "c"]);
    // Now held by the base image and the committed layer on it.
    assert_eq!(refs_of(&s, &base_chain), 2);
    let all = refs(&s);
    assert_eq!(all.len(), 2);
    let top = all.iter().find(|(c, _)| c != &base_chain).unwrap();
    assert_eq!(top.1, 1, "the committed layer is held by its image only");

    // history shows the commit on top of the import (and as `image history`).
    let h = s.ok(&["history", "child:1"]);
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines.len(), 3, "{h}");
    assert!(lines[1].contains("strata commit c"), "{h}");
    assert!(lines[2].contains("strata import"), "{h}");
    assert_eq!(s.ok(&["image", "history", "child:1"]), h);

    // By ID, a parent of another image is refused, even with -f.
    for args in [vec!["rmi", &base[..]], vec!["rmi", "-f", &base[..]]] {
        let err = s.err(&args);
        assert!(err.contains("dependent child images"), "{err}");
    }
    assert_eq!(s.images().len(), 2);
    // By its last tag, it is only untagged.
    assert_eq!(s.ok(&["rmi", "base:1"]), "Untagged: base:1");
    let images = s.json(&["images", "--format", "json"]);
    assert_eq!(images.as_array().unwrap().len(), 2);
    // Removing the child takes the untagged parent and every layer with it.
    let out = s.ok(&["rmi", "child:1"]);
    assert!(out.contains(&format!("Deleted: {child}")), "{out}");
    assert!(out.contains(&format!("Deleted: {base}")), "{out}");
    assert!(s.images().is_empty());
    assert!(refs(&s).is_empty());
    assert!(s.findings(&[]).is_empty());
}

/// `rmi NAME:TAG` of an image a container uses is refused, as Docker
/// refuses it, also when a child image was committed from it.
#[test]
fn rmi_by_tag_refuses_an_image_a_container_uses_even_with_a_child() {
    if !require_root() {
        return;
    }
    let s = Strata::new("overlay2");
    s.import_tree(&base_tree(&s, "base"), "base:1");
    s.ok(&["create", "--name", "c", "base:1"]);
    s.ok(&["commit", "c", "child:1"]);
    let err = s.err(&["rmi", "base:1"]);
    assert!(err.contains("used by container c"), "{err}");
    let tags = s.ok(&["images"]);
    assert!(tags.contains("base"), "{tags}");
    assert_eq!(s.ok(&["rmi", "-f", "base:1"]), "Untagged: base:1");
}

#[test]
fn a_tagged_parent_stays_when_its_child_goes() {
    let Some(s) = as_root("overlay2") else { return };
    let base = s.import_tree(&base_tree(&s, "base"), "base:1");
    s.ok(&["create", "--name", "c", "base:1"]);
    let child = s.ok(&["commit", "c", "child:1"]);
    s.ok(&["rm", "c"]);
    let out = s.ok(&["rmi", "child:1"]);
    assert!(out.contains(&format!("Deleted: {child}")), "{out}");
    assert!(!out.contains(&base), "{out}");
    let images = s.json(&["images", "--format", "json"]);
    assert_eq!(images.as_array().unwrap().len(), 1);
    assert_eq!(refs(&s).len(), 1);
}

#[test]
fn store_directories_are_private_and_tightened_on_open() {
    let Some(s) = as_root("overlay2") else { return };
    s.ok(&["images"]);
    let root = s.root();
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("overlay2")), 0o710);
    assert_eq!(mode(&root.join("containers")), 0o700);
    assert_eq!(mode(&root.join("image")), 0o700);
    // A store made looser by hand (or a root made with mkdir) is
    // tightened by the next command that changes the store, with a
    // warning; a command that only reads changes no mode, and warns
    // only of what others could write to.
    let loose = [
        ("", 0o755),
        ("overlay2", 0o775),
        ("containers", 0o755),
        ("image", 0o751),
    ];
    for (d, m) in loose {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(m)).unwrap();
    }
    let warned = s.warnings(&["images"]);
    assert!(
        warned.contains("overlay2 is mode 775, which lets other users change it")
            && !warned.contains("containers is mode"),
        "{warned}"
    );
    for (d, m) in loose {
        assert_eq!(mode(&root.join(d)), m, "`images` changed the mode of {d:?}");
    }
    let warned = s.warnings(&["volume", "create", "v"]);
    assert!(
        warned.contains("other users cannot reach containers"),
        "{warned}"
    );
    assert_eq!(mode(&root), 0o711);
    assert_eq!(mode(&root.join("overlay2")), 0o710);
    assert_eq!(mode(&root.join("containers")), 0o700);
    assert_eq!(mode(&root.join("image")), 0o700);
    // And quiet once tight.
    let out = s.run(&["images"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The owner's bits are the owner's.
    assert_eq!(fs::metadata(&root).unwrap().uid(), 0);

    // A symlink planted in a root anyone could write to is not followed:
    // the directory it points at keeps its mode.
    let s = Strata::new("overlay2");
    let victim = s.path("victim");
    fs::create_dir(&victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(s.root()).unwrap();
    fs::set_permissions(s.root(), fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&victim, s.root().join("containers")).unwrap();
    let _ = s.run(&["images"]);
    assert_eq!(mode(&victim), 0o755);
    assert_eq!(mode(&s.root()), 0o711);
}

#[test]
fn listings_run_while_containers_are_removed() {
    let Some(s) = as_root("overlay2") else { return };
    s.import_tree(&base_tree(&s, "base"), "base:1");
    const N: usize = 24;
    for i in 0..N {
        s.ok(&["create", "--name", &format!("c{i}"), "base:1"]);
    }
    // One process per container, so removals keep coming while we list.
    let script = (0..N)
        .map(|i| {
            format!(
                "'{}' --root '{}' rm c{i}",
                env!("CARGO_BIN_EXE_strata"),
                s.root().display()
            )
        })
        .collect::<Vec<_>>()
        .join(" && ");
    let mut remover = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut listed = 0;
    loop {
        let done = remover.try_wait().unwrap().is_some();
        for args in [
            &["ps", "-a"][..],
            &["images"][..],
            &["layers", "--format", "json"][..],
        ] {
            let out = s.run(args);
            assert!(
                out.status.success(),
                "strata {args:?} failed during removals: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            listed += 1;
        }
        if done {
            break;
        }
    }
    assert!(remover.wait().unwrap().success());
    assert!(listed >= 3);
    let left: Value = s.json(&["ps", "-a", "--format", "json"]);
    assert!(left.as_array().unwrap().is_empty(), "{left}");
}

#[test]
fn names_prefixes_stdin_and_forced_removals() {
    let Some(s) = as_root("overlay2") else { return };
    // import - reads the tarball from standard input.
    let src = base_tree(&s, "base");
    let tar = s.path("base.tar");
    common::sh(&format!(
        "tar --numeric-owner -C '{}' -cf '{}' .",
        src.display(),
        tar.display()
    ));
    let image = s.ok_with_input(&["import", "-", "base:1"], &tar);
    assert_eq!(
        s.ok(&["images", "--format", "json"])
            .matches(&image)
            .count(),
        1
    );

    // A name is taken once.
    s.ok(&["create", "--name", "web", "base:1"]);
    let err = s.err(&["create", "--name", "web", "base:1"]);
    assert!(err.contains("web"), "{err}");
    assert_eq!(
        s.json(&["ps", "-a", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // An ID prefix that two containers share is refused as ambiguous;
    // with 17 containers two share their first hex digit.
    let mut ids: Vec<String> = vec![s.json(&["ps", "-a", "--format", "json"])[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned()];
    for _ in 0..16 {
        ids.push(s.ok(&["create", "base:1"]));
    }
    let first = |id: &String| id.trim_start_matches("sha256:").chars().next().unwrap();
    let shared = ids
        .iter()
        .map(first)
        .find(|c| ids.iter().filter(|id| first(id) == *c).count() > 1)
        .unwrap();
    let err = s.err(&["rm", &shared.to_string()]);
    assert!(err.contains("ambiguous"), "{err}");
    // A unique prefix works.
    let unique: String = ids[1].trim_start_matches("sha256:")[..12].to_owned();
    s.ok(&["rm", &unique]);

    // rm -f of a mounted container unmounts it and removes it.
    let merged = s.ok(&["mount", "web"]);
    s.ok(&["rm", "-f", "web"]);
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&merged), "{merged} still mounted");
    assert!(!Path::new(&merged).exists());

    // rmi -f of an image a container uses: untagged, kept for the
    // container (which still mounts), gone once nothing needs it.
    let out = s.ok(&["rmi", "-f", "base:1"]);
    assert_eq!(out, "Untagged: base:1");
    let c = &ids[2];
    s.ok(&["mount", c]);
    s.ok(&["umount", c]);
    let err = s.err(&["rmi", &image]);
    assert!(err.contains("used by container"), "{err}");
    let left: Vec<String> = s
        .json(&["ps", "-a", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Id"].as_str().unwrap().to_owned())
        .collect();
    for c in &left {
        s.ok(&["rm", c]);
    }
    let out = s.ok(&["rmi", &image]);
    assert!(out.contains(&format!("Deleted: {image}")), "{out}");
    assert!(refs(&s).is_empty());
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let Some(s) = as_root("overlay2") else { return };
    s.import_tree(&base_tree(&s, "base"), "base:1");
    for args in [
        &["images"][..],
        &["layers", "--format", "json"][..],
        &["history", "base:1"][..],
    ] {
        // A reader that is gone before anything is written (as `| head`
        // once it has its lines).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = s
            .cmd(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "strata {args:?}: {:?} {err}",
            out.status
        );
        assert!(err.is_empty(), "strata {args:?}: {err}");
    }
    // Work is not cut short by output nobody reads: every container goes.
    for n in ["a", "b", "c"] {
        s.ok(&["create", "--name", n, "base:1"]);
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = s
        .cmd(&["rm", "a", "b", "c"])
        .stdout(writer)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(s.ok(&["ps", "-a", "--format", "json"]), "[]");
}

/// The store's root as `info` reports it, for a command run by `cmd`.
fn root_of(mut cmd: std::process::Command) -> String {
    let out = cmd.env_remove("STRATA_ROOT").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = stdout
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {stdout}"));
    let info: Value = serde_json::from_str(&stdout[start..]).unwrap();
    info["Root"].as_str().unwrap().to_owned()
}

#[test]
fn the_default_root() {
    if !require_root() {
        return;
    }
    if !fixtures::have_tools("the_default_root", &["unshare", "setpriv"]) {
        return;
    }
    let exe = env!("CARGO_BIN_EXE_strata");
    // As root: /var/lib/strata. Seen in a mount namespace of its own with
    // a tmpfs over /var/lib, so the machine's own store is never touched.
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-ec"])
        .arg(format!(
            "mount -t tmpfs strata-test /var/lib; '{exe}' --driver vfs info --format json"
        ));
    assert_eq!(root_of(cmd), "/var/lib/strata");
    // Root of a user namespace that is not a store's (a container's root,
    // as in LXC or systemd-nspawn -U) is root: the same store.
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "--mount",
        "--propagation",
        "private",
    ])
    .args(["sh", "-ec"])
    .arg(format!(
        "mount -t tmpfs strata-test /var/lib; '{exe}' --driver vfs info --format json"
    ))
    .env("HOME", "/nonexistent");
    assert_eq!(root_of(cmd), "/var/lib/strata");

    // Another user: $XDG_DATA_HOME/strata, else ~/.local/share/strata.
    let t = tempfile::tempdir().unwrap();
    let b = t.path();
    fs::set_permissions(b, fs::Permissions::from_mode(0o755)).unwrap();
    let copy = b.join("strata");
    fs::copy(exe, &copy).unwrap();
    for d in ["xdg", "home"] {
        fs::create_dir(b.join(d)).unwrap();
        std::os::unix::fs::chown(b.join(d), Some(65534), Some(65534)).unwrap();
    }
    let as_nobody = |env: &[(&str, PathBuf)]| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&copy)
        .args(["--driver", "vfs", "info", "--format", "json"])
        // The default root, not the user namespace (tests/rootless.rs).
        .env("STRATA_USERNS", "host")
        .env_remove("XDG_DATA_HOME");
        for (k, v) in env {
            cmd.env(k, v);
        }
        root_of(cmd)
    };
    let xdg = b.join("xdg");
    assert_eq!(
        as_nobody(&[("XDG_DATA_HOME", xdg.clone()), ("HOME", b.join("home"))]),
        xdg.join("strata").display().to_string()
    );
    assert_eq!(
        as_nobody(&[("HOME", b.join("home"))]),
        b.join("home/.local/share/strata").display().to_string()
    );
    assert_eq!(mode(&b.join("home/.local/share/strata")), 0o700);
}

#[test]
fn prune_all_takes_chains_of_commits_and_images_of_several_names() {
    let Some(s) = as_root("overlay2") else { return };
    s.import_tree(&base_tree(&s, "base"), "base:1");
    // base:1 <- P <- C, the tag app:latest moved from P to C.
    s.ok(&["create", "--name", "p", "base:1"]);
    s.ok(&["commit", "p", "app"]);
    s.ok(&["create", "--name", "c", "app"]);
    s.ok(&["commit", "c", "app"]);
    s.ok(&["rm", "p", "c"]);
    // One image under two repositories.
    s.ok(&["tag", "base:1", "other:1"]);
    // And one a container keeps.
    let kept = s.import_tree(&base_tree(&s, "kept"), "kept:1");
    s.ok(&["create", "--name", "k", "kept:1"]);
    let images = s.json(&["images", "--format", "json"]);
    assert_eq!(images.as_array().unwrap().len(), 4, "{images}");
    s.ok(&["system", "prune", "-a"]);
    let images = s.images();
    let ids: Vec<&str> = images.iter().map(|i| i["ID"].as_str().unwrap()).collect();
    assert_eq!(ids, [kept.as_str()]);
    assert!(s.findings(&[]).is_empty());
}

/// Whether `s` holds a run of 64 hex digits (an internal ID).
fn has_hex_id(s: &str) -> bool {
    s.as_bytes()
        .windows(64)
        .any(|w| w.iter().all(u8::is_ascii_hexdigit))
}

/// `import` and `load` of a file that is no archive say so in one line,
/// naming the user's file and what was expected: none of the file's
/// bytes, no internal ID.
#[test]
fn a_file_that_is_not_an_archive_is_refused_in_one_line() {
    let s = Strata::new("vfs");
    let passwd = s.path("passwd");
    fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
    )
    .unwrap();
    let short = s.path("short");
    fs::write(&short, "a line\n").unwrap();
    let (p, q) = (passwd.to_str().unwrap(), short.to_str().unwrap());
    for (args, file, expected) in [
        (vec!["import", p, "x:1"], p, "root file system"),
        (vec!["import", q, "x:1"], q, "root file system"),
        (vec!["load", "-i", p], p, "image archive"),
    ] {
        let err = s.err(&args);
        let line = err.trim_end();
        assert!(!line.contains('\n'), "{args:?}: more than one line: {err}");
        assert!(line.starts_with("strata: error: "), "{args:?}: {err}");
        assert!(
            line.contains(&format!("{file}: not a tar archive")),
            "{err}"
        );
        assert!(line.contains("not a tar archive"), "{args:?}: {err}");
        assert!(line.contains(expected), "{args:?}: {err}");
        assert!(
            !line.contains("root:x") && !line.contains("a line"),
            "{err}"
        );
        assert!(!has_hex_id(line), "{args:?}: names an internal ID: {err}");
    }
    for args in [vec!["import", "-", "x:1"], vec!["load"]] {
        let out = s
            .cmd(&args)
            .stdin(fs::File::open(&passwd).unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.trim_end().lines().count() == 1, "{err}");
        assert!(err.contains("standard input: not a tar archive"), "{err}");
        assert!(!err.contains("root:x") && !has_hex_id(&err), "{err}");
    }
    assert!(s.findings(&[]).is_empty());
}

/// `save -o` names the user's file in its errors, never the temp file
/// it writes beside it, and never replaces what is not a regular file.
#[test]
fn save_errors_name_the_output_not_its_temp_file() {
    let s = Strata::new("vfs");
    let tarball = s.path("h.tar");
    common::sh(&format!("tar -cf {} -C /etc hostname", tarball.display()));
    s.ok(&["import", tarball.to_str().unwrap(), "x:1"]);
    let missing = s.path("no-such-dir/x.tar");
    let err = s.err(&["save", "-o", missing.to_str().unwrap(), "x:1"]);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("writing {}", missing.display())),
        "{err}"
    );
    assert!(!err.contains("temp"), "{err}");
    let fifo = s.path("fifo");
    common::sh(&format!("mkfifo {}", fifo.display()));
    let err = s.err(&["save", "-o", fifo.to_str().unwrap(), "x:1"]);
    assert!(err.contains("not a regular file"), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

/// A store that cannot be opened leaves no directory behind.
#[test]
fn a_failed_driver_leaves_no_store_directory() {
    let s = Strata::new("vfs");
    let root = s.path("new/store");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(&root)
        .args(["--driver", "aufs", "images"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("aufs"), "{err}");
    assert!(!s.path("new").exists(), "left {}", root.display());
}

/// A store on overlayfs, where overlay2 cannot stack: the automatic
/// choice goes on to the next driver, and the store keeps the home of the
/// driver it has, not of the one it tried and skipped.
#[test]
fn a_driver_the_automatic_choice_skips_leaves_no_home() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s);
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir(p(d)).unwrap();
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        p("lower").display(),
        p("upper").display(),
        p("work").display()
    );
    let mount = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(p("merged"))
        .output()
        .unwrap();
    assert_success(&mount);
    let _mounted = common::Unmount(p("merged"));
    let root = p("merged/root");
    let info = common::info_choosing(&root);
    let chosen = info["Storage Driver"].as_str().unwrap().to_owned();
    assert_ne!(chosen, "overlay2", "{info}");
    let homes: Vec<&str> = ["btrfs", "overlay2", "fuse", "erofs", "vfs"]
        .into_iter()
        .filter(|d| root.join(d).exists())
        .collect();
    assert_eq!(homes, [chosen.as_str()], "{info}");
}
