//! The plugin protocol client against a fake plugin
//! (`strata_volume::testing::FakePlugin`): a unix socket served by a
//! thread, answering each path with canned JSON (or with silence, a
//! dropped connection, half an answer) and recording what it was sent.

use std::collections::BTreeMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strata_volume::plugin::{self, Plugin, Timeouts};
use strata_volume::testing::{FakePlugin, Reply, Request, CONTENT_TYPE};
use strata_volume::{ErrorKind, Scope, VolumeDriver, VolumeInfo};

/// Short enough for the hang tests to be quick.
fn timeouts() -> Timeouts {
    Timeouts::uniform(Duration::from_secs(1))
}

/// A well-behaved volume driver.
fn driver(request: &Request) -> Reply {
    let volume = json!({"Name": "vol", "Mountpoint": "/mnt/fake/vol", "Status": {"size": 3}});
    let answer = match request.path.as_str() {
        "/Plugin.Activate" => json!({"Implements": ["VolumeDriver"]}),
        "/VolumeDriver.Create" => json!({"Err": ""}),
        "/VolumeDriver.Remove" | "/VolumeDriver.Unmount" => json!({}),
        "/VolumeDriver.Mount" => json!({"Mountpoint": "/mnt/fake/vol", "Err": ""}),
        "/VolumeDriver.Path" => json!({"Mountpoint": "/mnt/fake/vol"}),
        "/VolumeDriver.Get" => json!({"Volume": volume, "Err": ""}),
        "/VolumeDriver.List" => json!({"Volumes": [volume, {"Name": "other"}], "Err": ""}),
        "/VolumeDriver.Capabilities" => json!({"Capabilities": {"Scope": "global"}}),
        _ => return Reply::not_found(),
    };
    Reply::Json(200, answer)
}

/// A temporary plugin directory with `NAME.sock` served by `handler`.
fn plugin_dir(
    name: &str,
    handler: impl Fn(&Request) -> Reply + Send + 'static,
) -> (tempfile::TempDir, FakePlugin) {
    let dir = tempfile::tempdir().unwrap();
    let server = FakePlugin::start(dir.path(), name, handler);
    (dir, server)
}

fn activate(server: &FakePlugin) -> Plugin {
    Plugin::activate("fake", server.socket(), timeouts()).expect("activate")
}

fn assert_error(err: &strata_volume::Error, kind: ErrorKind, parts: &[&str]) {
    let msg = err.to_string();
    assert_eq!(err.kind(), kind, "{msg}");
    for part in parts {
        assert!(msg.contains(part), "{part:?} missing from {msg:?}");
    }
}

#[test]
fn every_call_sends_the_documented_json() {
    let (_dir, server) = plugin_dir("fake", driver);
    let p = activate(&server);
    let opts = BTreeMap::from([("size".to_string(), "1G".to_string())]);
    let info = VolumeInfo {
        name: "vol".into(),
        mountpoint: Some("/mnt/fake/vol".into()),
        status: BTreeMap::from([("size".to_string(), json!(3))]),
    };

    assert_eq!(p.name(), "fake");
    p.create("vol", &opts).unwrap();
    assert_eq!(p.mount("vol", "ctr1").unwrap(), Path::new("/mnt/fake/vol"));
    assert_eq!(
        p.path("vol").unwrap().as_deref(),
        Some(Path::new("/mnt/fake/vol"))
    );
    assert_eq!(p.get("vol").unwrap(), info);
    let other = VolumeInfo {
        name: "other".into(),
        mountpoint: None,
        status: BTreeMap::new(),
    };
    assert_eq!(p.list().unwrap(), vec![info, other]);
    assert_eq!(p.scope().unwrap(), Scope::Global);
    p.unmount("vol", "ctr1").unwrap();
    p.remove("vol").unwrap();

    let sent: Vec<(String, Value)> = server
        .requests()
        .into_iter()
        .map(|r| (r.path, r.body))
        .collect();
    let expected = [
        ("/Plugin.Activate", Value::Null),
        (
            "/VolumeDriver.Create",
            json!({"Name": "vol", "Opts": {"size": "1G"}}),
        ),
        ("/VolumeDriver.Mount", json!({"Name": "vol", "ID": "ctr1"})),
        ("/VolumeDriver.Path", json!({"Name": "vol"})),
        ("/VolumeDriver.Get", json!({"Name": "vol"})),
        ("/VolumeDriver.List", json!({})),
        ("/VolumeDriver.Capabilities", json!({})),
        (
            "/VolumeDriver.Unmount",
            json!({"Name": "vol", "ID": "ctr1"}),
        ),
        ("/VolumeDriver.Remove", json!({"Name": "vol"})),
    ]
    .map(|(path, body)| (path.to_string(), body));
    assert_eq!(sent, expected);
    for r in server.requests() {
        assert_eq!(
            (r.content_type.as_str(), r.accept.as_str()),
            (CONTENT_TYPE, CONTENT_TYPE),
            "{}",
            r.path
        );
    }
}

#[test]
fn plugin_err_is_a_plugin_error_with_the_message() {
    let (_dir, server) = plugin_dir("fake", |r| match r.path.as_str() {
        "/VolumeDriver.Mount" => Reply::Json(200, json!({"Mountpoint": "", "Err": "disk on fire"})),
        "/VolumeDriver.Remove" => Reply::Json(500, json!({"Err": "volume vol is busy"})),
        "/VolumeDriver.Get" => {
            Reply::raw("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops\n")
        }
        "/VolumeDriver.Create" => Reply::Json(200, json!({"Err": null})),
        _ => driver(r),
    });
    let p = activate(&server);
    let err = p.mount("vol", "ctr1").unwrap_err();
    assert_error(
        &err,
        ErrorKind::Plugin,
        &["fake", "VolumeDriver.Mount", "disk on fire"],
    );
    let err = p.remove("vol").unwrap_err();
    assert_error(
        &err,
        ErrorKind::Plugin,
        &["fake", "VolumeDriver.Remove", "volume vol is busy"],
    );
    let err = p.get("vol").unwrap_err();
    assert_error(
        &err,
        ErrorKind::Plugin,
        &["fake", "VolumeDriver.Get", "500", "oops"],
    );
    p.create("vol", &BTreeMap::new())
        .expect("a null Err is no error");
}

#[test]
fn plugin_that_is_not_a_volume_driver_is_refused() {
    let (_dir, server) = plugin_dir("authz", |r| match r.path.as_str() {
        "/Plugin.Activate" => Reply::Json(200, json!({"Implements": ["authz"]})),
        _ => driver(r),
    });
    let err = plugin::find(
        "authz",
        &[server.socket().parent().unwrap().into()],
        timeouts(),
    )
    .unwrap_err();
    assert_error(&err, ErrorKind::Plugin, &["authz", "not a volume driver"]);
}

#[test]
fn hanging_plugin_times_out_and_nothing_stays_stuck() {
    let (_dir, server) = plugin_dir("fake", |r| match r.path.as_str() {
        "/VolumeDriver.Mount" => Reply::Hang,
        _ => driver(r),
    });
    let p = activate(&server);
    let start = Instant::now();
    let err = p.mount("vol", "ctr1").unwrap_err();
    let took = start.elapsed();
    assert_error(
        &err,
        ErrorKind::Timeout,
        &["fake", "VolumeDriver.Mount", "1s"],
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The plugin is still usable for other calls.
    p.unmount("vol", "ctr1").unwrap();
}

#[test]
fn hanging_activation_times_out() {
    let (_dir, server) = plugin_dir("fake", |_| Reply::Hang);
    let start = Instant::now();
    let err = Plugin::activate("fake", server.socket(), timeouts()).unwrap_err();
    assert_error(&err, ErrorKind::Timeout, &["fake", "Plugin.Activate"]);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn plugin_dying_mid_call_is_a_clear_error() {
    let (_dir, server) = plugin_dir("fake", |r| match r.path.as_str() {
        "/VolumeDriver.Mount" => Reply::Close,
        "/VolumeDriver.Path" => {
            Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"Mountpoint\":")
        }
        "/VolumeDriver.Get" => {
            Reply::raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"Volume\"")
        }
        "/VolumeDriver.List" => Reply::raw("HTTP/1.1 200 OK\r\nContent-Ty"),
        _ => driver(r),
    });
    let p = activate(&server);
    let err = p.mount("vol", "ctr1").unwrap_err();
    assert_error(&err, ErrorKind::Plugin, &["fake", "VolumeDriver.Mount"]);
    let source = std::error::Error::source(&err)
        .expect("the cause")
        .to_string();
    assert!(source.contains("connection closed"), "{source}");
    for (call, err) in [
        ("VolumeDriver.Path", p.path("vol").unwrap_err()),
        ("VolumeDriver.Get", p.get("vol").unwrap_err()),
        ("VolumeDriver.List", p.list().unwrap_err()),
    ] {
        assert_error(&err, ErrorKind::Plugin, &["fake", call]);
    }
}

#[test]
fn chunked_responses_are_decoded() {
    let (_dir, server) = plugin_dir("fake", |r| match r.path.as_str() {
        "/VolumeDriver.List" => {
            Reply::Chunked(json!({"Volumes": [{"Name": "a"}, {"Name": "b"}]}), 7)
        }
        "/VolumeDriver.Mount" => Reply::Chunked(json!({"Mountpoint": "/mnt/x"}), 1),
        _ => driver(r),
    });
    let p = activate(&server);
    let names: Vec<_> = p.list().unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(p.mount("x", "c").unwrap(), Path::new("/mnt/x"));
}

#[test]
fn plugin_without_capabilities_is_local() {
    let (_dir, server) = plugin_dir("fake", |r| match r.path.as_str() {
        "/VolumeDriver.Capabilities" => Reply::not_found(),
        _ => driver(r),
    });
    assert_eq!(activate(&server).scope().unwrap(), Scope::Local);
}

#[test]
fn plugin_not_running_is_a_plugin_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gone.sock");
    drop(UnixListener::bind(&socket).unwrap());
    let err = Plugin::activate("gone", &socket, timeouts()).unwrap_err();
    assert_error(
        &err,
        ErrorKind::Plugin,
        &["gone", "Plugin.Activate", "not running"],
    );
}

#[test]
fn discovery_finds_name_sock_and_name_slash_name_sock() {
    let (dir, server) = plugin_dir("flat", driver);
    let nested = tempfile::tempdir().unwrap();
    std::fs::create_dir(nested.path().join("deep")).unwrap();
    let _deep = FakePlugin::serve(&nested.path().join("deep/deep.sock"), driver);
    let dirs = [
        PathBuf::from("/nonexistent"),
        dir.path().into(),
        nested.path().into(),
    ];

    let p = plugin::find("flat", &dirs, timeouts()).unwrap();
    assert_eq!((p.name(), p.socket()), ("flat", server.socket()));
    let p = plugin::find("deep", &dirs, timeouts()).unwrap();
    assert_eq!(p.socket(), nested.path().join("deep/deep.sock"));
    assert_eq!(server.paths(), ["/Plugin.Activate"]);
}

#[test]
fn discovery_reads_spec_and_json_files() {
    let (_sockets, server) = plugin_dir("elsewhere", driver);
    let specs = tempfile::tempdir().unwrap();
    let url = format!("unix://{}\n", server.socket().display());
    std::fs::write(specs.path().join("byspec.spec"), &url).unwrap();
    let json = json!({"Name": "byjson", "Addr": url.trim()}).to_string();
    std::fs::create_dir(specs.path().join("byjson")).unwrap();
    std::fs::write(specs.path().join("byjson/byjson.json"), json).unwrap();
    let dirs = [specs.path().to_path_buf()];

    for name in ["byspec", "byjson"] {
        let p = plugin::find(name, &dirs, timeouts()).unwrap();
        assert_eq!((p.name(), p.socket()), (name, server.socket()));
    }
    assert_eq!(server.paths(), ["/Plugin.Activate", "/Plugin.Activate"]);
}

#[test]
fn discovery_prefers_sockets_over_spec_files() {
    let specs = tempfile::tempdir().unwrap();
    std::fs::write(
        specs.path().join("fake.spec"),
        "unix:///nonexistent/fake.sock",
    )
    .unwrap();
    let (sockets, server) = plugin_dir("fake", driver);
    // The spec file's directory comes first, yet the socket wins.
    let dirs = [specs.path().to_path_buf(), sockets.path().to_path_buf()];
    let p = plugin::find("fake", &dirs, timeouts()).unwrap();
    assert_eq!(p.socket(), server.socket());
}

#[test]
fn discovery_refuses_tcp_and_bad_names() {
    let specs = tempfile::tempdir().unwrap();
    std::fs::write(specs.path().join("remote.spec"), "tcp://10.0.0.1:8080\n").unwrap();
    std::fs::write(
        specs.path().join("relative.json"),
        r#"{"Addr": "unix://run/x.sock"}"#,
    )
    .unwrap();
    std::fs::write(specs.path().join("broken.json"), "{").unwrap();
    let dirs = [specs.path().to_path_buf()];

    let err = plugin::find("remote", &dirs, timeouts()).unwrap_err();
    assert_error(
        &err,
        ErrorKind::InvalidArgument,
        &["remote", "tcp://10.0.0.1:8080", "only unix://"],
    );
    let err = plugin::find("relative", &dirs, timeouts()).unwrap_err();
    assert_error(
        &err,
        ErrorKind::InvalidArgument,
        &["relative", "unix://run/x.sock"],
    );
    let err = plugin::find("broken", &dirs, timeouts()).unwrap_err();
    assert_error(&err, ErrorKind::InvalidArgument, &["broken", "broken.json"]);
    for bad in ["../etc/evil", "a/b", "", ".hidden"] {
        let err = plugin::find(bad, &dirs, timeouts()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}: {err}");
    }
}

#[test]
fn missing_plugin_is_not_found_naming_the_dirs_searched() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
    let err = plugin::find("absent", &dirs, timeouts()).unwrap_err();
    let (a, b) = (
        a.path().display().to_string(),
        b.path().display().to_string(),
    );
    assert_error(
        &err,
        ErrorKind::NotFound,
        &["absent", "absent.sock", &a, &b],
    );
}

#[test]
fn default_dirs_put_strata_before_docker() {
    let dirs = plugin::default_dirs();
    assert_eq!(
        dirs.first().map(PathBuf::as_path),
        Some(Path::new("/run/strata/plugins"))
    );
    assert!(dirs.contains(&PathBuf::from("/run/docker/plugins")));
}

#[test]
fn plugin_with_a_full_accept_queue_times_out_on_connect() {
    use socket2::{Domain, SockAddr, Socket, Type};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("wedged.sock");
    // A plugin that listens but never accepts: backlog 0 holds one
    // pending connection, taken here, so the next connect has to wait.
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    listener.bind(&SockAddr::unix(&socket).unwrap()).unwrap();
    listener.listen(0).unwrap();
    let _pending = UnixStream::connect(&socket).unwrap();
    let start = Instant::now();
    let err = Plugin::activate("wedged", &socket, timeouts()).unwrap_err();
    assert_error(&err, ErrorKind::Timeout, &["wedged", "Plugin.Activate"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
