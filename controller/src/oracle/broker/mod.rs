//! The embedded MQTT broker an oracle runs when no external broker is configured, so a single
//! oracle plus its nodes form a network without any other process: rumqttd on a private
//! loopback port ([`upstream`]) behind a gate: a [`listener`] that runs one [`session`] per
//! client, authenticating it by its key and enforcing the topic ACL
//! ([`r1_protocol::broker_acl`]) under the [`gate`]'s settings. [`r1_protocol::mosquitto`]
//! gives Debian's mosquitto the same rules.

pub mod gate;
pub mod listener;
pub mod oracles;
pub mod session;
pub mod tls;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use r1_protocol::broker_tls::TlsFiles;
use r1_protocol::topics::Topics;
use url::Url;

pub use gate::Gate;
pub use oracles::GateOracles;

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No loopback port could be found for rumqttd.
    #[error("cannot find a loopback port for the embedded broker: {0}")]
    Port(std::io::Error),
    /// The broker thread could not be spawned.
    #[error("cannot start the embedded broker thread: {0}")]
    Thread(std::io::Error),
    /// Nothing accepted connections on the listen address in time (port taken?).
    #[error("the embedded broker does not accept connections on {0}; is the port taken?")]
    NotListening(SocketAddr),
    /// The gate cannot listen where it should.
    #[error("the broker gate cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// The TLS certificate or key is unusable.
    #[error("broker TLS: {0}")]
    Tls(String),
    /// The oracle's own URL for rumqttd does not parse.
    #[error("the embedded broker's own URL: {0}")]
    Url(url::ParseError),
}

/// Starts rumqttd on a private loopback port and the gate on `listen` (TLS with `tls`), for
/// the topics under `topics` with `oracles` as the oracle set. Returns the URL the embedding
/// oracle's own client uses: rumqttd directly, with the gate's login. Needs a tokio runtime.
pub async fn start_embedded(
    listen: SocketAddr,
    topics: Topics,
    oracles: GateOracles,
    tls: Option<&TlsFiles>,
) -> Result<Url, BrokerError> {
    let acceptor = tls
        .map(|files| tls::server_config(&files.cert_file, &files.key_file))
        .transpose()
        .map_err(BrokerError::Tls)?
        .map(tokio_rustls::TlsAcceptor::from);
    let upstream = tokio::task::spawn_blocking(upstream::start)
        .await
        .map_err(|e| BrokerError::Thread(std::io::Error::other(e)))??;
    let own = Url::parse(&format!(
        "mqtt://{}:{}@{}",
        upstream.username, upstream.password, upstream.addr
    ))
    .map_err(BrokerError::Url)?;
    let socket = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| BrokerError::Listen(listen, e))?;
    let gate = Arc::new(Gate::new(upstream, topics, oracles, acceptor));
    tracing::info!(%listen, tls = gate.tls.is_some(), "embedded broker listening behind its gate");
    tokio::spawn(listener::serve(socket, gate));
    Ok(own)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use r1_protocol::Identity;
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

    use super::*;

    /// Whether a client with `options` gets a CONNACK accepting it.
    async fn accepted(options: MqttOptions) -> bool {
        let (_client, mut events) = AsyncClient::new(options, 4);
        let first = tokio::time::timeout(Duration::from_secs(5), events.poll()).await;
        matches!(first, Ok(Ok(Event::Incoming(Packet::ConnAck(_)))))
    }

    #[tokio::test]
    async fn the_embedded_broker_lets_in_signed_clients_and_its_oracle_only() {
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let own = start_embedded(listen, Topics::new("r1/unit"), GateOracles::default(), None)
            .await
            .unwrap();
        assert_ne!(
            own.port(),
            Some(listen.port()),
            "the oracle goes to rumqttd directly"
        );
        let me = Identity::generate();
        let (options, _) = r1_protocol::mqtt::client_options(&own, None, "oracle", &me).unwrap();
        assert!(accepted(options).await, "the oracle's own client");
        let gate: Url = format!("mqtt://{listen}").parse().unwrap();
        let (options, _) =
            r1_protocol::mqtt::client_options(&gate, None, "node", &Identity::generate()).unwrap();
        assert!(accepted(options).await, "a node signing its login");
        let anonymous = MqttOptions::new("anon", "127.0.0.1", listen.port());
        assert!(!accepted(anonymous).await, "an anonymous client");
        let mut rumqttd_anonymous = MqttOptions::new("anon", "127.0.0.1", own.port().unwrap());
        rumqttd_anonymous.set_credentials("anon", "guess");
        assert!(
            !accepted(rumqttd_anonymous).await,
            "rumqttd without the gate's login"
        );
    }
}
