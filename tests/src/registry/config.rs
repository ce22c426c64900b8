//! The files a [`super::LocalRegistry`] runs from: its `config.yml` and, with authentication,
//! its htpasswd file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::RegistryError;

/// bcrypt cost of the htpasswd hash: the lowest bcrypt allows, since the registry checks it on
/// every request and this is a throwaway test password.
const BCRYPT_COST: u32 = 4;

/// Where the registry of one storage directory keeps its files.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// The registry's `config.yml`.
    pub config: PathBuf,
    /// The filesystem storage driver's root directory.
    pub storage: PathBuf,
    /// The htpasswd file, used only with authentication.
    pub htpasswd: PathBuf,
}

impl Layout {
    /// The layout inside `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            config: dir.join("config.yml"),
            storage: dir.join("storage"),
            htpasswd: dir.join("htpasswd"),
        }
    }

    /// Writes `config.yml` (and the htpasswd file when `credentials` are given) for a registry
    /// listening on `addr` without TLS.
    pub fn write(
        &self,
        addr: SocketAddr,
        credentials: Option<(&str, &str)>,
    ) -> Result<(), RegistryError> {
        let storage = utf8(&self.storage)?;
        let mut config = json!({
            "version": "0.1",
            "log": { "level": "info", "accesslog": { "disabled": false } },
            "storage": {
                "filesystem": { "rootdirectory": storage },
                "delete": { "enabled": true },
            },
            "http": {
                "addr": addr.to_string(),
                // A fixed secret keeps upload state valid across a restart.
                "secret": "r1-e2e-local-registry",
            },
        });
        if let Some((user, password)) = credentials {
            let hash = bcrypt::hash(password, BCRYPT_COST)?;
            write(&self.htpasswd, format!("{user}:{hash}\n"))?;
            let htpasswd = utf8(&self.htpasswd)?;
            config["auth"] = json!({
                "htpasswd": { "realm": "r1-e2e", "path": htpasswd },
            });
        }
        let yaml = serde_yaml::to_string(&config).map_err(RegistryError::Config)?;
        write(&self.config, yaml)
    }

    /// Where the registry stores the bytes of blob `digest` (`sha256:<hex>`).
    pub fn blob_data(&self, digest: &str) -> Result<PathBuf, RegistryError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
            .ok_or_else(|| RegistryError::BadDigest(digest.to_owned()))?;
        Ok(self
            .storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"))
    }
}

/// Writes `text` to `path`.
fn write(path: &Path, text: String) -> Result<(), RegistryError> {
    std::fs::write(path, text).map_err(|source| RegistryError::Io {
        path: path.to_owned(),
        source,
    })
}

/// `path` as text, which the YAML config needs.
fn utf8(path: &Path) -> Result<&str, RegistryError> {
    path.to_str()
        .ok_or_else(|| RegistryError::NotUtf8(path.to_owned()))
}
