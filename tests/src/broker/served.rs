//! The part both brokers share: a guarded process on a fixed port, restartable, with readiness
//! checked by connecting over TCP.

use std::path::Path;
use std::process::Command;

use super::{BrokerError, READY_TIMEOUT};
use crate::process::ChildGuard;
use crate::wait;

/// A broker process listening on `port`, started by `command` each time.
#[derive(Debug)]
pub struct Served {
    name: &'static str,
    port: u16,
    dir: tempfile::TempDir,
    command: fn(port: u16, dir: &Path) -> Result<Command, BrokerError>,
    child: Option<ChildGuard>,
}

impl Served {
    /// Starts the broker made by `command` on a free port, logging into a fresh temp dir.
    pub fn start(
        name: &'static str,
        command: fn(port: u16, dir: &Path) -> Result<Command, BrokerError>,
    ) -> Result<Self, BrokerError> {
        let dir = tempfile::Builder::new()
            .prefix("r1b")
            .tempdir()
            .map_err(|source| BrokerError::Setup {
                path: std::env::temp_dir(),
                source,
            })?;
        let port = crate::ports::try_free_port()?;
        let mut served = Self {
            name,
            port,
            dir,
            command,
            child: None,
        };
        served.start_again()?;
        Ok(served)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The dir holding the log (and config, if any).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
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
        let mut command = (self.command)(self.port, self.dir.path())?;
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
