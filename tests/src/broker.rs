//! MQTT brokers on 127.0.0.1 for tests: the embedded rumqttd behind its authenticating gate
//! (run as the `r1-test-broker` binary) and Debian's mosquitto with r1's generated password and
//! ACL files. Neither lets an anonymous client in: a test admits each identity with its role and
//! connects with the URL it gets back. Both can be stopped and started again on the same port,
//! to test clients that must survive a broker going away, and both can serve TLS.

mod mosquitto;
mod rumqttd;
mod served;

pub use mosquitto::Mosquitto;
pub use r1_protocol::broker_acl::Role;
pub use rumqttd::Rumqttd;

use std::path::PathBuf;
use std::time::Duration;

use r1_protocol::Address;

use crate::process::ProcessError;

/// How long a broker gets to accept connections after being started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Its temp dir or config file could not be written.
    #[error("cannot prepare {path}: {source}")]
    Setup {
        /// The file or dir.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No free port was found.
    #[error(transparent)]
    Port(#[from] crate::ports::PortError),
    /// The broker process could not be started or found.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A command preparing the broker failed.
    #[error("{0}")]
    Command(String),
    /// The broker did not accept connections in time.
    #[error(
        "{name} did not accept connections on port {port} within {timeout:?}; log tail:\n{log}"
    )]
    NotReady {
        /// Which broker.
        name: String,
        /// Its port.
        port: u16,
        /// How long was waited.
        timeout: Duration,
        /// The end of its log.
        log: String,
    },
}

/// An MQTT broker a test controls.
pub trait Broker {
    /// Where clients connect, without credentials: `mqtt://127.0.0.1:<port>` (or `mqtts://`).
    fn url(&self) -> String;
    /// Lets `client` in as `role` and returns the URL it connects with (the plain URL when it
    /// signs its own login, or one with its user and password); returns once that works.
    fn admit(&self, client: Address, role: Role) -> Result<String, BrokerError>;
    /// Lets many nodes in at once (a simulated fleet of thousands) and returns their URLs in
    /// order; a broker with per-client credentials writes them in one batch and reloads once.
    fn admit_nodes(&self, nodes: &[Address]) -> Result<Vec<String>, BrokerError> {
        nodes
            .iter()
            .map(|node| self.admit(*node, Role::Node))
            .collect()
    }
    /// The CA certificate clients trust for `mqtts`, when the broker serves TLS.
    fn ca_file(&self) -> Option<PathBuf>;
    /// The TCP port, which stays the same across [`Broker::stop`] and [`Broker::start_again`].
    fn port(&self) -> u16;
    /// Stops the broker (connected clients lose their connections); idempotent.
    fn stop(&mut self);
    /// Starts the broker again on the same port and waits until it accepts connections.
    fn start_again(&mut self) -> Result<(), BrokerError>;
}
