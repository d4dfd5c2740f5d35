//! Volume plugins end to end, through the binary: `volume create
//! --driver NAME` against a fake plugin (`strata_volume::testing`) found
//! with `--plugin-dir`, the volume's life in `volume ls|inspect|rm` and on
//! a container, and what a plugin that fails, is missing or dies leaves
//! behind (nothing).

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{as_root, require_root, sh, Strata};
use containers::have_runtime;
use serde_json::{json, Value};
use strata_volume::testing::{FakePlugin, Reply, Request};

/// Where the fake plugin says its volumes are (never touched: only
/// reported).
fn mountpoint(name: &str) -> String {
    format!("/mnt/fakevol/{name}")
}

/// A well-behaved plugin whose volumes are at [`mountpoint`].
fn fakevol(r: &Request) -> Reply {
    let name = r.name().unwrap_or_default();
    match r.path.as_str() {
        "/VolumeDriver.Path" | "/VolumeDriver.Mount" => {
            Reply::ok(json!({"Mountpoint": mountpoint(name), "Err": ""}))
        }
        "/VolumeDriver.Get" => {
            Reply::ok(json!({"Volume": {"Name": name, "Mountpoint": mountpoint(name)}, "Err": ""}))
        }
        _ => Reply::default_for(r),
    }
}

/// A store and a plugin directory holding one fake plugin, `fakevol`.
struct Fixture {
    s: Strata,
    plugins: tempfile::TempDir,
    plugin: FakePlugin,
}

impl Fixture {
    /// A vfs store and the fake plugin answering with `handler`, when
    /// root; `None` (SKIPPED) otherwise.
    fn new(handler: impl Fn(&Request) -> Reply + Send + 'static) -> Option<Self> {
        let s = as_root("vfs")?;
        let plugins = tempfile::tempdir().unwrap();
        let plugin = FakePlugin::start(plugins.path(), "fakevol", handler);
        Some(Fixture { s, plugins, plugin })
    }

    /// `args` with `--plugin-dir` given before them.
    fn with_dir<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--plugin-dir", self.plugins.path().to_str().unwrap()];
        all.extend_from_slice(args);
        all
    }

    fn run(&self, args: &[&str]) -> Output {
        self.s.run(&self.with_dir(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        self.s.ok(&self.with_dir(args))
    }

    fn err(&self, args: &[&str]) -> String {
        self.s.err(&self.with_dir(args))
    }

    fn json(&self, args: &[&str]) -> Value {
        self.s.json(&self.with_dir(args))
    }

    /// `volume ls` names.
    fn volume_names(&self) -> Vec<String> {
        self.json(&["volume", "ls", "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["Name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Imports `tiny:1`, an image of one empty directory `/data`.
    fn tiny_image(&self) {
        let src = self.s.path("rootfs");
        fs::create_dir_all(src.join("data")).unwrap();
        self.s.import_tree(&src, "tiny:1");
    }

    /// Asserts the volumes directory holds no record and no staging or
    /// removal leftovers.
    fn assert_no_volume_left(&self) {
        assert!(self.volume_names().is_empty());
        let dir = self.s.root().join("volumes");
        let left: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".lock")
                .collect(),
            Err(_) => Vec::new(),
        };
        assert!(left.is_empty(), "left in the volumes directory: {left:?}");
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn plugin_volume_lifecycle() {
    let Some(f) = Fixture::new(fakevol) else {
        return;
    };
    assert_eq!(
        f.ok(&["volume", "create", "--driver", "fakevol", "--opt", "size=1G", "v1"]),
        "v1"
    );
    // Activated, then asked to create the volume with its options.
    let paths = f.plugin.paths();
    assert_eq!(
        paths[..2],
        ["/Plugin.Activate", "/VolumeDriver.Create"],
        "{paths:?}"
    );
    assert_eq!(
        f.plugin.bodies("/VolumeDriver.Create"),
        [json!({"Name": "v1", "Opts": {"size": "1G"}})]
    );
    // Recorded without a local data directory.
    let record = f.s.root().join("volumes/v1");
    assert!(record.join("meta.json").is_file());
    assert!(!record.join("_data").exists());

    let ls = f.json(&["volume", "ls", "--format", "json"]);
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    assert_eq!(ls[0]["Name"], "v1");
    assert_eq!(ls[0]["Driver"], "fakevol");
    assert_eq!(ls[0]["Mountpoint"], mountpoint("v1"));
    let table = f.ok(&["volume", "ls"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["fakevol", "v1"])),
        "{table}"
    );
    let v = f.json(&["volume", "inspect", "v1"]);
    assert_eq!(v[0]["Driver"], "fakevol");
    assert_eq!(v[0]["Mountpoint"], mountpoint("v1"));
    assert_eq!(v[0]["Options"], json!({"size": "1G"}));
    // Asking again for the same volume and driver returns it, no new
    // Create.
    assert_eq!(
        f.ok(&["volume", "create", "--driver", "fakevol", "v1"]),
        "v1"
    );
    assert_eq!(f.plugin.bodies("/VolumeDriver.Create").len(), 1);
    // The same name with another driver is refused.
    let e = f.err(&["volume", "create", "v1"]);
    assert!(e.contains("volume v1 already exists"), "{e}");

    // On a container: the mount names the plugin's driver and mountpoint.
    f.tiny_image();
    f.ok(&["create", "--name", "c1", "-v", "v1:/data", "tiny:1"]);
    let mounts = f.json(&["inspect", "c1"])[0]["Mounts"].clone();
    assert_eq!(mounts.as_array().unwrap().len(), 1, "{mounts}");
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Name"], "v1");
    assert_eq!(mounts[0]["Driver"], "fakevol");
    assert_eq!(mounts[0]["Destination"], "/data");
    assert_eq!(mounts[0]["Source"], mountpoint("v1"));
    // Nothing was made locally for it.
    assert!(!record.join("_data").exists());
    assert_eq!(f.volume_names(), ["v1"]);

    // In use: refused, -f or not, and the plugin is not asked.
    for args in [&["volume", "rm", "v1"][..], &["volume", "rm", "-f", "v1"]] {
        let e = f.err(args);
        assert!(e.contains("volume v1 is in use by container c1"), "{e}");
    }
    assert!(f.plugin.bodies("/VolumeDriver.Remove").is_empty());
    assert_eq!(f.volume_names(), ["v1"]);

    // Removing the container leaves the named volume, and then it goes,
    // through the plugin.
    f.ok(&["rm", "-v", "c1"]);
    assert_eq!(f.volume_names(), ["v1"]);
    assert!(f.plugin.bodies("/VolumeDriver.Remove").is_empty());
    assert_eq!(f.ok(&["volume", "rm", "v1"]), "v1");
    assert_eq!(
        f.plugin.bodies("/VolumeDriver.Remove"),
        [json!({"Name": "v1"})]
    );
    f.assert_no_volume_left();
}

#[test]
fn plugin_error_on_create_leaves_nothing() {
    let Some(f) = Fixture::new(|r| match r.path.as_str() {
        "/VolumeDriver.Create" => Reply::err("disk full"),
        _ => fakevol(r),
    }) else {
        return;
    };
    let out = f.run(&["volume", "create", "--driver", "fakevol", "v1"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("disk full"), "{e}");
    assert!(e.contains("fakevol"), "{e}");
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    assert_eq!(
        f.plugin.bodies("/VolumeDriver.Create"),
        [json!({"Name": "v1", "Opts": {}})]
    );
    f.assert_no_volume_left();
    // The name is free for another driver.
    assert_eq!(f.ok(&["volume", "create", "v1"]), "v1");
}

#[test]
fn plugin_error_on_remove_keeps_the_volume_unless_forced() {
    let Some(f) = Fixture::new(|r| match r.path.as_str() {
        "/VolumeDriver.Remove" => Reply::err("volume is busy"),
        _ => fakevol(r),
    }) else {
        return;
    };
    f.ok(&["volume", "create", "--driver", "fakevol", "v1"]);
    let e = f.err(&["volume", "rm", "v1"]);
    assert!(e.contains("volume is busy"), "{e}");
    assert_eq!(f.volume_names(), ["v1"]);
    // -f drops the record all the same, as Docker's `volume rm -f` does.
    assert_eq!(f.ok(&["volume", "rm", "-f", "v1"]), "v1");
    assert_eq!(f.plugin.bodies("/VolumeDriver.Remove").len(), 2);
    f.assert_no_volume_left();
}

#[test]
fn missing_plugin_is_not_found_naming_the_directories() {
    let Some(f) = Fixture::new(fakevol) else {
        return;
    };
    let e = f.err(&["volume", "create", "--driver", "nosuch", "v1"]);
    let dir = f.plugins.path().to_str().unwrap();
    assert!(e.contains("volume plugin nosuch not found"), "{e}");
    assert!(e.contains(dir), "{e}");
    f.assert_no_volume_left();
    assert!(f.plugin.requests().is_empty());

    // STRATA_PLUGIN_DIRS, colon-separated, names every directory.
    let other = tempfile::tempdir().unwrap();
    let other = other.path().to_str().unwrap();
    let out =
        f.s.cmd(&["volume", "create", "--driver", "nosuch", "v1"])
            .env("STRATA_PLUGIN_DIRS", format!("{dir}:{other}"))
            .output()
            .unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("volume plugin nosuch not found"), "{e}");
    assert!(e.contains(dir) && e.contains(other), "{e}");
    // And the plugin is found through it.
    let out =
        f.s.cmd(&["volume", "create", "--driver", "fakevol", "v2"])
            .env("STRATA_PLUGIN_DIRS", format!("{other}:{dir}"))
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.volume_names(), ["v2"]);
}

#[test]
fn plugin_dying_mid_call_is_a_clear_error() {
    let Some(f) = Fixture::new(|r| match r.path.as_str() {
        "/VolumeDriver.Create" if r.name() == Some("closed") => Reply::Close,
        "/VolumeDriver.Create" => {
            Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"Err\"")
        }
        _ => fakevol(r),
    }) else {
        return;
    };
    for name in ["closed", "half"] {
        let e = f.err(&["volume", "create", "--driver", "fakevol", name]);
        assert!(
            e.contains("volume plugin fakevol: VolumeDriver.Create failed"),
            "{name}: {e}"
        );
        assert!(e.contains("connection closed"), "{name}: {e}");
    }
    assert_eq!(f.plugin.bodies("/VolumeDriver.Create").len(), 2);
    f.assert_no_volume_left();
}

#[test]
fn plugin_gone_after_create_keeps_ls_working() {
    let Some(f) = Fixture::new(fakevol) else {
        return;
    };
    f.ok(&["volume", "create", "--driver", "fakevol", "v1"]);
    let Fixture { s, plugins, plugin } = f;
    drop(plugin);
    assert!(!Path::new(&plugins.path().join("fakevol.sock")).exists());
    let dir = plugins.path().to_str().unwrap();
    // Listed, with no mountpoint, since the plugin cannot say.
    let ls = s.json(&["--plugin-dir", dir, "volume", "ls", "--format", "json"]);
    assert_eq!(ls[0]["Name"], "v1");
    assert_eq!(ls[0]["Driver"], "fakevol");
    assert_eq!(ls[0]["Mountpoint"], "");
    // Removing needs the plugin; -f forgets the record without it.
    let e = s.err(&["--plugin-dir", dir, "volume", "rm", "v1"]);
    assert!(e.contains("volume plugin fakevol not found"), "{e}");
    s.ok(&["--plugin-dir", dir, "volume", "rm", "-f", "v1"]);
    assert!(s
        .json(&["volume", "ls", "--format", "json"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn container_on_a_plugin_volume_whose_plugin_is_gone_is_refused() {
    let Some(f) = Fixture::new(fakevol) else {
        return;
    };
    f.tiny_image();
    f.ok(&["volume", "create", "--driver", "fakevol", "v1"]);
    let Fixture { s, plugins, plugin } = f;
    drop(plugin);
    let dir = plugins.path().to_str().unwrap();
    let e = s.err(&[
        "--plugin-dir",
        dir,
        "create",
        "--name",
        "c1",
        "-v",
        "v1:/data",
        "tiny:1",
    ]);
    assert!(e.contains("volume plugin fakevol not found"), "{e}");
    let ps = s.json(&["ps", "-a", "--format", "json"]);
    assert!(ps.as_array().unwrap().is_empty(), "{ps}");
}

#[test]
fn plugin_volume_still_mounted_is_not_removed_from_the_plugin() {
    let Some(f) = Fixture::new(fakevol) else {
        return;
    };
    f.ok(&["volume", "create", "--driver", "fakevol", "v1"]);
    // A mount held by a caller (as a running container holds one).
    let mounts = f.s.root().join("volumes/v1/mounts");
    fs::create_dir_all(&mounts).unwrap();
    fs::write(mounts.join("ctr1"), "1").unwrap();
    let e = f.err(&["volume", "rm", "v1"]);
    assert!(e.contains("volume v1 is mounted"), "{e}");
    // The plugin's volume is still there, behind the record that is.
    assert!(f.plugin.bodies("/VolumeDriver.Remove").is_empty());
    assert_eq!(f.volume_names(), ["v1"]);
    fs::remove_file(mounts.join("ctr1")).unwrap();
    f.ok(&["volume", "rm", "v1"]);
    assert_eq!(f.plugin.bodies("/VolumeDriver.Remove").len(), 1);
    f.assert_no_volume_left();
}

#[test]
fn prune_goes_on_past_a_volume_its_plugin_will_not_remove() {
    let Some(f) = Fixture::new(|r| match r.path.as_str() {
        "/VolumeDriver.Remove" if r.name() == Some("a-stuck") => Reply::err("volume is busy"),
        _ => fakevol(r),
    }) else {
        return;
    };
    for name in ["a-stuck", "b-fine"] {
        f.ok(&["volume", "create", "--driver", "fakevol", name]);
    }
    f.ok(&["volume", "create", "c-local"]);
    let out = f.ok(&["volume", "prune", "--all"]);
    assert!(out.contains("b-fine") && out.contains("c-local"), "{out}");
    assert!(!out.contains("a-stuck"), "{out}");
    assert!(out.ends_with("Total volumes removed: 2"), "{out}");
    assert_eq!(f.volume_names(), ["a-stuck"]);
}

impl Fixture {
    /// Imports `bb:1`: busybox (`sh`, `cat`, `ls`) and an empty `/data`.
    fn busybox_image(&self) {
        let src = self.s.path("bb-rootfs");
        fs::create_dir_all(src.join("data")).unwrap();
        fs::create_dir_all(src.join("bin")).unwrap();
        sh(&format!(
            "cp \"$(command -v busybox)\" '{0}/bin/busybox' && for a in sh cat ls; do ln -s busybox '{0}/bin/'$a; done",
            src.display()
        ));
        self.s.import_tree(&src, "bb:1");
    }
}

#[test]
fn run_mounts_a_plugin_volume_at_start_and_unmounts_it_at_exit() {
    if !require_root() || !have_runtime("run_mounts_a_plugin_volume") {
        return;
    }
    // The plugin's volume is a real directory, so the container's write
    // can be seen on the host.
    let data = tempfile::tempdir().unwrap();
    let at = data.path().to_str().unwrap().to_owned();
    let Some(f) = Fixture::new(move |r| match r.path.as_str() {
        "/VolumeDriver.Mount" => Reply::ok(json!({"Mountpoint": at, "Err": ""})),
        _ => fakevol(r),
    }) else {
        return;
    };
    f.busybox_image();
    f.ok(&["volume", "create", "--driver", "fakevol", "pv"]);
    let out = f.run(&[
        "run",
        "--rm",
        "--name",
        "c1",
        "-v",
        "pv:/data",
        "bb:1",
        "sh",
        "-c",
        "echo written > /data/f && ls /data",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "f");
    assert_eq!(
        fs::read_to_string(data.path().join("f")).unwrap(),
        "written\n"
    );
    // Mount before the command, Unmount after, with one caller ID.
    let calls: Vec<String> = f
        .plugin
        .paths()
        .into_iter()
        .filter(|p| p.ends_with(".Mount") || p.ends_with(".Unmount"))
        .collect();
    assert_eq!(
        calls,
        ["/VolumeDriver.Mount", "/VolumeDriver.Unmount"],
        "{:?}",
        f.plugin.paths()
    );
    let mount = &f.plugin.bodies("/VolumeDriver.Mount")[0];
    let unmount = &f.plugin.bodies("/VolumeDriver.Unmount")[0];
    assert_eq!(mount["Name"], "pv");
    assert_eq!(mount, unmount);
    assert!(
        mount["ID"].as_str().is_some_and(|id| id.len() == 64),
        "{mount}"
    );
    // --rm took the container; the named plugin volume stays.
    assert_eq!(f.volume_names(), ["pv"]);
    assert!(f
        .json(&["ps", "-a", "--format", "json"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn run_fails_cleanly_when_the_plugin_will_not_mount() {
    if !require_root() || !have_runtime("run_fails_cleanly_when_the_plugin_will_not_mount") {
        return;
    }
    let Some(f) = Fixture::new(|r| match r.path.as_str() {
        "/VolumeDriver.Mount" => Reply::err("backend offline"),
        _ => fakevol(r),
    }) else {
        return;
    };
    f.busybox_image();
    f.ok(&["volume", "create", "--driver", "fakevol", "pv"]);
    let out = f.run(&["run", "--rm", "-v", "pv:/data", "bb:1", "sh", "-c", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("backend offline"), "{}", stderr(&out));
    // Nothing was mounted, so nothing is unmounted; nothing is left.
    assert!(f.plugin.bodies("/VolumeDriver.Unmount").is_empty());
    assert!(f
        .json(&["ps", "-a", "--format", "json"])
        .as_array()
        .unwrap()
        .is_empty());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = f.s.root();
    assert!(
        !mounts.lines().any(|l| l
            .split(' ')
            .nth(4)
            .is_some_and(|m| Path::new(m).starts_with(&root))),
        "mounts left under the store"
    );
}

/// `cp` into a plugin's volume writes where the plugin says it is
/// mounted; while the plugin gives no path, the copy is refused by name
/// (and nothing lands in the container's own layer).
#[test]
fn cp_uses_the_plugins_path_or_refuses() {
    if !require_root() {
        return;
    }
    let there = tempfile::tempdir().unwrap();
    let dir = there.path().to_str().unwrap().to_owned();
    let Some(f) = Fixture::new(move |r| {
        let path = match r.name() {
            Some("mounted") => dir.clone(),
            _ => String::new(),
        };
        match r.path.as_str() {
            "/VolumeDriver.Path" => Reply::ok(json!({"Mountpoint": path, "Err": ""})),
            _ => Reply::default_for(r),
        }
    }) else {
        return;
    };
    f.tiny_image();
    f.ok(&["volume", "create", "--driver", "fakevol", "mounted"]);
    f.ok(&["volume", "create", "--driver", "fakevol", "unmounted"]);
    f.ok(&[
        "create",
        "--name",
        "c",
        "-v",
        "mounted:/m",
        "-v",
        "unmounted:/u",
        "tiny:1",
    ]);
    let file = f.s.path("f");
    fs::write(&file, "to the plugin\n").unwrap();
    let file = file.to_str().unwrap();
    f.ok(&["cp", file, "c:/m/f"]);
    assert_eq!(
        fs::read_to_string(there.path().join("f")).unwrap(),
        "to the plugin\n"
    );
    let out = f.s.path("out");
    f.ok(&["cp", "c:/m/f", out.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(&out).unwrap(), "to the plugin\n");
    let e = f.err(&["cp", file, "c:/u/f"]);
    assert!(
        e.contains("volume unmounted at /u is not mounted by its driver fakevol"),
        "{e}"
    );
    let diff = f.ok(&["diff", "c"]);
    assert!(!diff.contains("/m/") && !diff.contains("/u/"), "{diff}");
    f.ok(&["rm", "c"]);
}
