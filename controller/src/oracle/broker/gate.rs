//! The broker gate: the only door to the embedded rumqttd. It accepts TCP (TLS when
//! configured), caps the number of connections, and runs a [`session`](super::session) per
//! client; every refusal is logged with the client's identity (when known) and reason.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use r1_protocol::Address;
use r1_protocol::topics::Topics;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::acl::Role;
use super::oracles::GateOracles;
use super::session::{self, Ended};
use super::upstream::Upstream;

/// How long a client has to send its CONNECT (TLS handshake included) after the TCP accept.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// Connections the gate serves at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 10_000;

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

    /// The role of `client` now.
    pub fn role(&self, client: &Address) -> Role {
        if let Some(path) = &self.oracles_file {
            match std::fs::read_to_string(path) {
                Ok(text) => self.oracles.set(
                    text.lines()
                        .filter_map(|line| line.trim().parse::<Address>().ok()),
                ),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read the oracles file")
                }
            }
        }
        self.oracles.role(client)
    }

    fn record(&self, peer: std::net::SocketAddr, ended: &Ended) {
        let Some(refusal) = &ended.refusal else {
            return;
        };
        match &ended.client {
            Some(client) => tracing::warn!(
                %peer, client = %client.address, role = %client.role, reason = refusal.reason(),
                "broker gate disconnected a client: {refusal}"
            ),
            None => tracing::warn!(
                %peer, reason = refusal.reason(),
                "broker gate refused a connection: {refusal}"
            ),
        }
    }
}

/// Accepts clients on `listener` for ever, each in a task of its own.
pub async fn serve(listener: TcpListener, gate: Arc<Gate>) {
    let slots = Arc::new(Semaphore::new(gate.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "broker gate cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, cap = gate.max_connections, "broker gate refused a connection: too many connections");
            continue;
        };
        let gate = gate.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let ended = match &gate.tls {
                None => session::run(stream, &gate).await,
                Some(acceptor) => {
                    match tokio::time::timeout(gate.connect_deadline, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => session::run(tls, &gate).await,
                        Ok(Err(error)) => Ended {
                            client: None,
                            refusal: Some(session::Refusal::Tls(error)),
                        },
                        Err(_) => Ended {
                            client: None,
                            refusal: Some(session::Refusal::ConnectTimeout(gate.connect_deadline)),
                        },
                    }
                }
            };
            gate.record(peer, &ended);
        });
    }
}
