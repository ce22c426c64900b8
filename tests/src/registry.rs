//! A real OCI registry on 127.0.0.1: Debian's `docker-registry` (the reference distribution
//! registry) with filesystem storage in the caller's directory, images pushed into it with
//! skopeo, and ways to make it misbehave (corrupt blobs, outages) and to count what it served.

mod access_log;
mod config;
mod skopeo;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::{PortError, try_free_port};
use crate::process::{ChildGuard, ProcessError};
use crate::wait;

use config::Layout;

/// The registry program (Debian package `docker-registry`).
const PROGRAM: &str = "docker-registry";
/// How long the registry gets to answer `GET /v2/` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Log lines quoted in errors.
const LOG_TAIL: usize = 30;

/// Why the registry could not be started, filled or inspected.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No port could be found for it.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Starting or stopping the registry process failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A path the config names is not UTF-8.
    #[error("path {0} is not UTF-8")]
    NotUtf8(PathBuf),
    /// The config could not be serialised.
    #[error("cannot write the registry config: {0}")]
    Config(serde_yaml::Error),
    /// The htpasswd hash could not be computed.
    #[error("cannot hash the registry password: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    /// A file of the registry could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The registry exited before it answered.
    #[error("{PROGRAM} exited while starting ({status}); its log ends:\n{log}")]
    Exited {
        /// How it exited.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// The registry did not answer `GET /v2/` as expected in time.
    #[error(
        "{PROGRAM} on {addr} did not answer GET /v2/ with {expected} within {timeout:?}; its log ends:\n{log}"
    )]
    NotReady {
        /// Where it should listen.
        addr: SocketAddr,
        /// The status it should answer with.
        expected: u16,
        /// How long it was given.
        timeout: Duration,
        /// The end of its log.
        log: String,
    },
    /// A helper program could not be started.
    #[error("cannot run {what}: {source}")]
    Spawn {
        /// The command.
        what: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A helper program failed.
    #[error("{what} failed ({status}): {stderr}")]
    Tool {
        /// The command.
        what: String,
        /// How it exited.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Something that should be a `sha256:<hex>` digest is not.
    #[error("not a sha256 digest: {0:?}")]
    BadDigest(String),
}

/// Debian's docker-registry (the reference distribution registry) on 127.0.0.1, so image pulls
/// in tests go through a real registry; the process is killed when this drops.
#[derive(Debug)]
pub struct LocalRegistry {
    dir: PathBuf,
    layout: Layout,
    addr: SocketAddr,
    credentials: Option<(String, String)>,
    child: Option<ChildGuard>,
}

impl LocalRegistry {
    /// Anonymous pulls and pushes.
    pub fn start(dir: &Path) -> Result<Self, RegistryError> {
        Self::start_in(dir, try_free_port()?, None)
    }

    /// Anonymous, on a chosen `port` (the devnet's examples name `localhost:5000`).
    pub fn start_on(dir: &Path, port: u16) -> Result<Self, RegistryError> {
        Self::start_in(dir, port, None)
    }

    /// Every request needs HTTP basic credentials (htpasswd auth, bcrypt hashes).
    pub fn start_with_auth(dir: &Path, user: &str, password: &str) -> Result<Self, RegistryError> {
        let credentials = Some((user.to_owned(), password.to_owned()));
        Self::start_in(dir, try_free_port()?, credentials)
    }

    /// Writes the config into `dir` and starts the registry on 127.0.0.1:`port`.
    fn start_in(
        dir: &Path,
        port: u16,
        credentials: Option<(String, String)>,
    ) -> Result<Self, RegistryError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let layout = Layout::new(dir);
        let login = credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()));
        layout.write(addr, login)?;
        let mut registry = Self {
            dir: dir.to_owned(),
            layout,
            addr,
            credentials,
            child: None,
        };
        registry.restart()?;
        Ok(registry)
    }

    /// `127.0.0.1:PORT`, the registry part of image references pushed to it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Where the registry listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Pushes the image named `name` inside the OCI archive at `archive` (as built by
    /// [`crate::images::OciImageBuilder::write_archive`]; its name is the builder's reference)
    /// to `repository:tag` with skopeo; returns the manifest digest (`sha256:…`) the registry
    /// holds. Digests are preserved, so it equals the archive's `ImageInfo::manifest_digest`.
    pub fn push_archive(
        &self,
        archive: &Path,
        name: &str,
        repository_tag: &str,
    ) -> Result<String, RegistryError> {
        let digest_file =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(|source| RegistryError::Io {
                path: self.dir.clone(),
                source,
            })?;
        skopeo::Push {
            archive,
            name,
            destination: format!("{}/{repository_tag}", self.host()),
            credentials: self
                .credentials
                .as_ref()
                .map(|(user, password)| format!("{user}:{password}")),
            digest_file: digest_file.path(),
        }
        .run()
    }

    /// Overwrites the stored bytes of blob `digest` (keeping its size) so the registry serves
    /// content that does not match its digest.
    pub fn corrupt_blob(&self, digest: &str) -> Result<(), RegistryError> {
        let path = self.layout.blob_data(digest)?;
        let io = |source| RegistryError::Io {
            path: path.clone(),
            source,
        };
        let mut bytes = std::fs::read(&path).map_err(io)?;
        for byte in &mut bytes {
            *byte = !*byte;
        }
        std::fs::write(&path, bytes).map_err(io)
    }

    /// Stops the registry (a "registry down" outage); [`LocalRegistry::restart`] brings it back
    /// on the same port with the same storage.
    pub fn stop(&mut self) {
        // Dropping the guard stops the process and reports any failure on stderr.
        self.child = None;
    }

    /// (Re)starts the registry on its port and storage and waits until it answers; a running
    /// one is stopped first.
    pub fn restart(&mut self) -> Result<(), RegistryError> {
        self.stop();
        let mut command = Command::new(PROGRAM);
        command.arg("serve").arg(&self.layout.config);
        let mut child = ChildGuard::spawn_logged(&mut command, "registry", &self.dir)?;
        let expected = if self.credentials.is_some() { 401 } else { 200 };
        let mut exited = None;
        let ready = wait::until(START_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            status_of(self.addr, "/v2/") == Some(expected)
        });
        if let Some(status) = exited {
            return Err(RegistryError::Exited {
                status: status.to_string(),
                log: child.log_tail(LOG_TAIL),
            });
        }
        if !ready {
            return Err(RegistryError::NotReady {
                addr: self.addr,
                expected,
                timeout: START_TIMEOUT,
                log: child.log_tail(LOG_TAIL),
            });
        }
        self.child = Some(child);
        Ok(())
    }

    /// Blob GET requests answered (2xx) so far, over every start, counted from the registry's
    /// access log: shows whether peers, not the registry, served an image.
    pub fn blob_downloads(&self) -> Result<u64, RegistryError> {
        let path = self.log_path();
        let log = std::fs::read(&path).map_err(|source| RegistryError::Io { path, source })?;
        Ok(access_log::blob_downloads(&String::from_utf8_lossy(&log)))
    }

    /// The registry's log (access log and its own messages), appended to by every start.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("registry.log")
    }
}

/// The HTTP status of a plain `GET path` on `addr`, or `None` when nothing answers.
fn status_of(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0_u8; 64];
    let read = stream.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..read]);
    line.split(' ').nth(1)?.parse().ok()
}
