//! Listings as scripts use them, through the binary: `-q`, `--filter`,
//! `--format` templates, `--no-trunc` on `images`, `ps`, `volume ls`,
//! `layers` and `history`; the `image` and `container` aliases; and the
//! same listings compared with a private dockerd's on the same images,
//! containers and volumes.

mod common;
#[path = "common/dockerd.rs"]
mod dockerd;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::path::{Path, PathBuf};

use common::{as_root, sh, Strata};
use dockerd::Dockerd;
use fixtures::{Layout, OCI_CONFIG, OCI_LAYER, REF_NAME};
use serde_json::json;

/// A tar of one file `f` holding `content`.
fn one_file_tar(s: &Strata, name: &str, content: &str) -> PathBuf {
    let dir = s.host_dir(name, &[("f", content)]);
    let tar = dir.with_extension("tar");
    sh(&format!(
        "tar --numeric-owner -C '{}' -cf '{}' .",
        dir.display(),
        tar.display()
    ));
    tar
}

/// What made the layer of the images `Strata::labeled` makes: longer
/// than the 45 characters `history` shows of it.
const LONG_STEP: &str = "/bin/sh -c #(nop) COPY file:0123456789abcdef in / with more";

impl Strata {
    /// Loads a one-layer image `reference` made at `created` whose
    /// config has `labels`; returns its ID.
    fn labeled(&self, reference: &str, created: &str, labels: serde_json::Value) -> String {
        let tar = fs::read(one_file_tar(self, &format!("tree-{reference}"), reference)).unwrap();
        let layout = Layout::init(&self.path(&format!("layout-{reference}")));
        let layer = layout.put(OCI_LAYER, &tar);
        let config = layout.put_json(
            OCI_CONFIG,
            &json!({
                "architecture": fixtures::host_arch(), "os": "linux",
                "created": created,
                "config": { "Labels": labels },
                "rootfs": { "type": "layers", "diff_ids": [layer["digest"]] },
                "history": [{ "created": created, "created_by": LONG_STEP }],
            }),
        );
        let mut manifest = layout.put_manifest(&config, &[layer]);
        manifest["annotations"] = json!({ REF_NAME: reference });
        layout.set_index(vec![manifest]);
        self.ok(&["load", "-i", layout.path().to_str().unwrap()]);
        config["digest"].as_str().unwrap().to_owned()
    }

    /// stdout's lines, sorted (Docker's row order within an image is a
    /// map's).
    fn lines(&self, args: &[&str]) -> Vec<String> {
        sorted(&self.ok(args))
    }

    /// What the store lists, whole, to show a refused command changed
    /// nothing.
    fn everything(&self) -> [String; 3] {
        [
            self.ok(&["images", "--format", "json"]),
            self.ok(&["ps", "-a", "--format", "json"]),
            self.ok(&["volume", "ls", "--format", "json"]),
        ]
    }
}

/// The lines of `text`, sorted, without trailing blanks (the end of the
/// whole output is trimmed already).
fn sorted(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(|l| l.trim_end().to_owned()).collect();
    v.sort();
    v
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:")[..12].to_owned()
}

/// `foo:1` and `bar:2` (one image, labelled tier=web and team=a),
/// `old:1` (made earlier, labelled tier=db), and an untagged image made
/// now; returns the IDs of foo, old and the untagged one.
fn images_store(s: &Strata) -> (String, String, String) {
    let old = s.labeled("old:1", "2024-01-02T03:04:05Z", json!({ "tier": "db" }));
    let web = s.labeled(
        "foo:1",
        "2024-02-02T03:04:05Z",
        json!({ "tier": "web", "team": "a" }),
    );
    s.ok(&["tag", "foo:1", "bar:2"]);
    let none = s.ok(&["import", one_file_tar(s, "none", "none").to_str().unwrap()]);
    (web, old, none)
}

#[test]
fn images_quiet_filters_and_templates() {
    let Some(s) = as_root("vfs") else { return };
    let (web, old, none) = images_store(&s);
    let (f, o, n) = (short(&web), short(&old), short(&none));
    let cases: Vec<(&[&str], Vec<String>)> = vec![
        (
            &["images", "-q"],
            vec![f.clone(), f.clone(), n.clone(), o.clone()],
        ),
        (
            &[
                "image",
                "ls",
                "--quiet",
                "--no-trunc",
                "-f",
                "reference=foo",
            ],
            vec![web.clone()],
        ),
        (
            &["images", "-q", "--filter", "dangling=true"],
            vec![n.clone()],
        ),
        (
            &[
                "images",
                "--filter",
                "dangling=false",
                "--format",
                "{{.Repository}}:{{.Tag}}",
            ],
            vec!["bar:2".into(), "foo:1".into(), "old:1".into()],
        ),
        (
            &[
                "images",
                "-f",
                "reference=foo",
                "-f",
                "reference=ol?",
                "--format",
                "{{.ID}} {{.Repository}}:{{.Tag}}",
            ],
            vec![format!("{f} foo:1"), format!("{o} old:1")],
        ),
        (
            &[
                "images",
                "-f",
                "reference=*:2",
                "--format",
                "{{.Repository}}",
            ],
            vec!["bar".into()],
        ),
        (
            &["images", "-f", "label=tier=web", "-f", "label=team", "-q"],
            vec![f.clone(), f.clone()],
        ),
        (
            &["images", "-f", "label=tier", "-f", "reference=old", "-q"],
            vec![o.clone()],
        ),
        (&["images", "-f", "label=tier=none", "-q"], vec![]),
        (
            &["images", "-f", "since=old:1", "-f", "dangling=true", "-q"],
            vec![n.clone()],
        ),
        (&["images", "-f", "before=foo:1", "-q"], vec![o.clone()]),
        (
            &[
                "images",
                "-f",
                "reference=foo",
                "--format",
                "{{json .Tag}}|{{upper .Repository}}",
            ],
            vec!["\"1\"|FOO".into()],
        ),
        (
            &[
                "images",
                "-f",
                "dangling=true",
                "--format",
                "{{.Repository}}:{{.Tag}}\\t{{.Digest}}",
            ],
            vec!["<none>:<none>\t<none>".into()],
        ),
        (
            &[
                "images",
                "-f",
                "reference=old",
                "--format",
                "{{.CreatedAt}}",
            ],
            vec!["2024-01-02 03:04:05 +0000 UTC".into()],
        ),
    ];
    for (args, want) in cases {
        let mut want = want;
        want.sort();
        assert_eq!(s.lines(args), want, "strata {args:?}");
    }
    // `{{json .}}`: Docker's fields, in its order, `<` as Go escapes it.
    let row = s.ok(&["images", "-f", "dangling=true", "--format", "{{json .}}"]);
    let v: serde_json::Value = serde_json::from_str(&row).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Containers",
            "CreatedAt",
            "CreatedSince",
            "Digest",
            "ID",
            "Repository",
            "SharedSize",
            "Size",
            "Tag",
            "UniqueSize",
            "VirtualSize"
        ]
    );
    assert!(row.contains(r#""Tag":"\u003cnone\u003e""#), "{row}");
    // `table`: a header row, columns aligned past the widest cell.
    let table = s.ok(&[
        "images",
        "-f",
        "reference=foo",
        "--format",
        "table {{.Repository}}\\t{{.ID}}",
    ]);
    assert_eq!(table, format!("REPOSITORY   IMAGE ID\nfoo          {f}"));
    // The default table is Docker's.
    let header = s.ok(&["images"]).lines().next().unwrap().to_owned();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    assert!(s
        .ok(&["images", "--digests"])
        .starts_with("REPOSITORY   TAG       DIGEST"));
    // image rm and image prune, as rmi and system prune.
    assert_eq!(s.ok(&["image", "rm", "bar:2"]), "Untagged: bar:2");
    let pruned = s.ok(&["image", "prune", "-f"]);
    assert!(pruned.contains(&format!("Deleted: {none}")), "{pruned}");
    assert_eq!(s.lines(&["images", "-q"]), sorted(&format!("{f}\n{o}")));
}

#[test]
fn ps_quiet_filters_and_the_name_it_was_created_from() {
    let Some(s) = as_root("vfs") else { return };
    let (web_image, old, _) = images_store(&s);
    let id = |name: &str| s.ok(&["create", "--name", name, "foo:1", "true"]);
    let web = id("web-1");
    let db = s.ok(&["create", "--name", "db", &short(&old), "sh"]);
    s.ok(&["create", "--name", "child-maker", "old:1"]);
    s.ok(&["commit", "child-maker", "child:1"]);
    s.ok(&["create", "--name", "kid", "child:1"]);
    let cases: Vec<(&[&str], Vec<String>)> = vec![
        (&["ps", "-q"], vec![]),
        (
            &["container", "ls", "-a", "-q", "-f", "name=web"],
            vec![short(&web)],
        ),
        (
            &[
                "ps",
                "-q",
                "--no-trunc",
                "-f",
                "status=created",
                "-f",
                "name=^db$",
            ],
            vec![db.clone()],
        ),
        (&["ps", "-q", "-f", "status=running"], vec![]),
        (
            &["ps", "-a", "-f", "ancestor=old:1", "--format", "{{.Names}}"],
            vec!["child-maker".into(), "db".into(), "kid".into()],
        ),
        (
            &[
                "ps",
                "-a",
                "-f",
                "ancestor=child:1",
                "--format",
                "{{.Names}}",
            ],
            vec!["kid".into()],
        ),
        (&["ps", "-a", "-f", "ancestor=nosuch:1", "-q"], vec![]),
        (
            &["ps", "-a", "-f", "label=tier=web", "--format", "{{.Names}}"],
            vec!["web-1".into()],
        ),
        (
            &[
                "container",
                "list",
                "-a",
                "-f",
                "name=web",
                "-f",
                "name=db",
                "--format",
                "{{.Names}} {{.Image}} {{.Command}} {{.Status}} {{.State}}",
            ],
            vec![
                format!("db {} \"sh\" Created created", short(&old)),
                "web-1 foo:1 \"true\" Created created".into(),
            ],
        ),
    ];
    for (args, want) in cases {
        let mut want = want;
        want.sort();
        assert_eq!(s.lines(args), want, "strata {args:?}");
    }
    // Once foo:1 names another image, IMAGE says the container's by ID.
    s.ok(&["tag", "old:1", "foo:1"]);
    let image = s.ok(&["ps", "-a", "-f", "name=web", "--format", "{{.Image}}"]);
    assert_eq!(image, short(&web_image));
    let image = s.ok(&[
        "ps",
        "-a",
        "-f",
        "name=web",
        "--no-trunc",
        "--format",
        "{{.Image}}",
    ]);
    assert_eq!(image, web_image);
    // container rm|inspect|prune as rm, inspect and a prune of what is stopped.
    let inspected = s.json(&["container", "inspect", "web-1"]);
    assert_eq!(inspected[0]["Id"], web.as_str());
    assert_eq!(s.ok(&["container", "rm", "kid"]), "kid");
    let pruned = s.ok(&["container", "prune", "-f"]);
    assert!(
        pruned.starts_with("Deleted Containers:") && pruned.contains(&web),
        "{pruned}"
    );
    assert_eq!(s.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn volume_ls_quiet_and_filters() {
    let Some(s) = as_root("vfs") else { return };
    s.import_tree(&s.host_dir("base", &[("f", "x")]), "base:1");
    s.ok(&["volume", "create", "--label", "a=1", "--label", "b=", "v1"]);
    s.ok(&["volume", "create", "v2"]);
    s.ok(&["volume", "create", "data"]);
    s.ok(&["create", "--name", "c", "-v", "v2:/data", "base:1"]);
    let cases: &[(&[&str], &[&str])] = &[
        (&["volume", "ls", "-q"], &["data", "v1", "v2"]),
        (
            &["volume", "ls", "-q", "-f", "dangling=true"],
            &["data", "v1"],
        ),
        (&["volume", "ls", "-q", "-f", "dangling=false"], &["v2"]),
        (&["volume", "ls", "-q", "-f", "name=v"], &["v1", "v2"]),
        (&["volume", "ls", "-q", "-f", "label=a=1"], &["v1"]),
        (&["volume", "ls", "-q", "-f", "label=b"], &["v1"]),
        (
            &[
                "volume",
                "ls",
                "-q",
                "-f",
                "driver=local",
                "-f",
                "name=data",
            ],
            &["data"],
        ),
        (&["volume", "ls", "-q", "-f", "driver=other"], &[]),
        (
            &[
                "volume",
                "ls",
                "-f",
                "name=v1",
                "--format",
                "{{.Driver}} {{.Name}} {{.Labels}} {{.Scope}}",
            ],
            &["local v1 a=1,b= local"],
        ),
        (
            &["volume", "ls", "-f", "name=v2"],
            &["DRIVER    VOLUME NAME", "local     v2"],
        ),
    ];
    for (args, want) in cases {
        assert_eq!(s.lines(args), *want, "strata {args:?}");
    }
}

#[test]
fn layers_and_history_columns() {
    let Some(s) = as_root("vfs") else { return };
    let base = s.import_tree(&s.host_dir("base", &[("f", "12345")]), "base:1");
    s.ok(&[
        "create",
        "--name",
        "c",
        "base:1",
        "sh",
        "-c",
        "a very long command line that Docker cuts at forty-five characters",
    ]);
    let child = s.ok(&["commit", "-m", "a note", "c", "child:1"]);
    let layers = s.layers_json();
    let chains: Vec<String> = layers
        .iter()
        .map(|l| short(l["ChainID"].as_str().unwrap()))
        .collect();
    assert_eq!(sorted(&s.ok(&["layers", "-q"])), sorted(&chains.join("\n")));
    let full: Vec<&str> = layers
        .iter()
        .map(|l| l["ChainID"].as_str().unwrap())
        .collect();
    assert_eq!(
        sorted(&s.ok(&["layers", "-q", "--no-trunc"])),
        sorted(&full.join("\n"))
    );
    assert!(s.ok(&["layers"]).starts_with("CHAIN ID       DIFF ID"));

    // IMAGE: each image of the chain on its own step; SIZE: its layer's.
    let h = s.ok(&[
        "history",
        "--format",
        "{{.ID}}|{{.Size}}|{{.Comment}}",
        "child:1",
    ]);
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines.len(), 2, "{h}");
    assert!(
        lines[0].starts_with(&format!("{}|", short(&child))) && lines[0].ends_with("|a note"),
        "{h}"
    );
    assert!(lines[1].starts_with(&format!("{}|", short(&base))), "{h}");
    let table = s.ok(&["image", "history", "child:1"]);
    assert!(table.starts_with("IMAGE          CREATED"), "{table}");
    assert!(table.lines().next().unwrap().contains("SIZE"), "{table}");
    s.labeled("old:1", "2024-01-02T03:04:05Z", json!({}));
    let by = s.ok(&["history", "--format", "{{.CreatedBy}}", "old:1"]);
    assert_eq!(by.chars().count(), 45, "{by}");
    assert!(LONG_STEP.starts_with(by.trim_end_matches('…')), "{by}");
    let by = s.ok(&[
        "history",
        "--format",
        "{{.CreatedBy}}",
        "--no-trunc",
        "old:1",
    ]);
    assert_eq!(by, LONG_STEP);
    let whole = s.ok(&["history", "--no-trunc", "-q", "child:1"]);
    assert_eq!(whole.lines().next().unwrap(), child);
}

#[test]
fn refused_filters_and_templates_change_nothing() {
    let Some(s) = as_root("vfs") else { return };
    images_store(&s);
    s.ok(&["create", "--name", "c", "foo:1"]);
    s.ok(&["volume", "create", "v"]);
    let before = s.everything();
    let cases: &[(&[&str], &str)] = &[
        (
            &["images", "--filter", "colour=red"],
            "invalid filter \"colour\"",
        ),
        (&["images", "--filter", "dangling"], "expected KEY=VALUE"),
        (&["images", "--filter", "dangling=maybe"], "true or false"),
        (&["images", "--filter", "reference=[a"], "unclosed ["),
        (&["images", "--filter", "before=nosuch:1"], "nosuch"),
        (
            &["images", "--format", "{{range .}}x{{end}}"],
            "not supported",
        ),
        (&["images", "--format", "{{.Nope}}"], "no field .Nope"),
        (&["images", "--format", "{{.ID"], "unclosed action"),
        (
            &["ps", "-a", "--filter", "status=sleeping"],
            "a status is one of",
        ),
        (
            &["ps", "-a", "--filter", "dangling=true"],
            "invalid filter \"dangling\"",
        ),
        (
            &["ps", "-a", "--format", "{{.Repository}}"],
            "no field .Repository",
        ),
        (&["volume", "ls", "--filter", "name"], "expected KEY=VALUE"),
        (
            &["volume", "ls", "--format", "{{.ID | printf}}"],
            "not supported",
        ),
        (&["layers", "--format", "{{.Tag}}"], "no field .Tag"),
        (
            &["container", "prune", "--filter", "until=1h"],
            "unexpected argument",
        ),
    ];
    for (args, why) in cases {
        let out = s.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "strata {args:?} succeeded");
        assert!(err.contains(why), "strata {args:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "strata {args:?} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(s.everything(), before);
}

/// Runs `args` in both and compares the sorted lines.
fn same(s: &Strata, d: &Dockerd, args: &[&str]) {
    assert_eq!(s.lines(args), sorted(&d.ok(args)), "{args:?}");
}

#[test]
fn listings_match_dockers_on_the_same_images() {
    let Some(s) = as_root("vfs") else { return };
    let Some(d) = Dockerd::start("listings_match_dockers_on_the_same_images") else {
        return;
    };
    let tar = |name: &str| one_file_tar(&s, name, name);
    let imp = |t: &Path, r: &str, change: &[&str]| {
        let mut args = vec!["import"];
        args.extend_from_slice(change);
        args.extend([t.to_str().unwrap(), r]);
        d.ok(&args);
    };
    imp(&tar("old"), "old:1", &[]);
    imp(&tar("foo"), "foo:1", &["--change", "LABEL tier=web"]);
    d.ok(&["tag", "foo:1", "bar:2"]);
    let archive = s.path("images.tar");
    d.ok(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "old:1",
        "foo:1",
        "bar:2",
    ]);
    s.ok(&["load", "-i", archive.to_str().unwrap()]);
    for (name, image, volume, labels) in [
        ("c1", "foo:1", None, &[][..]),
        ("c2", "old:1", Some("v2:/data"), &[]),
        // Over the image's tier=web: the container's wins.
        ("c3", "bar:2", None, &["--label", "tier=app", "-l", "extra"]),
    ] {
        let mut args = vec!["create", "--name", name];
        if let Some(v) = volume {
            args.extend(["-v", v]);
        }
        args.extend(labels);
        args.extend([image, "true"]);
        s.ok(&args);
        d.ok(&args);
    }
    // The image's labels under the container's, as Docker merges them.
    let labels = |v: &serde_json::Value| v[0]["Config"]["Labels"].clone();
    let theirs: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", "c3"])).unwrap();
    assert_eq!(labels(&s.json(&["inspect", "c3"])), labels(&theirs));
    assert_eq!(labels(&theirs)["tier"], "app");
    for args in [
        &["volume", "create", "--label", "a=1", "v1"][..],
        &["volume", "create", "v3"],
    ] {
        s.ok(args);
        d.ok(args);
    }
    let cases: &[&[&str]] = &[
        &["images", "-q"],
        &["images", "-q", "--no-trunc"],
        &[
            "images",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}} {{.Digest}}",
        ],
        &["images", "--format", "{{.Repository}} {{.CreatedAt}}"],
        &[
            "images",
            "-f",
            "reference=foo",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ],
        &["images", "-f", "reference=*:2", "-q"],
        &[
            "images",
            "-f",
            "label=tier=web",
            "--format",
            "{{.Repository}}",
        ],
        &[
            "images",
            "-f",
            "before=foo:1",
            "--format",
            "{{.Repository}}",
        ],
        &[
            "images",
            "-f",
            "since=old:1",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ],
        &["images", "-f", "dangling=true", "-q"],
        &[
            "image",
            "ls",
            "-f",
            "reference=old",
            "--format",
            "table {{.Repository}}\\t{{.Tag}}",
        ],
        &["ps", "-q"],
        &[
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.Image}} {{.Command}} {{.Status}} {{.Mounts}}",
        ],
        &["ps", "-a", "-f", "ancestor=foo:1", "--format", "{{.Names}}"],
        &[
            "ps",
            "-a",
            "-f",
            "name=c",
            "-f",
            "status=created",
            "--format",
            "{{.Names}} {{.State}}",
        ],
        &["ps", "-a", "-f", "label=tier=web", "--format", "{{.Names}}"],
        &["ps", "-a", "-f", "label=tier=app", "--format", "{{.Names}}"],
        &["ps", "-a", "-f", "label=extra=", "--format", "{{.Names}}"],
        &["ps", "-a", "-f", "label=team=a", "--format", "{{.Names}}"],
        &["ps", "-f", "status=exited", "-q"],
        &[
            "volume",
            "ls",
            "--format",
            "{{.Driver}} {{.Name}} {{.Labels}}",
        ],
        &["volume", "ls", "-q", "-f", "dangling=true"],
        &["volume", "ls", "-q", "-f", "label=a=1"],
        &["volume", "ls", "-f", "name=v3"],
        &[
            "history",
            "--format",
            "{{.ID}}|{{.CreatedBy}}|{{.Comment}}",
            "foo:1",
        ],
        &["history", "--no-trunc", "-q", "foo:1"],
    ];
    for args in cases {
        same(&s, &d, args);
    }
    // `{{json .}}`: the same fields, and the same values where they do
    // not depend on the clock or on how sizes are counted.
    let args = ["images", "-f", "reference=old", "--format", "{{json .}}"];
    let ours: serde_json::Value = serde_json::from_str(&s.ok(&args)).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&d.ok(&args)).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&ours), keys(&theirs));
    for k in [
        "ID",
        "Repository",
        "Tag",
        "Digest",
        "CreatedAt",
        "Containers",
    ] {
        assert_eq!(ours[k], theirs[k], "{k}");
    }
}
