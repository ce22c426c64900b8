//! The embedded broker (rumqttd behind the authenticating gate), run as the `r1-test-broker`
//! binary of this crate. Clients sign their own login, so admitting one only matters for
//! oracles: their addresses go into the oracles file the gate reads at every CONNECT.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use r1_protocol::Address;

use super::served::Served;
use super::{Broker, BrokerError, Role};
use crate::node::TOPIC_ROOT;
use crate::tls::TestCerts;

/// The name of the binary wrapping rumqttd.
pub const BINARY: &str = "r1-test-broker";

/// The oracles file, in the broker's dir.
const ORACLES_FILE: &str = "oracles";

/// rumqttd behind its gate on a free 127.0.0.1 port; stopped on drop.
#[derive(Debug)]
pub struct Rumqttd {
    served: Served,
}

impl Rumqttd {
    /// Starts the broker on a free port and waits until it accepts connections.
    pub fn start() -> Result<Self, BrokerError> {
        Ok(Self {
            served: Served::start("rumqttd", command, prepare, false)?,
        })
    }

    /// The same, serving TLS only (`mqtts`) with a certificate from a fresh test CA.
    pub fn start_tls() -> Result<Self, BrokerError> {
        Ok(Self {
            served: Served::start("rumqttd", command, prepare, true)?,
        })
    }

    /// The dir holding its log.
    pub fn dir(&self) -> &Path {
        self.served.dir()
    }
}

/// An empty oracles file.
fn prepare(dir: &Path) -> Result<(), BrokerError> {
    let path = dir.join(ORACLES_FILE);
    std::fs::write(&path, "").map_err(|source| BrokerError::Setup { path, source })
}

/// `r1-test-broker --port <port> --topic-root <root> --oracles-file <file> [--cert … --key …]`.
fn command(port: u16, dir: &Path, tls: Option<&TestCerts>) -> Result<Command, BrokerError> {
    let mut command = Command::new(crate::process::bin_path(BINARY)?);
    command
        .args(["--port", &port.to_string(), "--topic-root", TOPIC_ROOT])
        .arg("--oracles-file")
        .arg(dir.join(ORACLES_FILE));
    if let Some(tls) = tls {
        command
            .arg("--cert")
            .arg(&tls.cert_file)
            .arg("--key")
            .arg(&tls.key_file);
    }
    Ok(command)
}

impl Broker for Rumqttd {
    fn url(&self) -> String {
        self.served.url()
    }

    fn admit(&self, client: Address, role: Role) -> Result<String, BrokerError> {
        if role == Role::Oracle {
            let path = self.dir().join(ORACLES_FILE);
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                // One write of the whole line: the broker reads the file at every CONNECT, and a
                // line written in pieces could be read half-written.
                .and_then(|mut file| file.write_all(format!("{client:#x}\n").as_bytes()))
                .map_err(|source| BrokerError::Setup { path, source })?;
        }
        Ok(self.url())
    }

    fn ca_file(&self) -> Option<PathBuf> {
        self.served.ca_file()
    }

    fn port(&self) -> u16 {
        self.served.port()
    }

    fn stop(&mut self) {
        self.served.stop();
    }

    fn start_again(&mut self) -> Result<(), BrokerError> {
        self.served.start_again()
    }
}
