//! Debian's mosquitto with a generated config: one anonymous listener on 127.0.0.1, no
//! persistence.

use std::path::Path;
use std::process::Command;

use super::served::Served;
use super::{Broker, BrokerError};

/// Where Debian installs mosquitto.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// mosquitto on a free 127.0.0.1 port; stopped on drop.
#[derive(Debug)]
pub struct Mosquitto {
    served: Served,
}

impl Mosquitto {
    /// Starts mosquitto on a free port and waits until it accepts connections.
    pub fn start() -> Result<Self, BrokerError> {
        Ok(Self {
            served: Served::start("mosquitto", command)?,
        })
    }

    /// The dir holding its config and log.
    pub fn dir(&self) -> &Path {
        self.served.dir()
    }
}

/// Writes `mosquitto.conf` for `port` into `dir` and returns `mosquitto -c <it>`.
fn command(port: u16, dir: &Path) -> Result<Command, BrokerError> {
    let path = dir.join("mosquitto.conf");
    let config = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
         log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
    );
    std::fs::write(&path, config).map_err(|source| BrokerError::Setup {
        path: path.clone(),
        source,
    })?;
    let mut command = Command::new(MOSQUITTO);
    command.arg("-c").arg(path);
    Ok(command)
}

impl Broker for Mosquitto {
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
