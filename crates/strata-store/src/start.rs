//! What running a container needs from the store: its root file system
//! mounted, its plugin volumes mounted (`VolumeDriver.Mount`) and released
//! (`Unmount`), and so its local volumes with `type`/`device` options
//! (mounted on `_data` by the first user, unmounted by the last), a
//! directory for the runtime's bundle, and its state.
//!
//! ```text
//! containers/<id>/
//!   config.json      the container (see `container`)
//!   state.json       created | running | exited, exit code, times, the pid
//!                    of the strata process that runs it
//!   bundle/          the OCI bundle's config.json (written by strata-run)
//!   hosts, hostname, resolv.conf   bind-mounted over the init layer's
//!   runtime/         the OCI runtime's state (`--root`)
//! ```
//!
//! A container is running while its state says so and the strata process
//! that runs it is alive: a strata killed with SIGKILL leaves a state that
//! reads as exited (code 255, as Docker reports a container whose daemon
//! lost it), and the next `start` takes the mounts it left as stale.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_volume::local;
use strata_volume::VolumeDriver;

use crate::container::{Container, ContainerStore};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::Lock;
use crate::mount::{Mount, MountKind};
use crate::{atomic, time, Store};

/// A container's life, as `inspect` shows it under `State`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// `containers/<id>/state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct State {
    pub status: Status,
    /// The strata process running the container (0 when none).
    pub pid: u32,
    pub exit_code: i32,
    pub started_at: String,
    pub finished_at: String,
    /// The OCI runtime it runs under (a path).
    pub runtime: String,
    /// The boot the strata process ran in, and when it started (clock
    /// ticks since that boot): a PID alone may name another process
    /// after a reboot or once PIDs wrap. Empty and 0 in records made
    /// before they were kept (the PID alone decides then).
    pub boot_id: String,
    pub pid_start: u64,
    /// Removed when it exits (`run -d --rm`), unless restarting.
    pub auto_remove: bool,
    /// Recorded as running, but the strata process running it is gone
    /// (killed): what it had mounted is still taken.
    #[serde(skip)]
    pub lost: bool,
}

/// A started container: where its root is, and its mounts with every
/// source a host path (plugin volumes mounted).
#[derive(Debug)]
pub struct Started {
    pub rootfs: PathBuf,
    pub mounts: Vec<Mount>,
    /// `containers/<id>`, for the bundle and the runtime's files.
    pub dir: PathBuf,
}

impl Store {
    /// The container's state (see [`ContainerStore::state`]).
    pub fn container_state(&self, c: &Container) -> Result<State> {
        self.containers.state(c)
    }

    /// Prepares `c` to run under `runtime`: mounts its root file system and
    /// its plugin volumes, and records it as running in this process.
    /// Refuses a container that is already running. Undone by
    /// [`Store::finish_container`], which must be called whatever happens.
    pub fn start_container(
        &self,
        c: &Container,
        runtime: &str,
        auto_remove: bool,
    ) -> Result<Started> {
        let lock = self.lock()?;
        let state = self.container_state(c)?;
        if state.status == Status::Running {
            return Err(Error::new(
                ErrorKind::InUse,
                format!(
                    "container {} is already running (strata process {})",
                    c.name, state.pid
                ),
            ));
        }
        if state.lost {
            // A strata that was killed left its mounts: take them back.
            self.release_lost(&lock, c, &state)?;
        }
        // Kept until the container finishes (`release`, maybe in another
        // process).
        let rootfs = self
            .driver
            .get(&c.mount_id, None)
            .map(strata_driver::Mount::keep)
            .map_err(|e| Error::driver(format!("mounting container {}", c.name), e))?;
        let mut mounts = Vec::new();
        let mut mounted = Vec::new();
        for m in &c.mounts {
            let source = match (self.driven_of(m), m.local_volume()) {
                (Some((driver, name)), _) => match self.plugin_mount(&driver, &name, &c.id) {
                    Ok(path) => {
                        mounted.push((driver, name));
                        path
                    }
                    Err(e) => {
                        self.release(c, &mounted);
                        return Err(e);
                    }
                },
                // A local volume is where this store keeps it, whatever
                // path the record was written with (a store moved, or
                // reached by another path).
                (None, Some(name)) => self.layout.volume_data(name),
                (None, None) if !m.source.exists() => {
                    self.release(c, &mounted);
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "the source of mount {} ({}) does not exist",
                            m.destination,
                            m.source.display()
                        ),
                    ));
                }
                (None, None) => m.source.clone(),
            };
            mounts.push(Mount {
                source,
                ..m.clone()
            });
        }
        let pid = std::process::id();
        let s = State {
            status: Status::Running,
            pid,
            exit_code: 0,
            started_at: time::now_rfc3339(),
            finished_at: String::new(),
            runtime: runtime.to_owned(),
            boot_id: strata_sys::process::boot_id().unwrap_or_default(),
            pid_start: strata_sys::process::start_time(pid).unwrap_or(0),
            auto_remove,
            lost: false,
        };
        if let Err(e) = self.containers.set_state(&lock, c, &s) {
            self.release(c, &mounted);
            return Err(e);
        }
        Ok(Started {
            rootfs,
            mounts,
            dir: self.layout.container(&c.id),
        })
    }

    /// After the container's command exits (`exit_code`) or failed to
    /// start: releases what [`Store::start_container`] took and records
    /// the exit.
    pub fn finish_container(&self, c: &Container, exit_code: i32) -> Result<()> {
        let lock = self.lock()?;
        self.release(c, &self.driven_volumes(c));
        let mut s = self.container_state(c)?;
        s.lost = false;
        s.status = Status::Exited;
        s.pid = 0;
        s.exit_code = exit_code;
        s.finished_at = time::now_rfc3339();
        self.containers.set_state(&lock, c, &s)
    }

    /// Unmounts `plugins` (driver, volume) and the root file system; a
    /// failure is logged, not returned: the container has exited whatever
    /// a plugin says.
    fn release(&self, c: &Container, plugins: &[(String, String)]) {
        for (driver, name) in plugins {
            let r = self
                .volume_driver(driver)
                .and_then(|p| p.unmount(name, &c.id).map_err(Error::from));
            if let Err(e) = r {
                tracing::warn!("volume {name}: unmounting through driver {driver}: {e}");
            }
        }
        if let Err(e) = self.driver.put(&c.mount_id) {
            tracing::warn!("unmounting container {}: {e}", c.name);
        }
    }

    /// What a killed strata left: its root file system reference and
    /// plugin mounts; then the state says it exited (255).
    fn release_lost(&self, lock: &Lock, c: &Container, state: &State) -> Result<()> {
        tracing::debug!(
            "container {}: releasing what the run started at {} left",
            c.name,
            state.started_at
        );
        self.release(c, &self.driven_volumes(c));
        self.containers.set_state(lock, c, state)
    }

    fn plugin_mount(&self, driver: &str, name: &str, id: &str) -> Result<PathBuf> {
        let plugin = self.volume_driver(driver)?;
        let path = plugin.mount(name, id)?;
        if !path.is_absolute() {
            let _ = plugin.unmount(name, id);
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "volume {name}: plugin {driver} mounted it at {:?}, not an absolute path",
                    path.display()
                ),
            ));
        }
        Ok(path)
    }

    /// `containers/<id>`: where `start` keeps the bundle and the files it
    /// mounts.
    pub fn container_path(&self, c: &Container) -> PathBuf {
        self.layout.container(&c.id)
    }
}

impl Store {
    /// The (driver, volume) pairs of `c`'s volumes that a driver mounts
    /// for each run.
    fn driven_volumes(&self, c: &Container) -> Vec<(String, String)> {
        c.mounts.iter().filter_map(|m| self.driven_of(m)).collect()
    }

    /// The driver and volume of a mount that a driver mounts for each run:
    /// a plugin's volume, or a local one with `type`/`device` options (a
    /// plain local volume is its `_data`, and needs nothing).
    fn driven_of(&self, m: &Mount) -> Option<(String, String)> {
        let (MountKind::Volume, Some(driver), Some(name)) =
            (&m.kind, m.driver.as_deref(), m.name.as_deref())
        else {
            return None;
        };
        if driver != local::DRIVER {
            return Some((driver.to_owned(), name.to_owned()));
        }
        let meta = self.volumes.local().ok()?.meta(name).ok()?;
        (meta.driver == local::DRIVER && local::mount_options(&meta.options).is_some())
            .then(|| (driver.to_owned(), name.to_owned()))
    }

    /// The driver named `driver`: the local one, or a plugin.
    fn volume_driver(&self, driver: &str) -> Result<Box<dyn VolumeDriver>> {
        if driver == local::DRIVER {
            return Ok(Box::new(self.volumes.local()?));
        }
        self.volumes.plugin_driver(driver)
    }
}

/// A container's runs, in `containers/<id>/state.json`.
impl ContainerStore {
    /// The container's state; a running state whose strata process is
    /// gone (died, or the machine rebooted since) reads as exited with
    /// code 255.
    pub fn state(&self, c: &Container) -> Result<State> {
        let p = self.layout.container_state(&c.id);
        let mut s: State = match atomic::read_capped(&p, atomic::RECORD_CAP) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::with(
                    ErrorKind::Corrupt,
                    format!("container {}: bad state.json", c.name),
                    e,
                )
            })?,
            Err(e) if e.kind() == ErrorKind::NotFound => State::default(),
            Err(e) => {
                return Err(Error::with(
                    e.kind(),
                    format!("container {}: state", c.name),
                    e,
                ))
            }
        };
        if s.status == Status::Running && !runs(&s) {
            s.status = Status::Exited;
            s.exit_code = 255;
            s.pid = 0;
            s.lost = true;
        }
        Ok(s)
    }

    /// Records the container's state.
    pub(crate) fn set_state(&self, _: &Lock, c: &Container, s: &State) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(s).expect("serialising a state");
        atomic::write(&self.layout.container_state(&c.id), &bytes)
    }
}

/// Whether the strata process a running state names still runs: the
/// same boot, the PID alive, and the same process behind it.
fn runs(s: &State) -> bool {
    use strata_sys::process;
    if !s.boot_id.is_empty() && process::boot_id().is_ok_and(|b| b != s.boot_id) {
        return false;
    }
    if !process::alive(s.pid) {
        return false;
    }
    s.pid_start == 0 || process::start_time(s.pid).is_ok_and(|t| t == s.pid_start)
}
