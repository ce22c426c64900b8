//! The rumqttd broker behind the gate: listens on a free loopback port and admits only the
//! login the gate holds (random, made at start-up, never written anywhere), so no client can
//! reach it without going through the gate.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use super::BrokerError;

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the gate finds rumqttd and how it logs in.
#[derive(Clone)]
pub struct Upstream {
    /// rumqttd's loopback address.
    pub addr: SocketAddr,
    /// The only username rumqttd accepts.
    pub username: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts rumqttd on a free loopback port in a thread of its own with a fresh random login and
/// returns once it accepts connections. The broker lives as long as the process.
pub fn start() -> Result<Upstream, BrokerError> {
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(BrokerError::Port)?;
    let mut rng = rand::rng();
    let upstream = Upstream {
        addr,
        username: Alphanumeric.sample_string(&mut rng, 32),
        password: Alphanumeric.sample_string(&mut rng, 32),
    };
    let config = config(&upstream);
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            match broker.start() {
                Ok(()) => tracing::error!(%addr, "the embedded broker stopped"),
                Err(error) => tracing::error!(%addr, %error, "the embedded broker failed"),
            }
        })
        .map_err(BrokerError::Thread)?;
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(upstream);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BrokerError::NotListening(addr))
}

/// rumqttd's configuration: one MQTT 3.1.1 listener admitting only `upstream`'s login, with
/// limits sized for many nodes.
fn config(upstream: &Upstream) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: r1_protocol::mqtt::MAX_PACKET_BYTES,
        max_inflight_count: 500,
        auth: Some(HashMap::from([(
            upstream.username.clone(),
            upstream.password.clone(),
        )])),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4".to_owned(),
        listen: upstream.addr,
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
