//! The Docker volume plugin protocol, client side: a [`Plugin`] is a
//! [`VolumeDriver`] whose every call is an HTTP/1.1 `POST` of a JSON body to
//! a unix socket, as in Docker's
//! [volume plugin protocol](https://docs.docker.com/engine/extend/plugins_volume/).
//!
//! ```text
//! POST /Plugin.Activate             -> {"Implements": ["VolumeDriver"]}
//! POST /VolumeDriver.Create         {Name, Opts}  -> {Err}
//! POST /VolumeDriver.Remove         {Name}        -> {Err}
//! POST /VolumeDriver.Mount          {Name, ID}    -> {Mountpoint, Err}
//! POST /VolumeDriver.Unmount        {Name, ID}    -> {Err}
//! POST /VolumeDriver.Path           {Name}        -> {Mountpoint, Err}
//! POST /VolumeDriver.Get            {Name}        -> {Volume: {Name, Mountpoint, Status}, Err}
//! POST /VolumeDriver.List           {}            -> {Volumes: [...], Err}
//! POST /VolumeDriver.Capabilities   {}            -> {Capabilities: {Scope}}
//! ```
//!
//! Requests and responses are `application/vnd.docker.plugins.v1.2+json`.
//! A non-empty `Err` is an error of kind [`ErrorKind::Plugin`], as is a
//! status other than 2xx (its body's `Err`, when there is one, is the
//! message, as Docker reads it). One connection per call.
//!
//! # Timeouts
//!
//! Docker's: two minutes for `Create` and `Mount`, one for every other
//! call ([`Timeouts::default`]). The limit covers the whole call, connect
//! included; past it the call fails with [`ErrorKind::Timeout`] and the
//! connection is dropped, so no thread stays blocked on a plugin.
//!
//! # Discovery
//!
//! [`find`] looks, in each directory in turn, for a socket `NAME.sock` or
//! `NAME/NAME.sock`, then for a spec file `NAME.spec` (one URL) or
//! `NAME.json` (`{"Name": ..., "Addr": ...}`), each also under `NAME/`,
//! and activates what it found. Only `unix:///path` addresses are
//! supported; tcp plugins are refused. [`default_dirs`] are
//! `/run/strata/plugins` and `/etc/strata/plugins`, then Docker's
//! `/run/docker/plugins`, `/etc/docker/plugins` and
//! `/usr/lib/docker/plugins`, so a plugin installed for Docker works
//! unchanged; strata's own directories come first so they can override.
//! Unlike Docker (a daemon that may start before its plugins), activation
//! is not retried: a plugin is expected to be running when it is used.

mod conn;
mod discovery;
mod http;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{Error, ErrorKind, Result, Scope, VolumeDriver, VolumeInfo};

pub use discovery::{default_dirs, locate};

/// How long each call may take, connect to last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `VolumeDriver.Create` and `VolumeDriver.Mount` (Docker: 2 min).
    pub long: Duration,
    /// Every other call, `Plugin.Activate` included (Docker: 1 min).
    pub short: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            long: Duration::from_secs(120),
            short: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// The same limit for every call.
    pub fn uniform(limit: Duration) -> Self {
        Timeouts {
            long: limit,
            short: limit,
        }
    }
}

/// Finds plugin `name` in `dirs` (see the [module docs](self)) and
/// activates it.
pub fn find(name: &str, dirs: &[PathBuf], timeouts: Timeouts) -> Result<Plugin> {
    let socket = locate(name, dirs)?;
    Plugin::activate(name, socket, timeouts)
}

/// A volume driver reached through the plugin protocol.
#[derive(Debug, Clone)]
pub struct Plugin {
    name: String,
    socket: PathBuf,
    timeouts: Timeouts,
}

/// `Plugin.Activate`'s answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Activation {
    #[serde(default)]
    implements: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MountpointAnswer {
    #[serde(default)]
    mountpoint: String,
}

/// A volume as plugins send it; `CreatedAt` is not kept.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireVolume {
    #[serde(default)]
    name: String,
    #[serde(default)]
    mountpoint: String,
    #[serde(default)]
    status: Option<BTreeMap<String, Value>>,
}

impl From<WireVolume> for VolumeInfo {
    fn from(v: WireVolume) -> Self {
        VolumeInfo {
            name: v.name,
            mountpoint: non_empty(v.mountpoint),
            status: v.status.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetAnswer {
    #[serde(default)]
    volume: Option<WireVolume>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAnswer {
    #[serde(default)]
    volumes: Option<Vec<WireVolume>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CapabilitiesAnswer {
    #[serde(default)]
    capabilities: Capabilities,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Capabilities {
    #[serde(default)]
    scope: String,
}

/// An answer whose only field is `Err`, checked by [`Plugin::call`].
#[derive(Deserialize)]
struct Empty {}

impl Plugin {
    /// Activates the plugin listening on `socket`, refusing one that does
    /// not implement `VolumeDriver`.
    pub fn activate(name: &str, socket: impl Into<PathBuf>, timeouts: Timeouts) -> Result<Plugin> {
        let plugin = Plugin {
            name: name.to_string(),
            socket: socket.into(),
            timeouts,
        };
        let answer: Activation = plugin.call("Plugin.Activate", None)?;
        if !answer.implements.iter().any(|i| i == "VolumeDriver") {
            return Err(Error::new(
                ErrorKind::Plugin,
                format!(
                    "volume plugin {name}: not a volume driver (it implements {:?})",
                    answer.implements
                ),
            ));
        }
        Ok(plugin)
    }

    /// The socket the plugin listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The limit of `call` (Docker's long timeout for Create and Mount).
    fn timeout(&self, call: &str) -> Duration {
        match call {
            "VolumeDriver.Create" | "VolumeDriver.Mount" => self.timeouts.long,
            _ => self.timeouts.short,
        }
    }

    /// Posts `body` to `/CALL` and decodes the answer, turning an `Err`
    /// field or a non-2xx status into an error.
    fn call<T: DeserializeOwned>(&self, call: &str, body: Option<Value>) -> Result<T> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let timeout = self.timeout(call);
        let response = conn::DeadlineStream::connect(&self.socket, timeout)
            .and_then(|mut stream| http::post(&mut stream, &format!("/{call}"), body.as_bytes()))
            .map_err(|e| self.transport_error(call, timeout, e))?;
        let json: Option<Value> = if response.body.iter().all(u8::is_ascii_whitespace) {
            Some(json!({}))
        } else {
            serde_json::from_slice(&response.body).ok()
        };
        if let Some(msg) = json
            .as_ref()
            .and_then(|v| v.get("Err"))
            .and_then(Value::as_str)
        {
            if !msg.is_empty() {
                return Err(self.error(call, msg));
            }
        }
        if !(200..300).contains(&response.status) {
            let text = String::from_utf8_lossy(&response.body);
            let text = text.trim();
            let text: String = text.chars().take(512).collect();
            return Err(self.error(call, &format!("HTTP status {}: {text}", response.status)));
        }
        let json = json.ok_or_else(|| self.error(call, "answer is not JSON"))?;
        serde_json::from_value(json).map_err(|e| {
            Error::with(
                ErrorKind::Plugin,
                format!("volume plugin {}: {call}: unexpected answer", self.name),
                e,
            )
        })
    }

    fn error(&self, call: &str, msg: &str) -> Error {
        Error::new(
            ErrorKind::Plugin,
            format!("volume plugin {}: {call}: {msg}", self.name),
        )
    }

    fn transport_error(&self, call: &str, timeout: Duration, e: io::Error) -> Error {
        let name = &self.name;
        let socket = self.socket.display();
        match e.kind() {
            io::ErrorKind::TimedOut => Error::new(
                ErrorKind::Timeout,
                format!("volume plugin {name}: {call}: no answer within {timeout:?}"),
            ),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => Error::with(
                ErrorKind::Plugin,
                format!("volume plugin {name}: {call}: plugin not running at {socket}"),
                e,
            ),
            _ => Error::with(
                ErrorKind::Plugin,
                format!("volume plugin {name}: {call} failed"),
                e,
            ),
        }
    }

    fn mountpoint(&self, call: &str, name: &str, id: Option<&str>) -> Result<Option<PathBuf>> {
        let body = match id {
            Some(id) => json!({"Name": name, "ID": id}),
            None => json!({"Name": name}),
        };
        let answer: MountpointAnswer = self.call(call, Some(body))?;
        Ok(non_empty(answer.mountpoint))
    }
}

impl VolumeDriver for Plugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<()> {
        self.call::<Empty>(
            "VolumeDriver.Create",
            Some(json!({"Name": name, "Opts": opts})),
        )
        .map(drop)
    }

    fn remove(&self, name: &str) -> Result<()> {
        self.call::<Empty>("VolumeDriver.Remove", Some(json!({"Name": name})))
            .map(drop)
    }

    fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        self.mountpoint("VolumeDriver.Mount", name, Some(id))?
            .ok_or_else(|| {
                self.error(
                    "VolumeDriver.Mount",
                    &format!("no Mountpoint given for volume {name}"),
                )
            })
    }

    fn unmount(&self, name: &str, id: &str) -> Result<()> {
        self.call::<Empty>(
            "VolumeDriver.Unmount",
            Some(json!({"Name": name, "ID": id})),
        )
        .map(drop)
    }

    fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        self.mountpoint("VolumeDriver.Path", name, None)
    }

    /// A volume the plugin does not report is [`ErrorKind::NotFound`]; a
    /// plugin that omits the name gets the one asked for.
    fn get(&self, name: &str) -> Result<VolumeInfo> {
        let answer: GetAnswer = self.call("VolumeDriver.Get", Some(json!({"Name": name})))?;
        let volume = answer.volume.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "volume plugin {}: VolumeDriver.Get: no volume {name}",
                    self.name
                ),
            )
        })?;
        let mut info = VolumeInfo::from(volume);
        if info.name.is_empty() {
            info.name = name.to_string();
        }
        Ok(info)
    }

    /// The names are the plugin's, unchecked: a caller that makes paths of
    /// them checks them first.
    fn list(&self) -> Result<Vec<VolumeInfo>> {
        let answer: ListAnswer = self.call("VolumeDriver.List", Some(json!({})))?;
        Ok(answer
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(VolumeInfo::from)
            .collect())
    }

    /// `Capabilities` is optional in the protocol: like Docker, a plugin
    /// that answers it with an error (most often a 404) is local. A plugin
    /// that does not answer at all is still an error.
    fn scope(&self) -> Result<Scope> {
        let answer: CapabilitiesAnswer = match self
            .call("VolumeDriver.Capabilities", Some(json!({})))
        {
            Ok(answer) => answer,
            Err(e) if e.kind() == ErrorKind::Plugin => {
                tracing::debug!(plugin = %self.name, error = %e, "no capabilities, assuming local scope");
                return Ok(Scope::Local);
            }
            Err(e) => return Err(e),
        };
        match answer.capabilities.scope.to_ascii_lowercase().as_str() {
            "" | "local" => Ok(Scope::Local),
            "global" => Ok(Scope::Global),
            other => Err(self.error(
                "VolumeDriver.Capabilities",
                &format!("unknown scope {other:?}"),
            )),
        }
    }
}

fn non_empty(path: String) -> Option<PathBuf> {
    (!path.is_empty()).then(|| PathBuf::from(path))
}
