//! The embedded rumqttd broker, run as the `r1-test-broker` binary of this crate.

use std::path::Path;
use std::process::Command;

use super::served::Served;
use super::{Broker, BrokerError};

/// The name of the binary wrapping rumqttd.
pub const BINARY: &str = "r1-test-broker";

/// rumqttd on a free 127.0.0.1 port; stopped on drop.
#[derive(Debug)]
pub struct Rumqttd {
    served: Served,
}

impl Rumqttd {
    /// Starts rumqttd on a free port and waits until it accepts connections.
    pub fn start() -> Result<Self, BrokerError> {
        Ok(Self {
            served: Served::start("rumqttd", command)?,
        })
    }

    /// The dir holding its log.
    pub fn dir(&self) -> &Path {
        self.served.dir()
    }
}

/// `r1-test-broker --port <port>`.
fn command(port: u16, _dir: &Path) -> Result<Command, BrokerError> {
    let mut command = Command::new(crate::process::bin_path(BINARY)?);
    command.args(["--port", &port.to_string()]);
    Ok(command)
}

impl Broker for Rumqttd {
    fn url(&self) -> String {
        self.served.url()
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
