//! `r1-test-broker --port <port>`: the oracle's embedded rumqttd MQTT broker (same
//! configuration) on 127.0.0.1, as its own process, because rumqttd cannot be stopped in-process
//! and tests need a broker that goes away and comes back on the same port.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use rumqttd::Broker;

fn main() -> ExitCode {
    let port = match parse_port(std::env::args().skip(1).collect()) {
        Ok(port) => port,
        Err(message) => {
            eprintln!("r1-test-broker: {message}\nusage: r1-test-broker --port <port>");
            return ExitCode::from(2);
        }
    };
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut broker = Broker::new(r1_controller::oracle::broker::config(listen));
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
