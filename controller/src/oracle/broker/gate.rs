//! The broker gate's settings, shared by every session: the rumqttd behind it, the topic root,
//! which keys are oracles, TLS, the CONNECT deadline and the connection cap. The
//! [`listener`](super::listener) accepts clients and runs a [`session`](super::session) each.

use std::path::PathBuf;
use std::time::Duration;

use r1_protocol::Address;
use r1_protocol::broker_acl::Role;
use r1_protocol::mqtt::MAX_CONNECTIONS;
use r1_protocol::topics::Topics;
use tokio_rustls::TlsAcceptor;

use super::oracles::GateOracles;
use super::upstream::Upstream;

/// How long a client has to send its CONNECT (TLS handshake included) after the TCP accept.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// Everything a gate needs; shared by its sessions.
pub struct Gate {
    /// The rumqttd behind the gate.
    pub upstream: Upstream,
    /// The topic root the ACL applies to.
    pub topics: Topics,
    /// Which keys are oracles.
    pub oracles: GateOracles,
    /// A file of oracle addresses, one a line, read again at every CONNECT (for a test broker
    /// whose oracles are added while it runs); `None` in an oracle.
    pub oracles_file: Option<PathBuf>,
    /// TLS, when the gate serves `mqtts`.
    pub tls: Option<TlsAcceptor>,
    /// See [`CONNECT_DEADLINE`].
    pub connect_deadline: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Gate {
    /// A gate in front of `upstream` for the topics under `topics`, with the default deadline
    /// and connection cap.
    pub fn new(
        upstream: Upstream,
        topics: Topics,
        oracles: GateOracles,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        Self {
            upstream,
            topics,
            oracles,
            oracles_file: None,
            tls,
            connect_deadline: CONNECT_DEADLINE,
            max_connections: MAX_CONNECTIONS,
        }
    }

    /// The role of `client` now. With an oracles file, from the file as read for this client:
    /// the shared set it also refreshes may be replaced meanwhile by another CONNECT's reading.
    pub fn role(&self, client: &Address) -> Role {
        if let Some(path) = &self.oracles_file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let listed: Vec<Address> = text
                        .lines()
                        .filter_map(|line| line.trim().parse::<Address>().ok())
                        .collect();
                    let listed_here = listed.contains(client);
                    self.oracles.set(listed);
                    if listed_here {
                        return Role::Oracle;
                    }
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read the oracles file")
                }
            }
        }
        self.oracles.role(client)
    }
}
