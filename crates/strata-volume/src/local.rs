//! The `local` driver: a volume is a directory of the store.
//!
//! ```text
//! <root>/volumes/                 0700
//!   .lock                         flock held while a volume is made, counted or removed
//!   <name>/                       0700: no other host user reaches `_data`
//!     _data/                      0755, owned by root: the volume's content, or where
//!                                 its `type`/`device` is mounted while in use
//!     meta.json                   Driver, Options, CreatedAt, Labels (atomic writes)
//!     mounts/<caller-id>          how many mounts that caller (a container) holds
//! ```
//!
//! Names starting with `.` are never volume names ([`check_name`]), so the
//! lock and the staging directories (`.<name>.creating`,
//! `.<name>.removing`) cannot clash with a volume. A volume is made in
//! staging and renamed into place whole, so a crash leaves only staging,
//! which the next create or remove of that name clears, and which
//! [`Local::clean_staging`] (the store's open) removes.
//!
//! A container may leave a set-user-ID program (or a device node) in a
//! volume; a host user who could reach `_data` could run it. Docker keeps
//! `volumes/` 0701 and `<name>/` 0755, so anyone who knows a volume's name
//! can; here both are 0700 (the runtime, as root, is the only one that
//! needs to pass, to bind `_data` into the container), and
//! [`Local::tighten_modes`] narrows what an older store left looser.
//!
//! Options are Docker's local driver's: `type`, `device` and `o`, where
//! `type` and `device` come together and `o` needs both. With them the
//! volume is mounted on `_data` by its first mount and unmounted by its
//! last unmount (`type=tmpfs device=tmpfs o=size=64m`, or
//! `type=none device=/srv/x o=bind` for a bind of another directory).
//! Mount counts live on disk, so every `strata` process sees them.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_sys::mount::MountFlags;

use crate::error::IoContext;
use crate::{atomic, check_name, Error, ErrorKind, Result, Scope, VolumeDriver, VolumeInfo};

/// The driver's name.
pub const DRIVER: &str = "local";

/// Docker's record of its volumes, in a copy of its data root.
const DOCKER_METADATA: &str = "metadata.db";
/// Docker's local driver's mount options of a volume, in its directory.
const DOCKER_OPTS: &str = "opts.json";

/// The options the local driver takes, and which others each one needs
/// (moby's `validOpts` and `mandatoryOpts`).
const OPTIONS: &[(&str, &[&str])] = &[
    ("type", &["device"]),
    ("device", &["type"]),
    ("o", &["device", "type"]),
];

/// What `meta.json` records of a volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Meta {
    /// `local`, or the plugin that holds the volume's data.
    pub driver: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The `local` volume driver over `<root>/volumes`.
pub struct Local {
    dir: PathBuf,
}

/// Holds the volumes lock until dropped.
struct Locked {
    _file: File,
}

impl Local {
    /// The driver over `dir` (`<root>/volumes`), made when missing.
    pub fn open(dir: &Path) -> Result<Local> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .ctx(|| format!("creating {}", dir.display()))?;
        Ok(Local {
            dir: dir.to_owned(),
        })
    }

    /// The driver over `dir`, not made when missing (a store opened to
    /// be read): a missing `dir` holds no volumes.
    pub fn existing(dir: &Path) -> Local {
        Local {
            dir: dir.to_owned(),
        }
    }

    fn lock(&self) -> Result<Locked> {
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("opening {}", path.display()))?;
        strata_sys::fs::lock_exclusive(file.as_fd())
            .ctx(|| format!("locking {}", path.display()))?;
        Ok(Locked { _file: file })
    }

    fn volume_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `<name>/_data`: where the volume's content is.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    /// Whether a volume of any driver is recorded under `name` (by
    /// strata, or by Docker in a copy of its data root).
    pub fn exists(&self, name: &str) -> bool {
        check_name(name).is_ok()
            && (self.volume_dir(name).join("meta.json").is_file() || self.is_dockers(name))
    }

    /// Whether `name` is a local volume Docker made (the store is a copy
    /// of Docker's data root): its `_data` and no `meta.json`, beside
    /// Docker's own record of every volume, `volumes/metadata.db` (a
    /// bolt database strata does not read).
    pub fn is_dockers(&self, name: &str) -> bool {
        self.dir.join(DOCKER_METADATA).is_file()
            && fs::symlink_metadata(self.volume_dir(name).join("meta.json")).is_err()
            && fs::symlink_metadata(self.data_path(name)).is_ok_and(|m| m.is_dir())
    }

    /// The volume's record. A volume Docker made is a local volume
    /// without options or labels (Docker keeps those in its database),
    /// made when its directory was; one Docker mounts with options
    /// (`opts.json`: tmpfs, nfs, a device) is refused, since strata
    /// would use its empty `_data` instead.
    pub fn meta(&self, name: &str) -> Result<Meta> {
        check_name(name)?;
        if self.is_dockers(name) {
            return self.docker_meta(name);
        }
        let p = self.volume_dir(name).join("meta.json");
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(name)),
            Err(e) => return Err(Error::io(format!("reading {}", p.display()), e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::with(
                ErrorKind::Io,
                format!("volume {name}: bad {}", p.display()),
                e,
            )
        })
    }

    fn docker_meta(&self, name: &str) -> Result<Meta> {
        let dir = self.volume_dir(name);
        if fs::symlink_metadata(dir.join(DOCKER_OPTS)).is_ok() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "volume {name} was made by Docker with mount options ({}), \
                     which strata does not read",
                    dir.join(DOCKER_OPTS).display()
                ),
            ));
        }
        let made = fs::symlink_metadata(&dir)
            .and_then(|m| m.modified())
            .ctx(|| format!("reading {}", dir.display()))?;
        Ok(Meta {
            driver: DRIVER.to_owned(),
            options: BTreeMap::new(),
            created_at: humantime::format_rfc3339_seconds(made).to_string(),
            labels: BTreeMap::new(),
        })
    }

    /// Every recorded volume's name, whatever its driver, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            r => r.ctx(|| format!("listing {}", self.dir.display()))?,
        };
        for e in entries {
            let e = e.ctx(|| format!("listing {}", self.dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && self.exists(&name) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Makes a local volume with `opts` and `labels`.
    pub fn create_with(
        &self,
        name: &str,
        opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        check_options(name, opts)?;
        let meta = Meta {
            driver: DRIVER.to_owned(),
            options: opts.clone(),
            created_at: atomic::now_rfc3339(),
            labels: labels.clone(),
        };
        self.publish(name, &meta, true)
    }

    /// Records a volume another driver (a plugin) holds: `meta.json` only,
    /// no `_data`.
    pub fn record(&self, name: &str, meta: &Meta) -> Result<()> {
        self.publish(name, meta, false)
    }

    /// Stages `<name>/` with `meta.json` (and `_data/`), then renames it
    /// into place.
    fn publish(&self, name: &str, meta: &Meta, with_data: bool) -> Result<()> {
        check_name(name)?;
        let _lock = self.lock()?;
        if self.volume_dir(name).exists() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("volume {name} already exists"),
            ));
        }
        let staging = self.dir.join(format!(".{name}.creating"));
        let _ = fs::remove_dir_all(&staging);
        let made = (|| -> io::Result<()> {
            fs::DirBuilder::new().mode(0o700).create(&staging)?;
            if with_data {
                let data = staging.join("_data");
                fs::create_dir(&data)?;
                // 0755 whatever the umask: containers' users read it.
                fs::set_permissions(&data, fs::Permissions::from_mode(0o755))?;
            }
            let json = serde_json::to_vec_pretty(meta).expect("serialising volume metadata");
            atomic::write(&staging.join("meta.json"), &json)?;
            fs::rename(&staging, self.volume_dir(name))?;
            atomic::sync_dir(&self.dir)
        })();
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&staging);
            return Err(Error::io(format!("creating volume {name}"), e));
        }
        Ok(())
    }

    /// Takes group and other access away from `volumes/` and each
    /// `volumes/<name>/` (see the module docs) and returns what it
    /// changed, with the old modes. Each directory is opened without
    /// following a symlink and changed through that handle, and only when
    /// it is ours; the owner's bits and `_data` stay as they are.
    pub fn tighten_modes(&self) -> Result<Vec<(PathBuf, u32)>> {
        use std::ffi::OsStr;
        use strata_sys::fs as sys;
        let top = sys::open_dir(&self.dir).ctx(|| format!("opening {}", self.dir.display()))?;
        let mut dirs = vec![(self.dir.clone(), None)];
        for e in sys::read_dir(top.as_fd()).ctx(|| format!("listing {}", self.dir.display()))? {
            let name: &OsStr = sys::os(&e.name);
            dirs.push((self.dir.join(name), Some(name.to_owned())));
        }
        let mut changed = Vec::new();
        for (shown, name) in dirs {
            let fd = match &name {
                None => top
                    .try_clone()
                    .ctx(|| format!("opening {}", shown.display()))?,
                Some(n) => match sys::open_dir_at(top.as_fd(), n) {
                    Ok(fd) => fd,
                    // A file (the lock), a symlink, or gone meanwhile.
                    Err(_) => continue,
                },
            };
            let st = sys::fstat(fd.as_fd()).ctx(|| format!("reading {}", shown.display()))?;
            let mode = st.st_mode & 0o7777;
            if st.st_uid != sys::euid() || mode & 0o077 == 0 {
                continue;
            }
            sys::fchmod(fd.as_fd(), mode & !0o077)
                .ctx(|| format!("tightening {}", shown.display()))?;
            changed.push((shown, mode));
        }
        Ok(changed)
    }

    /// How many mounts of the volume are held, by every caller.
    pub fn mount_count(&self, name: &str) -> Result<u64> {
        let _lock = self.lock()?;
        self.count_locked(name)
    }

    fn count_locked(&self, name: &str) -> Result<u64> {
        let dir = self.volume_dir(name).join("mounts");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        let mut n = 0;
        for e in entries {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            n += read_count(&e.path())?;
        }
        Ok(n)
    }

    /// Removes a volume's record and directory, whatever its driver;
    /// refuses while it is mounted.
    pub fn forget(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let _lock = self.lock()?;
        if !self.volume_dir(name).exists() {
            return Err(not_found(name));
        }
        if self.count_locked(name)? > 0 {
            return Err(Error::new(
                ErrorKind::InUse,
                format!("volume {name} is mounted"),
            ));
        }
        // Never remove through a mount: that would delete what another
        // file system (a bind's source) holds.
        let data = self.data_path(name);
        if strata_sys::mount::is_mountpoint(&data)
            .ctx(|| format!("looking up {}", data.display()))?
        {
            strata_sys::mount::unmount(&data, false)
                .ctx(|| format!("unmounting volume {name} at {}", data.display()))?;
        }
        let doomed = self.dir.join(format!(".{name}.removing"));
        let _ = fs::remove_dir_all(&doomed);
        fs::rename(self.volume_dir(name), &doomed).ctx(|| format!("removing volume {name}"))?;
        fs::remove_dir_all(&doomed).ctx(|| format!("removing volume {name}"))
    }

    /// What interrupted work left in the volumes directory: the staging
    /// of creates and removes (`.<name>.creating`, `.<name>.removing`)
    /// and temp files of atomic writes (`<name>/.meta.json.tmp`,
    /// `<name>/mounts/.<caller>.tmp`), sorted. Nothing under a volume's
    /// `_data` is ever debris.
    pub fn debris(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for (name, path) in list(&self.dir)? {
            if name.starts_with('.') {
                if name.ends_with(".creating") || name.ends_with(".removing") {
                    out.push(path);
                }
                continue;
            }
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            for dir in [path.clone(), path.join("mounts")] {
                out.extend(
                    list(&dir)?
                        .into_iter()
                        .filter(|(n, _)| is_temp(n))
                        .map(|(_, p)| p),
                );
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes [`Local::debris`] under the volumes lock and returns what
    /// it removed. A staged directory whose `_data` is a mount point is
    /// left alone: removing it would delete another file system's content.
    pub fn clean_staging(&self) -> Result<Vec<PathBuf>> {
        let _lock = self.lock()?;
        let mut removed = Vec::new();
        for p in self.debris()? {
            let md = match fs::symlink_metadata(&p) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("looking up {}", p.display()), e)),
            };
            if md.is_dir() {
                let data = p.join("_data");
                if data.is_dir()
                    && strata_sys::mount::is_mountpoint(&data)
                        .ctx(|| format!("looking up {}", data.display()))?
                {
                    continue;
                }
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            }
            .ctx(|| format!("removing {}", p.display()))?;
            removed.push(p);
        }
        Ok(removed)
    }

    /// Writes a fresh `meta.json` (the local driver, no options, no
    /// labels) for a volume directory that has its `_data` but lost its
    /// record; the data stays as it is. Refuses when a record is there,
    /// readable or not, or there is no `_data`.
    pub fn recover_meta(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let _lock = self.lock()?;
        let path = self.volume_dir(name).join("meta.json");
        if fs::symlink_metadata(&path).is_ok() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("volume {name} has a meta.json"),
            ));
        }
        if !self.data_path(name).is_dir() {
            return Err(not_found(name));
        }
        let meta = Meta {
            driver: DRIVER.to_owned(),
            options: BTreeMap::new(),
            created_at: atomic::now_rfc3339(),
            labels: BTreeMap::new(),
        };
        let json = serde_json::to_vec_pretty(&meta).expect("serialising volume metadata");
        atomic::write(&path, &json).ctx(|| format!("writing {}", path.display()))
    }

    fn caller_path(&self, name: &str, id: &str) -> Result<PathBuf> {
        if check_name(id).is_err() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("volume {name}: invalid caller ID {id:?}"),
            ));
        }
        Ok(self.volume_dir(name).join("mounts").join(id))
    }
}

/// Entries of a directory, by name (none when it does not exist).
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.ctx(|| format!("listing {}", dir.display()))?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    Ok(out)
}

/// Whether a name is a temp file of [`atomic::write`] (`.<name>.tmp`).
fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn not_found(name: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no such volume: {name}"))
}

fn read_count(path: &Path) -> Result<u64> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

fn write_count(path: &Path, n: u64) -> Result<()> {
    if n == 0 {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", path.display()), e))
            }
            _ => Ok(()),
        };
    }
    let dir = path.parent().expect("count files have a parent");
    fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    atomic::write(path, format!("{n}\n").as_bytes()).ctx(|| format!("writing {}", path.display()))
}

/// Checks `--opt` keys as Docker's local driver does.
pub fn check_options(name: &str, opts: &BTreeMap<String, String>) -> Result<()> {
    for key in opts.keys() {
        let Some((_, needs)) = OPTIONS.iter().find(|(k, _)| k == key) else {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("volume {name}: invalid option {key:?} for the local driver (valid: type, device, o)"),
            ));
        };
        if let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n)) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("volume {name}: option {key:?} needs the option {missing:?}"),
            ));
        }
    }
    Ok(())
}

/// A mount(2) call made of a volume's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub fstype: String,
    pub device: String,
    pub flags: MountFlags,
    /// The `o` options that are not mount flags, for the file system.
    pub data: String,
}

/// The mount a volume's options ask for; `None` for a plain directory.
/// `o` is split as mount(8) does: flags (`ro`, `bind`, `nosuid`, ...)
/// go to mount(2)'s flags, the rest to the file system.
pub fn mount_options(opts: &BTreeMap<String, String>) -> Option<MountOptions> {
    let fstype = opts.get("type")?;
    let device = opts.get("device")?;
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for o in opts.get("o").map(String::as_str).unwrap_or("").split(',') {
        match o {
            "" | "rw" | "defaults" => {}
            "ro" => flags |= MountFlags::RDONLY,
            "bind" => flags |= MountFlags::BIND,
            "rbind" => flags |= MountFlags::BIND | MountFlags::REC,
            "nosuid" => flags |= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            "noexec" => flags |= MountFlags::NOEXEC,
            "sync" => flags |= MountFlags::SYNCHRONOUS,
            "dirsync" => flags |= MountFlags::DIRSYNC,
            "noatime" => flags |= MountFlags::NOATIME,
            "nodiratime" => flags |= MountFlags::NODIRATIME,
            "relatime" => flags |= MountFlags::RELATIME,
            "strictatime" => flags |= MountFlags::STRICTATIME,
            other => data.push(other),
        }
    }
    Some(MountOptions {
        fstype: fstype.clone(),
        device: device.clone(),
        flags,
        data: data.join(","),
    })
}

/// Mounts `m` on `target`; a read-only bind takes a second call, as
/// mount(2) ignores `MS_RDONLY` when it makes a bind.
fn mount_at(m: &MountOptions, target: &Path) -> io::Result<()> {
    use strata_sys::mount::{mount_fs, remount};
    mount_fs(&m.device, target, &m.fstype, m.flags, &m.data)?;
    if m.flags.contains(MountFlags::BIND | MountFlags::RDONLY) {
        if let Err(e) = remount(target, MountFlags::BIND | MountFlags::RDONLY, "") {
            let _ = strata_sys::mount::unmount(target, true);
            return Err(e);
        }
    }
    Ok(())
}

impl VolumeDriver for Local {
    fn name(&self) -> &str {
        DRIVER
    }

    fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<()> {
        self.create_with(name, opts, &BTreeMap::new())
    }

    fn remove(&self, name: &str) -> Result<()> {
        self.forget(name)
    }

    /// The first mount of a volume with `type`/`device` mounts them on
    /// `_data`.
    fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        let meta = self.meta(name)?;
        let caller = self.caller_path(name, id)?;
        let _lock = self.lock()?;
        let data = self.data_path(name);
        if self.count_locked(name)? == 0 {
            if let Some(m) = mount_options(&meta.options) {
                mount_at(&m, &data).ctx(|| {
                    format!(
                        "mounting {} ({}) for volume {name} at {}",
                        m.device,
                        m.fstype,
                        data.display()
                    )
                })?;
            }
        }
        write_count(&caller, read_count(&caller)? + 1)?;
        Ok(data)
    }

    /// The last unmount of a volume with `type`/`device` unmounts them.
    fn unmount(&self, name: &str, id: &str) -> Result<()> {
        let meta = self.meta(name)?;
        let caller = self.caller_path(name, id)?;
        let _lock = self.lock()?;
        let held = read_count(&caller)?;
        if held == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("volume {name} is not mounted by {id}"),
            ));
        }
        if self.count_locked(name)? == 1 && mount_options(&meta.options).is_some() {
            let data = self.data_path(name);
            strata_sys::mount::unmount(&data, true)
                .ctx(|| format!("unmounting volume {name} at {}", data.display()))?;
        }
        write_count(&caller, held - 1)
    }

    fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        self.meta(name)?;
        Ok(Some(self.data_path(name)))
    }

    fn get(&self, name: &str) -> Result<VolumeInfo> {
        let meta = self.meta(name)?;
        if meta.driver != DRIVER {
            return Err(not_found(name));
        }
        Ok(VolumeInfo {
            name: name.to_owned(),
            mountpoint: Some(self.data_path(name)),
            status: BTreeMap::new(),
        })
    }

    fn list(&self) -> Result<Vec<VolumeInfo>> {
        let mut out = Vec::new();
        for n in self.names()? {
            if let Ok(v) = self.get(&n) {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn scope(&self) -> Result<Scope> {
        Ok(Scope::Local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of Docker's data root: `_data` without `meta.json`, beside
    /// Docker's `metadata.db`, is a local volume without labels; with
    /// `opts.json` (mounted with options by Docker) it is refused.
    #[test]
    fn a_volume_docker_made_is_a_local_volume() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("volumes");
        fs::create_dir_all(dir.join("dv/_data")).unwrap();
        let local = Local::open(&dir).unwrap();
        assert!(!local.exists("dv"), "no metadata.db: not Docker's");
        fs::write(dir.join(DOCKER_METADATA), b"bolt").unwrap();
        assert!(local.exists("dv"));
        let m = local.meta("dv").unwrap();
        assert_eq!(m.driver, DRIVER);
        assert!(m.labels.is_empty() && m.options.is_empty());
        assert_eq!(local.names().unwrap(), ["dv"]);
        fs::write(dir.join("dv").join(DOCKER_OPTS), b"{}").unwrap();
        let err = local.meta("dv").unwrap_err();
        assert!(err.to_string().contains("mount options"), "{err}");
    }

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_lays_out_data_and_meta() {
        let t = tempfile::tempdir().unwrap();
        let l = Local::open(&t.path().join("volumes")).unwrap();
        l.create("v1", &BTreeMap::new()).unwrap();
        let data = l.data_path("v1");
        assert!(data.is_dir());
        assert_eq!(
            fs::metadata(&data).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        let meta = l.meta("v1").unwrap();
        assert_eq!(meta.driver, "local");
        assert!(meta.created_at.ends_with('Z'));
        assert_eq!(l.names().unwrap(), ["v1"]);
        let err = l.create("v1", &BTreeMap::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("v1"));
    }

    #[test]
    fn bad_names_create_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("volumes");
        let l = Local::open(&dir).unwrap();
        for bad in ["", "../x", "a/b", ".hidden", "a\0b"] {
            let err = l.create(bad, &BTreeMap::new()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        assert!(!t.path().join("x").exists());
    }

    #[test]
    fn volume_directories_are_private_and_tightened() {
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("volumes");
        let l = Local::open(&dir).unwrap();
        l.create("v", &BTreeMap::new()).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("v")), 0o700);
        assert_eq!(mode(&l.data_path("v")), 0o755);
        assert!(l.tighten_modes().unwrap().is_empty());
        // Docker's modes, and a symlink to a directory that is not ours
        // to change.
        let victim = t.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("link")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o701)).unwrap();
        fs::set_permissions(dir.join("v"), fs::Permissions::from_mode(0o755)).unwrap();
        let mut changed = l.tighten_modes().unwrap();
        changed.sort();
        assert_eq!(changed, [(dir.clone(), 0o701), (dir.join("v"), 0o755)]);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("v")), 0o700);
        assert_eq!(mode(&l.data_path("v")), 0o755);
        assert_eq!(mode(&victim), 0o755);
    }

    #[test]
    fn the_longest_name_is_made_and_a_longer_one_refused() {
        let t = tempfile::tempdir().unwrap();
        let l = Local::open(&t.path().join("volumes")).unwrap();
        let longest = "v".repeat(crate::NAME_MAX);
        l.create(&longest, &BTreeMap::new()).unwrap();
        assert!(l.data_path(&longest).is_dir());
        l.forget(&longest).unwrap();
        let err = l
            .create(&format!("{longest}v"), &BTreeMap::new())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("at most 245"), "{err}");
    }

    #[test]
    fn options_follow_the_local_driver() {
        assert!(check_options("v", &opts(&[("type", "tmpfs"), ("device", "tmpfs")])).is_ok());
        let table: &[(&[(&str, &str)], &str)] = &[
            (&[("size", "1")], "invalid option \"size\""),
            (&[("o", "size=1m")], "needs the option"),
            (&[("o", "x"), ("type", "tmpfs")], "\"device\""),
            (&[("type", "tmpfs")], "\"device\""),
            (&[("device", "/x")], "\"type\""),
        ];
        for (kv, want) in table {
            let e = check_options("v", &opts(kv)).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("volume v"), "{kv:?}: {e}");
        }
    }

    #[test]
    fn o_is_split_into_flags_and_data() {
        let m = mount_options(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=64m,ro,nosuid,mode=1777"),
        ]))
        .unwrap();
        assert_eq!(m.flags, MountFlags::RDONLY | MountFlags::NOSUID);
        assert_eq!(m.data, "size=64m,mode=1777");
        assert!(mount_options(&BTreeMap::new()).is_none());
    }

    #[test]
    fn mount_counts_guard_removal() {
        let t = tempfile::tempdir().unwrap();
        let l = Local::open(&t.path().join("volumes")).unwrap();
        l.create("v", &BTreeMap::new()).unwrap();
        assert_eq!(l.mount("v", "c1").unwrap(), l.data_path("v"));
        l.mount("v", "c2").unwrap();
        assert_eq!(l.mount_count("v").unwrap(), 2);
        assert_eq!(l.remove("v").unwrap_err().kind(), ErrorKind::InUse);
        l.unmount("v", "c1").unwrap();
        l.unmount("v", "c2").unwrap();
        assert!(l.unmount("v", "c2").is_err());
        l.remove("v").unwrap();
        assert!(!t.path().join("volumes/v").exists());
        assert_eq!(l.meta("v").unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn staging_debris_goes_and_volumes_stay() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("volumes");
        let l = Local::open(&dir).unwrap();
        l.create("v", &BTreeMap::new()).unwrap();
        fs::write(l.data_path("v").join(".keep.tmp"), "data").unwrap();
        fs::create_dir_all(dir.join(".w.creating/_data")).unwrap();
        fs::create_dir_all(dir.join(".x.removing")).unwrap();
        fs::write(dir.join("v/.meta.json.tmp"), "{").unwrap();
        fs::create_dir_all(dir.join("v/mounts")).unwrap();
        fs::write(dir.join("v/mounts/.c1.tmp"), "1").unwrap();
        let want = vec![
            dir.join(".w.creating"),
            dir.join(".x.removing"),
            dir.join("v/.meta.json.tmp"),
            dir.join("v/mounts/.c1.tmp"),
        ];
        assert_eq!(l.debris().unwrap(), want);
        assert_eq!(l.clean_staging().unwrap(), want);
        assert!(l.debris().unwrap().is_empty());
        assert!(dir.join(".lock").exists());
        assert_eq!(l.names().unwrap(), ["v"]);
        assert!(l.data_path("v").join(".keep.tmp").exists());
    }

    #[test]
    fn a_lost_record_is_recovered_with_its_data() {
        let t = tempfile::tempdir().unwrap();
        let l = Local::open(&t.path().join("volumes")).unwrap();
        l.create("v", &BTreeMap::new()).unwrap();
        fs::write(l.data_path("v").join("f"), "x").unwrap();
        assert_eq!(
            l.recover_meta("v").unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        fs::remove_file(t.path().join("volumes/v/meta.json")).unwrap();
        assert!(l.names().unwrap().is_empty());
        l.recover_meta("v").unwrap();
        assert_eq!(l.meta("v").unwrap().driver, DRIVER);
        assert_eq!(fs::read(l.data_path("v").join("f")).unwrap(), b"x");
        assert_eq!(
            l.recover_meta("nothing").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn tmpfs_is_mounted_while_in_use() {
        if !strata_test_support::require_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let l = Local::open(&t.path().join("volumes")).unwrap();
        let o = opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]);
        l.create("t", &o).unwrap();
        let data = l.mount("t", "c1").unwrap();
        assert!(strata_sys::mount::is_mountpoint(&data).unwrap());
        fs::write(data.join("f"), "x").unwrap();
        l.unmount("t", "c1").unwrap();
        assert!(!strata_sys::mount::is_mountpoint(&data).unwrap());
        assert!(!data.join("f").exists(), "tmpfs content outlived the mount");
        l.remove("t").unwrap();
    }
}
