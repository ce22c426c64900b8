//! The part both brokers share: a guarded process on a fixed port, restartable, with readiness
//! checked by connecting over TCP, and optionally a test CA and server certificate for TLS.

use std::path::Path;
use std::process::Command;

use super::{BrokerError, READY_TIMEOUT};
use crate::process::ChildGuard;
use crate::tls::TestCerts;
use crate::wait;

/// A broker process listening on `port`, started by `command` each time.
#[derive(Debug)]
pub struct Served {
    name: &'static str,
    port: u16,
    dir: tempfile::TempDir,
    command: fn(port: u16, dir: &Path, tls: Option<&TestCerts>) -> Result<Command, BrokerError>,
    tls: Option<TestCerts>,
    child: Option<ChildGuard>,
}

impl Served {
    /// Starts the broker made by `command` on a free port, logging into a fresh temp dir,
    /// after `prepare` wrote what it needs there; with `tls`, a test CA and server certificate
    /// are made first and handed to `command`.
    pub fn start(
        name: &'static str,
        command: fn(port: u16, dir: &Path, tls: Option<&TestCerts>) -> Result<Command, BrokerError>,
        prepare: fn(dir: &Path) -> Result<(), BrokerError>,
        tls: bool,
    ) -> Result<Self, BrokerError> {
        let dir = tempfile::Builder::new()
            .prefix("r1b")
            .tempdir()
            .map_err(|source| BrokerError::Setup {
                path: std::env::temp_dir(),
                source,
            })?;
        prepare(dir.path())?;
        let tls = tls
            .then(|| TestCerts::generate(dir.path()))
            .transpose()
            .map_err(BrokerError::Command)?;
        let port = crate::ports::try_free_port()?;
        let mut served = Self {
            name,
            port,
            dir,
            command,
            tls,
            child: None,
        };
        served.start_again()?;
        Ok(served)
    }

    /// The CA certificate clients trust, when serving TLS.
    pub fn ca_file(&self) -> Option<std::path::PathBuf> {
        self.tls.as_ref().map(|t| t.ca_file.clone())
    }

    /// The process id of the running broker.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::id)
    }

    /// The last `lines` of the broker's log, for an error that needs them.
    pub fn log_tail(&self, lines: usize) -> String {
        self.child
            .as_ref()
            .map(|child| child.log_tail(lines))
            .unwrap_or_default()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The dir holding the log (and config, if any).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `mqtt://127.0.0.1:<port>`, or `mqtts://` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stops the process if it runs.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take()
            && let Err(error) = child.stop()
        {
            eprintln!("r1-e2e: stopping {}: {error}", self.name);
        }
    }

    /// (Re)starts the process and waits until the port accepts connections.
    pub fn start_again(&mut self) -> Result<(), BrokerError> {
        self.stop();
        let mut command = (self.command)(self.port, self.dir.path(), self.tls.as_ref())?;
        let mut child = ChildGuard::spawn_logged(&mut command, self.name, self.dir.path())?;
        let port = self.port;
        let up = wait::until(READY_TIMEOUT, || {
            !child.is_running() || wait::tcp_accepts(port)
        });
        if up && child.is_running() {
            self.child = Some(child);
            return Ok(());
        }
        let log = child.log_tail(20);
        Err(BrokerError::NotReady {
            name: self.name.to_owned(),
            port,
            timeout: READY_TIMEOUT,
            log,
        })
    }
}
