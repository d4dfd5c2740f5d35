//! Docker's `config.json` and Podman's `auth.json`: registry credentials
//! as `{"auths": {"<registry>": {"auth": "<base64 of user:password>"}}}`.
//! Other keys of the file (Docker's `credsStore`, `HttpHeaders`, ...) are
//! kept as they are when it is written back. The file is written
//! atomically and mode 0600; credentials are never printed: their `Debug`
//! hides the password, and no error message carries one.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};

/// Docker Hub's key in the file, for `docker.io`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub(crate) fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// A credential file, read whole and written back whole.
pub struct AuthFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl AuthFile {
    /// Where credentials are read from and written to by default, as
    /// Podman looks: `$REGISTRY_AUTH_FILE`, then
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, then Docker's
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(p) = env("REGISTRY_AUTH_FILE") {
            return Some(PathBuf::from(p));
        }
        if let Some(dir) = env("XDG_RUNTIME_DIR") {
            let p = Path::new(&dir).join("containers/auth.json");
            if p.exists() {
                return Some(p);
            }
        }
        if let Some(dir) = env("DOCKER_CONFIG") {
            return Some(Path::new(&dir).join("config.json"));
        }
        env("HOME").map(|h| Path::new(&h).join(".docker/config.json"))
    }

    /// Reads `path`; a file that does not exist is an empty one.
    pub fn open(path: &Path) -> Result<AuthFile> {
        let doc = match fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(refused(path, "is not a JSON object")),
                // serde's message may quote the content: leave it out.
                Err(_) => return Err(refused(path, "is not valid JSON")),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Map::new(),
            Err(e) => {
                return Err(Error::with(
                    ErrorKind::Refused,
                    format!("reading {}", path.display()),
                    e,
                ))
            }
        };
        Ok(AuthFile {
            path: path.to_owned(),
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credentials stored for `registry` (`host[:port]`), if any.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        let Some(entry) = key_candidates(registry)
            .iter()
            .find_map(|k| self.auths().and_then(|a| a.get(k)))
        else {
            return Ok(None);
        };
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            return Ok(Some(Credentials {
                username: u.to_owned(),
                password: p.to_owned(),
            }));
        }
        let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
            return Ok(None);
        };
        let bad = || refused(&self.path, &format!("has a malformed entry for {registry}"));
        let decoded = STANDARD.decode(auth.trim()).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (u, p) = decoded.split_once(':').ok_or_else(bad)?;
        Ok(Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        }))
    }

    /// Stores `creds` for `registry`; [`AuthFile::save`] writes it.
    pub fn set(&mut self, registry: &str, creds: &Credentials) {
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let auth = STANDARD.encode(format!("{}:{}", creds.username, creds.password));
        let map = auths.as_object_mut().expect("made an object above");
        for k in key_candidates(registry) {
            map.remove(&k);
        }
        map.insert(
            key_candidates(registry).remove(0),
            serde_json::json!({ "auth": auth }),
        );
    }

    /// Forgets `registry`'s credentials; whether there were any.
    pub fn remove(&mut self, registry: &str) -> bool {
        let Some(map) = self.doc.get_mut("auths").and_then(Value::as_object_mut) else {
            return false;
        };
        let mut removed = false;
        for k in key_candidates(registry) {
            removed |= map.remove(&k).is_some();
        }
        removed
    }

    /// Writes the file: a temp file in the same directory, mode 0600,
    /// synced and renamed over it.
    pub fn save(&self) -> Result<()> {
        let fail = |e: io::Error| {
            Error::with(
                ErrorKind::Refused,
                format!("writing {}", self.path.display()),
                e,
            )
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).map_err(fail)?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "auth.json".into());
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&self.doc).expect("a JSON map serializes");
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(&bytes)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            fs::File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(fail)
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.doc.get("auths").and_then(Value::as_object)
    }
}

/// The keys a registry may be stored under, the one to write first:
/// Docker Hub under its legacy URL; others by `host[:port]`, also read
/// when written as a URL.
fn key_candidates(registry: &str) -> Vec<String> {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        return vec![
            DOCKER_HUB_KEY.to_owned(),
            "docker.io".to_owned(),
            "index.docker.io".to_owned(),
        ];
    }
    vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ]
}

fn refused(path: &Path, what: &str) -> Error {
    Error::new(ErrorKind::Refused, format!("{} {what}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn set_save_and_read_back_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containers/auth.json");
        let mut f = AuthFile::open(&path).unwrap();
        assert_eq!(f.get("localhost:5000").unwrap(), None);
        f.set("localhost:5000", &creds("alice", "s3cret:with:colons"));
        f.set("docker.io", &creds("bob", "pw"));
        f.save().unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v["auths"]["localhost:5000"]["auth"],
            STANDARD.encode("alice:s3cret:with:colons")
        );
        assert!(v["auths"][DOCKER_HUB_KEY]["auth"].is_string());
        let f = AuthFile::open(&path).unwrap();
        assert_eq!(
            f.get("localhost:5000").unwrap(),
            Some(creds("alice", "s3cret:with:colons"))
        );
        assert_eq!(f.get("index.docker.io").unwrap(), Some(creds("bob", "pw")));
    }

    #[test]
    fn other_keys_survive_and_remove_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths":{"https://reg.example:5000":{"auth":"dTpwdw=="}},"credsStore":"desktop"}"#,
        )
        .unwrap();
        let mut f = AuthFile::open(&path).unwrap();
        assert_eq!(f.get("reg.example:5000").unwrap(), Some(creds("u", "pw")));
        assert!(f.remove("reg.example:5000"));
        assert!(!f.remove("reg.example:5000"));
        f.save().unwrap();
        let v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["credsStore"], "desktop");
        assert_eq!(v["auths"], serde_json::json!({}));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        assert!(!format!("{:?}", creds("alice", "hunter2")).contains("hunter2"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        fs::write(&path, r#"{"auths":{"r":{"auth":"hunter2-not-base64!"}}}"#).unwrap();
        let e = AuthFile::open(&path).unwrap().get("r").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
        fs::write(&path, r#"{"auths":{"r":{"auth":"hunter2"#).unwrap();
        let e = AuthFile::open(&path).err().unwrap();
        assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
    }
}
