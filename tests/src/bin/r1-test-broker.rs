//! `r1-test-broker --port <port>`: the embedded rumqttd MQTT broker on 127.0.0.1, as its own
//! process, because rumqttd cannot be stopped in-process and tests need a broker that goes
//! away and comes back on the same port.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

fn main() -> ExitCode {
    let port = match parse_port(std::env::args().skip(1).collect()) {
        Ok(port) => port,
        Err(message) => {
            eprintln!("r1-test-broker: {message}\nusage: r1-test-broker --port <port>");
            return ExitCode::from(2);
        }
    };
    let mut broker = Broker::new(config(port));
    match broker.start() {
        // start() returns only when every listener has stopped, e.g. when the port was taken.
        Ok(()) => eprintln!("r1-test-broker: the listener on port {port} stopped"),
        Err(error) => eprintln!("r1-test-broker: {error}"),
    }
    ExitCode::FAILURE
}

/// The port from `--port <port>`.
fn parse_port(args: Vec<String>) -> Result<u16, String> {
    match args.as_slice() {
        [flag, port] if flag == "--port" => port
            .parse()
            .map_err(|error| format!("bad port {port:?}: {error}")),
        _ => Err(format!("unexpected arguments {args:?}")),
    }
}

/// One MQTT 3.1.1 listener on 127.0.0.1:`port`, anonymous, generous limits.
fn config(port: u16) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 16 * 1024 * 1024,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4".to_owned(),
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
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
