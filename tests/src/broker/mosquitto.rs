//! Debian's mosquitto with the configuration r1 generates for it (no anonymous clients, a
//! password per identity, r1's topic ACL, no retained messages, r1's packet size limit), no
//! persistence. Admitting a client adds its password with `mosquitto_passwd` (and, for an
//! oracle, its block to the ACL file), then makes mosquitto reload with SIGHUP.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use r1_protocol::broker_tls::TlsFiles;
use r1_protocol::mosquitto::{self, MosquittoSettings};
use r1_protocol::topics::Topics;
use r1_protocol::{Address, Identity};
use rand::distr::{Alphanumeric, SampleString};
use rumqttc::{Client, Event, Packet};

use super::served::Served;
use super::{Broker, BrokerError, READY_TIMEOUT, Role};
use crate::node::TOPIC_ROOT;
use crate::signal::{Signal, signal_process};
use crate::tls::TestCerts;

/// Where Debian installs mosquitto.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Where Debian installs mosquitto_passwd.
pub const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

/// Files in the broker's dir.
const PASSWORD_FILE: &str = "passwd";
const ACL_FILE: &str = "acl";
const ORACLES_FILE: &str = "oracles";

/// mosquitto on a free 127.0.0.1 port; stopped on drop.
#[derive(Debug)]
pub struct Mosquitto {
    served: Served,
}

impl Mosquitto {
    /// Starts mosquitto on a free port and waits until it accepts connections.
    pub fn start() -> Result<Self, BrokerError> {
        Ok(Self {
            served: Served::start("mosquitto", command, prepare, false)?,
        })
    }

    /// The same, serving TLS only (`mqtts`) with a certificate from a fresh test CA.
    pub fn start_tls() -> Result<Self, BrokerError> {
        Ok(Self {
            served: Served::start("mosquitto", command, prepare, true)?,
        })
    }

    /// The dir holding its config and log.
    pub fn dir(&self) -> &Path {
        self.served.dir()
    }

    /// Whether a client can log in with `url` now.
    fn logs_in(&self, url: &str) -> bool {
        let Ok(parsed) = url::Url::parse(url) else {
            return false;
        };
        let id = format!("probe-{}", rand::random::<u32>());
        let ca = self.ca_file();
        let Ok((options, _)) =
            r1_protocol::mqtt::client_options(&parsed, ca.as_deref(), &id, &Identity::generate())
        else {
            return false;
        };
        let (client, mut connection): (Client, _) = Client::new(options, 4);
        let accepted = matches!(
            connection.recv_timeout(Duration::from_secs(2)),
            Ok(Ok(Event::Incoming(Packet::ConnAck(_))))
        );
        let _ = client.disconnect();
        accepted
    }

    /// Asks mosquitto to reload its files (SIGHUP) until `url`'s login is let in. The signal is
    /// sent again on every try: mosquitto 2.0 clears its reload flag after a reload, so a signal
    /// landing during one (another admit's, or a slow one on a busy machine) is lost.
    fn reload_until_it_takes(&self, url: &str) -> Result<(), BrokerError> {
        let taken = crate::wait::until(READY_TIMEOUT, || {
            if let Some(pid) = self.served.pid()
                && signal_process(pid, Signal::Hup).is_err()
            {
                return false;
            }
            self.logs_in(url)
        });
        if taken {
            return Ok(());
        }
        let user = url::Url::parse(url)
            .map(|u| u.username().to_owned())
            .unwrap_or_default();
        Err(BrokerError::Command(format!(
            "mosquitto did not take {user}'s new password within {READY_TIMEOUT:?}; its log ends:\n{}",
            self.served.log_tail(20)
        )))
    }
}

/// Empty password, oracles and ACL files.
fn prepare(dir: &Path) -> Result<(), BrokerError> {
    for (name, text) in [
        (PASSWORD_FILE, String::new()),
        (ORACLES_FILE, String::new()),
        (ACL_FILE, mosquitto::acl(&Topics::new(TOPIC_ROOT), &[])),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| BrokerError::Setup { path, source })?;
    }
    Ok(())
}

/// Writes `mosquitto.conf` for `port` into `dir` and returns `mosquitto -c <it>`. mosquitto
/// runs as root here (`user root`) so it can read the files in the root-only temp dir.
fn command(port: u16, dir: &Path, tls: Option<&TestCerts>) -> Result<Command, BrokerError> {
    let path = dir.join("mosquitto.conf");
    let tls = tls.map(|t| TlsFiles {
        cert_file: t.cert_file.clone(),
        key_file: t.key_file.clone(),
    });
    let generated = mosquitto::config(&MosquittoSettings {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        password_file: &dir.join(PASSWORD_FILE),
        acl_file: &dir.join(ACL_FILE),
        tls: tls.as_ref(),
    });
    let config = format!(
        "user root\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n\
         log_type information\n{generated}"
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

    fn admit(&self, client: Address, role: Role) -> Result<String, BrokerError> {
        let user = r1_protocol::hex::encode(client.as_slice());
        let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
        let output = Command::new(MOSQUITTO_PASSWD)
            .arg("-b")
            .arg(self.dir().join(PASSWORD_FILE))
            .args([&user, &password])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| BrokerError::Command(format!("{MOSQUITTO_PASSWD}: {e}")))?;
        if !output.status.success() {
            return Err(BrokerError::Command(format!(
                "{MOSQUITTO_PASSWD}: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        if role == Role::Oracle {
            let oracles_path = self.dir().join(ORACLES_FILE);
            let mut oracles: Vec<Address> = std::fs::read_to_string(&oracles_path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect();
            oracles.push(client);
            let text: String = oracles.iter().map(|o| format!("{o:#x}\n")).collect();
            let acl = mosquitto::acl(&Topics::new(TOPIC_ROOT), &oracles);
            for (path, text) in [(oracles_path, text), (self.dir().join(ACL_FILE), acl)] {
                std::fs::write(&path, text)
                    .map_err(|source| BrokerError::Setup { path, source })?;
            }
        }
        let url = self
            .url()
            .replacen("://", &format!("://{user}:{password}@"), 1);
        self.reload_until_it_takes(&url)?;
        Ok(url)
    }

    fn admit_nodes(&self, nodes: &[Address]) -> Result<Vec<String>, BrokerError> {
        let Some(last) = nodes.last() else {
            return Ok(Vec::new());
        };
        let mut rng = rand::rng();
        let logins: Vec<(String, String)> = nodes
            .iter()
            .map(|node| {
                let user = r1_protocol::hex::encode(node.as_slice());
                (user, Alphanumeric.sample_string(&mut rng, 24))
            })
            .collect();
        let batch = self.dir().join("passwd.batch");
        let plain: String = logins.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
        std::fs::write(&batch, plain).map_err(|source| BrokerError::Setup {
            path: batch.clone(),
            source,
        })?;
        let output = Command::new(MOSQUITTO_PASSWD)
            .arg("-U")
            .arg(&batch)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| BrokerError::Command(format!("{MOSQUITTO_PASSWD} -U: {e}")))?;
        if !output.status.success() {
            return Err(BrokerError::Command(format!(
                "{MOSQUITTO_PASSWD} -U: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let hashed = std::fs::read_to_string(&batch).map_err(|source| BrokerError::Setup {
            path: batch.clone(),
            source,
        })?;
        let passwd = self.dir().join(PASSWORD_FILE);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&passwd)
            .and_then(|mut file| std::io::Write::write_all(&mut file, hashed.as_bytes()))
            .map_err(|source| BrokerError::Setup {
                path: passwd,
                source,
            })?;
        let urls: Vec<String> = logins
            .iter()
            .map(|(user, password)| {
                self.url()
                    .replacen("://", &format!("://{user}:{password}@"), 1)
            })
            .collect();
        let last_url = urls.last().cloned().unwrap_or_default();
        self.reload_until_it_takes(&last_url).map_err(|e| {
            BrokerError::Command(format!("the batch's last login ({last:#x}): {e}"))
        })?;
        Ok(urls)
    }

    fn ca_file(&self) -> Option<PathBuf> {
        self.served.ca_file()
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
