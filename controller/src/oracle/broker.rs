//! The embedded MQTT broker (rumqttd) an oracle runs when no external broker is configured, so
//! a single oracle plus its nodes form a network without any other process.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker thread could not be spawned.
    #[error("cannot start the embedded broker thread: {0}")]
    Thread(std::io::Error),
    /// Nothing accepted connections on the listen address in time (port taken?).
    #[error("the embedded broker does not accept connections on {0}; is the port taken?")]
    NotListening(SocketAddr),
}

/// Starts rumqttd on `listen` in a thread of its own and returns once it accepts connections.
/// The broker lives as long as the process.
pub fn start_embedded(listen: SocketAddr) -> Result<(), BrokerError> {
    let config = config(listen);
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            match broker.start() {
                Ok(()) => tracing::error!(%listen, "the embedded broker stopped"),
                Err(error) => tracing::error!(%listen, %error, "the embedded broker failed"),
            }
        })
        .map_err(BrokerError::Thread)?;
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
            tracing::info!(%listen, "embedded broker listening");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BrokerError::NotListening(listen))
}

/// The embedded broker's configuration: one anonymous MQTT 3.1.1 listener on `listen` with
/// limits sized for many nodes. The test harness runs the same broker as its own process.
pub fn config(listen: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 4 * 1024 * 1024,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4".to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let router = RouterConfig {
        max_connections: 10_000,
        max_outgoing_packet_count: 1_000,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        ..RouterConfig::default()
    };
    Config {
        router,
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    }
}
