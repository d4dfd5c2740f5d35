//! Docker's habits around an image's config, through the binary with a
//! real runtime: a `VOLUME` the image declares becomes an anonymous
//! volume filled from the image (unless a `-v`, `--tmpfs` is there),
//! which `rm -v` and `run --rm` remove and `commit` leaves out;
//! `inspect` shows images and containers with Docker's keys and types;
//! the caller's open-files limit reaches the container. Compared with a
//! private `dockerd` on the same image where one runs here (SKIPPED
//! loudly otherwise).

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/dockerd.rs"]
mod dockerd;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use common::{sh, Strata};
use containers::{setup, setup_with_tools};
use dockerd::Dockerd;
use serde_json::Value;

/// The image the tests start from: busybox with `/data/f` ("from the
/// image"), declaring the volumes `/data` and `/empty` (absent from its
/// file system), Cmd `sh`. Beside it `busybox:volfile`, declaring a
/// volume over a file, and `busybox:volroot`, declaring `/`.
const IMAGE: &str = "busybox:vol";

impl Strata {
    /// Loads [`IMAGE`], made with umoci from `busybox:test`'s tree.
    fn volume_image(&self, test: &str) -> bool {
        self.umoci_images(
            test,
            "V",
            &format!(
                r#"mkdir B/rootfs/data
echo 'from the image' > B/rootfs/data/f
umoci repack --image V:base B
umoci config --image V:base --tag {IMAGE} --config.volume /data --config.volume /empty \
    --config.cmd sh
umoci config --image V:base --tag busybox:volfile --config.volume /etc/passwd
umoci config --image V:base --tag busybox:volroot --config.volume /"#
            ),
        )
    }

    /// Saves `image` as a docker-archive and loads it into `docker`.
    fn to_docker(&self, docker: &Dockerd, image: &str) {
        let tar = self.path("for-docker.tar");
        self.ok(&["save", "-o", tar.to_str().unwrap(), image]);
        docker.ok(&["load", "-i", tar.to_str().unwrap()]);
    }

    /// Names of the volumes, and which are anonymous.
    fn volumes(&self) -> BTreeMap<String, bool> {
        self.json(&["volume", "ls", "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let anonymous = v["Labels"]
                    .as_object()
                    .is_some_and(|l| l.contains_key("com.docker.volume.anonymous"));
                (v["Name"].as_str().unwrap().to_owned(), anonymous)
            })
            .collect()
    }
}

/// The mounts a `create` should make: `(destination, volume)`.
type Want<'a> = &'a [(&'a str, &'a str)];

/// A store with [`IMAGE`] loaded, or SKIPPED.
fn store(test: &str) -> Option<Strata> {
    let s = setup(test)?;
    s.volume_image(test).then_some(s)
}

/// `(destination, volume name or "" for a bind)` of a container's mounts.
fn mounts(inspect: &Value) -> Vec<(String, String)> {
    inspect["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Destination"].as_str().unwrap().to_owned(),
                m["Name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn each_declared_volume_without_a_mount_gets_an_anonymous_one() {
    let test = "each_declared_volume_without_a_mount_gets_an_anonymous_one";
    let Some(s) = store(test) else { return };
    let bind = format!("{}:/data", s.host_dir("host", &[]).display());
    // What `create` is given, and the mounts it makes: a volume name,
    // `anon` for a new anonymous volume, "" for a bind; no mount at all
    // where a tmpfs is.
    let cases: &[(&[&str], Want)] = &[
        (&[], &[("/data", "anon"), ("/empty", "anon")]),
        (
            &["-v", "named:/data"],
            &[("/data", "named"), ("/empty", "anon")],
        ),
        (&["-v", "/data/"], &[("/data", "anon"), ("/empty", "anon")]),
        (&["-v", &bind], &[("/data", ""), ("/empty", "anon")]),
        (&["--tmpfs", "/data"], &[("/empty", "anon")]),
        (
            &["-v", "inner:/data/sub"],
            &[
                ("/data", "anon"),
                ("/empty", "anon"),
                ("/data/sub", "inner"),
            ],
        ),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let name = format!("c{i}");
        let before = s.volumes();
        let mut create = vec!["create", "--name", &name];
        create.extend_from_slice(args);
        create.push(IMAGE);
        s.ok(&create);
        let inspect = s.inspect(&name);
        let got = mounts(&inspect);
        let made: Vec<String> = s
            .volumes()
            .into_keys()
            .filter(|v| !before.contains_key(v))
            .collect();
        assert_eq!(got.len(), want.len(), "{args:?}: {got:?}");
        for ((dest, vol), (want_dest, want_vol)) in got.iter().zip(want.iter()) {
            assert_eq!(dest, want_dest, "{args:?}: {got:?}");
            match *want_vol {
                "anon" => {
                    assert!(made.contains(vol), "{args:?}: {vol} is not new");
                    assert!(s.volumes()[vol], "{args:?}: {vol} is not anonymous");
                }
                w => assert_eq!(vol, w, "{args:?}"),
            }
        }
        // Parents before the mounts inside them; the image's content
        // copied up; Docker's Config.Volumes.
        let m = inspect["Mounts"].as_array().unwrap();
        if let Some(data) = m
            .iter()
            .find(|m| m["Destination"] == "/data" && m["Type"] == "volume")
        {
            let f = PathBuf::from(data["Source"].as_str().unwrap()).join("f");
            assert_eq!(
                fs::read_to_string(f).unwrap(),
                "from the image\n",
                "{args:?}"
            );
            if args.is_empty() {
                assert_eq!(data["Mode"], "", "Docker's mode for an image's volume");
            }
        }
        let vols = inspect["Config"]["Volumes"].as_object().unwrap();
        assert!(vols.contains_key("/empty"), "{args:?}: {vols:?}");
    }
    // `rm` keeps the anonymous volumes, `rm -v` removes them (never a
    // named one).
    let kept = s.volumes();
    s.ok(&["rm", "c0"]);
    assert_eq!(s.volumes(), kept);
    let c1 = s.inspect("c1");
    s.ok(&["rm", "-v", "c1"]);
    let gone: Vec<(String, String)> = mounts(&c1);
    let now = s.volumes();
    assert!(now.contains_key("named"));
    assert!(!now.contains_key(&gone[1].1), "rm -v kept {}", gone[1].1);
    // A declared volume over a file, or at `/`, is refused with a clear
    // error, leaving nothing behind.
    let before = s.volumes();
    for (image, why) in [
        ("busybox:volfile", "is not a directory in the image"),
        ("busybox:volroot", "cannot be `/`"),
    ] {
        let out = s.run(&["create", "--name", "bad", image]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{image}: {err}");
        assert!(!s.run(&["inspect", "bad"]).status.success());
        assert_eq!(s.volumes(), before, "{image}");
    }
}

#[test]
fn run_rm_removes_the_image_volumes_and_writes_land_in_them() {
    let test = "run_rm_removes_the_image_volumes_and_writes_land_in_them";
    let Some(s) = store(test) else { return };
    let before = s.volumes();
    let out = s.run_ok(&[
        IMAGE,
        "sh",
        "-c",
        "cat /data/f; echo new > /data/new; ls /data",
    ]);
    assert_eq!(out, "from the image\nf\nnew");
    assert_eq!(s.volumes(), before, "run --rm left volumes");
    s.assert_clean(test, None);
}

/// What a container of `image` shows at `/data`, and whether it has `/keep`.
fn committed_view(run: impl Fn(&[&str]) -> String, image: &str) -> String {
    run(&[image, "sh", "-c", "ls -a /data; test -e /keep && echo keep"])
}

#[test]
fn commit_leaves_the_volume_contents_out_as_docker_does() {
    let test = "commit_leaves_the_volume_contents_out_as_docker_does";
    let Some(s) = store(test) else { return };
    let write = "echo new > /data/new; rm /data/f; echo keep > /keep";
    s.exec(&["run", "--name", "w", IMAGE, "sh", "-c", write])
        .expect(0, "run");
    s.ok(&["commit", "-m", "a message", "w", "busybox:committed"]);
    let ours = committed_view(|a| s.run_ok(a), "busybox:committed");
    // The image's `/data/f` is still there; what the container wrote
    // and removed there is not the image's.
    assert_eq!(ours, ".\n..\nf\nkeep");
    let image = &s.json(&["image", "inspect", "busybox:committed"])[0];
    assert_eq!(image["Comment"], "a message");
    let Some(docker) = Dockerd::start(test) else {
        return;
    };
    s.to_docker(&docker, IMAGE);
    let run = vec![
        "run",
        "--network",
        "none",
        "--name",
        "writer",
        IMAGE,
        "sh",
        "-c",
        write,
    ];
    docker.ok(&run);
    docker.ok(&["commit", "-m", "a message", "writer", "busybox:committed"]);
    let theirs = committed_view(
        |a| {
            let mut run = vec!["run", "--rm", "--network", "none"];
            run.extend_from_slice(a);
            docker.ok(&run)
        },
        "busybox:committed",
    );
    assert_eq!(ours, theirs, "strata and docker differ");
    let comment = |v: String| serde_json::from_str::<Value>(&v).unwrap()[0]["Comment"].clone();
    assert_eq!(
        comment(s.ok(&["image", "inspect", "busybox:committed"])),
        comment(docker.ok(&["image", "inspect", "busybox:committed"])),
    );
}

/// The JSON type of `v`, for comparing shapes.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Each of `keys` in `v`, with its type.
fn shape(v: &Value, keys: &[&str]) -> BTreeMap<String, &'static str> {
    keys.iter()
        .map(|k| {
            let got = v.get(*k).unwrap_or_else(|| panic!("no {k} in {v:#}"));
            ((*k).to_owned(), kind(got))
        })
        .collect()
}

/// Every key of the object `v`, with its type.
fn all_keys(v: &Value) -> BTreeMap<String, &'static str> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), kind(v)))
        .collect()
}

/// The image keys the issue lists, with the types Docker gives them.
const IMAGE_KEYS: &[(&str, &str)] = &[
    ("Architecture", "string"),
    ("Author", "string"),
    ("Comment", "string"),
    ("Config", "object"),
    ("Created", "string"),
    ("GraphDriver", "object"),
    ("Id", "string"),
    ("Metadata", "object"),
    ("Os", "string"),
    ("Parent", "string"),
    ("RepoDigests", "array"),
    ("RepoTags", "array"),
    ("RootFS", "object"),
    ("Size", "number"),
];

/// The container keys the issue lists, with Docker's types.
const CONTAINER_KEYS: &[(&str, &str)] = &[
    ("Args", "array"),
    ("Config", "object"),
    ("GraphDriver", "object"),
    ("HostConfig", "object"),
    ("Id", "string"),
    ("Image", "string"),
    ("Mounts", "array"),
    ("Path", "string"),
    ("State", "object"),
];

/// overlay2's directories under `GraphDriver.Data`, as Docker names them.
const OVERLAY_DIRS: &[&str] = &["LowerDir", "MergedDir", "UpperDir", "WorkDir"];

#[test]
fn inspect_has_dockers_keys_and_types() {
    let test = "inspect_has_dockers_keys_and_types";
    let Some(s) = store(test) else { return };
    let bind = format!("{}:/h:ro", s.host_dir("host", &[]).display());
    s.ok(&[
        "create", "--name", "c", "-v", &bind, "-v", "named:/n", IMAGE,
    ]);
    let image = &s.json(&["inspect", IMAGE])[0];
    let c = s.inspect("c");
    let listed = |keys: &[(&str, &str)]| -> BTreeMap<String, &'static str> {
        keys.iter()
            .map(|(k, t)| ((*k).to_owned(), kind_name(t)))
            .collect()
    };
    fn names<'k>(keys: &[(&'k str, &str)]) -> Vec<&'k str> {
        keys.iter().map(|(k, _)| *k).collect()
    }
    assert_eq!(shape(image, &names(IMAGE_KEYS)), listed(IMAGE_KEYS));
    assert_eq!(shape(&c, &names(CONTAINER_KEYS)), listed(CONTAINER_KEYS));
    assert_eq!(image["GraphDriver"]["Name"], "overlay2");
    assert_eq!(c["GraphDriver"]["Name"], "overlay2");
    // A one-layer image has nothing below its layer: no LowerDir.
    for (dirs, lower) in [
        (&image["GraphDriver"]["Data"], false),
        (&c["GraphDriver"]["Data"], true),
    ] {
        assert_eq!(dirs.get("LowerDir").is_some(), lower, "{dirs:#}");
        for d in OVERLAY_DIRS.iter().filter(|d| lower || **d != "LowerDir") {
            let p = dirs[d]
                .as_str()
                .unwrap_or_else(|| panic!("no {d}: {dirs:#}"));
            let first = p.split(':').next().unwrap();
            assert!(PathBuf::from(first).is_absolute(), "{d}: {p}");
        }
    }
    let upper = PathBuf::from(c["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap());
    assert!(upper.is_dir(), "{}", upper.display());
    assert_eq!(
        c["HostConfig"]["Binds"],
        serde_json::json!([bind, "named:/n"])
    );
    assert_eq!(c["Path"], "sh");
    assert_eq!(c["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(c["Config"]["Entrypoint"], Value::Null);
    let Some(docker) = Dockerd::start(test) else {
        return;
    };
    s.to_docker(&docker, IMAGE);
    docker.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "ctr",
        "-v",
        &bind,
        "-v",
        "named:/n",
        IMAGE,
    ]);
    let theirs_image =
        &serde_json::from_str::<Value>(&docker.ok(&["image", "inspect", IMAGE])).unwrap()[0];
    let theirs =
        &serde_json::from_str::<Value>(&docker.ok(&["container", "inspect", "ctr"])).unwrap()[0];
    assert_eq!(
        shape(image, &names(IMAGE_KEYS)),
        shape(theirs_image, &names(IMAGE_KEYS)),
        "image keys"
    );
    assert_eq!(
        shape(&c, &names(CONTAINER_KEYS)),
        shape(theirs, &names(CONTAINER_KEYS)),
        "container keys"
    );
    assert_eq!(image["Id"], theirs_image["Id"], "the same image");
    assert_eq!(image["RootFS"], theirs_image["RootFS"]);
    // Every key Docker has in these, strata has with the same type.
    let covered = |what: &str, ours: &Value, theirs: &Value| {
        let ours = all_keys(ours);
        for (k, t) in all_keys(theirs) {
            assert_eq!(ours.get(&k), Some(&t), "{what}.{k}: strata has {ours:?}");
        }
    };
    covered("State", &c["State"], &theirs["State"]);
    covered("RootFS", &image["RootFS"], &theirs_image["RootFS"]);
    covered("Metadata", &image["Metadata"], &theirs_image["Metadata"]);
    covered(
        "GraphDriver.Data",
        &c["GraphDriver"]["Data"],
        &theirs["GraphDriver"]["Data"],
    );
    covered(
        "GraphDriver.Data",
        &image["GraphDriver"]["Data"],
        &theirs_image["GraphDriver"]["Data"],
    );
    // Mounts, matched by destination: the same kinds and keys.
    let by_dest = |v: &Value| -> BTreeMap<String, Value> {
        v["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Destination"].as_str().unwrap().to_owned(), m.clone()))
            .collect()
    };
    let (ours, theirs_mounts) = (by_dest(&c), by_dest(theirs));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs_mounts.keys().collect::<Vec<_>>()
    );
    for (dest, m) in &theirs_mounts {
        assert_eq!(all_keys(&ours[dest]), all_keys(m), "Mounts {dest}");
        for k in ["Type", "RW", "Propagation"] {
            assert_eq!(ours[dest][k], m[k], "Mounts {dest} {k}");
        }
    }
    // The same specs; Docker's order varies from run to run.
    let binds = |v: &Value| -> BTreeSet<String> {
        v["HostConfig"]["Binds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(binds(&c), binds(theirs));
    // Every HostConfig key strata writes, Docker writes with that type;
    // the name is Docker's, with its `/`.
    let theirs_host = all_keys(&theirs["HostConfig"]);
    for (k, t) in all_keys(&c["HostConfig"]) {
        assert_eq!(theirs_host.get(&k), Some(&t), "HostConfig.{k}");
    }
    assert_eq!(c["Name"], "/c");
    assert_eq!(theirs["Name"], "/ctr");
    assert_eq!(
        c["Config"]["Volumes"]
            .as_object()
            .map(|v| v.keys().collect::<Vec<_>>()),
        theirs["Config"]["Volumes"]
            .as_object()
            .map(|v| v.keys().collect::<Vec<_>>())
    );
}

/// A type name as [`kind`] writes it.
fn kind_name(t: &str) -> &'static str {
    ["null", "bool", "number", "string", "array", "object"]
        .into_iter()
        .find(|k| *k == t)
        .unwrap()
}

#[test]
fn the_callers_open_files_limit_reaches_the_container() {
    let test = "the_callers_open_files_limit_reaches_the_container";
    let Some(s) = setup_with_tools(test, &["prlimit"]) else {
        return;
    };
    // Only root with CAP_SYS_RESOURCE may raise the hard limit: stay
    // under the test's own. Raised above and lowered below the 1024 the
    // spec would say by default, soft below hard and equal to it.
    let max: u64 = sh("ulimit -Hn").parse().unwrap_or(1 << 20);
    for (soft, hard) in [(max, max), (max / 4, max / 2), (512, 512), (100, max)] {
        let mut cmd = std::process::Command::new("prlimit");
        cmd.arg(format!("--nofile={soft}:{hard}"))
            .arg(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(s.root())
            .args(["--driver", s.driver]);
        let args = [
            "run",
            "--rm",
            "busybox:test",
            "sh",
            "-c",
            "ulimit -Sn; ulimit -Hn",
        ];
        cmd.args(args);
        let got = s.exec_with(cmd, &args).expect(0, "run").out().to_owned();
        assert_eq!(
            got,
            format!("{soft}\n{hard}"),
            "prlimit --nofile={soft}:{hard}"
        );
    }
}
