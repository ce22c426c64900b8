//! A configuration for Debian's mosquitto that gives an r1 network the guarantees of the
//! oracle's embedded broker gate: no anonymous clients, per-identity topic ACLs written from the
//! gate's own rules ([`crate::broker_acl`]), no retained messages, the same packet size and
//! connection limits, optionally TLS; `r1ctl broker mosquitto-config` writes it. mosquitto cannot
//! check signatures, so every client has a password in mosquitto's password file
//! (`mosquitto_passwd`), its username being its lowercase `0x` address, and puts both in its
//! broker URL.
//!
//! Differences from the gate: a client that publishes where it may not is not disconnected (the
//! message is dropped), oracles may also publish under `nodes/{self}/…` (the node patterns
//! apply to every user), and the oracle set is fixed in the ACL file (rewrite it and send
//! mosquitto SIGHUP when the chain's oracles change).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use crate::Address;
use crate::broker_acl::{
    NODE_HEARS, NODE_HEARS_ANY, NODE_PUBLISHES, ORACLE_HEARS, ORACLE_PUBLISHES_ANY,
    ORACLE_PUBLISHES_OWN,
};
use crate::broker_tls::TlsFiles;
use crate::mqtt::{MAX_CONNECTIONS, MAX_PACKET_BYTES};
use crate::topics::{Channel, Topics};

/// Messages mosquitto queues for one client beyond those in flight: two heartbeat intervals
/// of a fleet of [`MAX_CONNECTIONS`] nodes.
const MAX_QUEUED_MESSAGES: usize = 2 * MAX_CONNECTIONS;
/// Bytes mosquitto queues for one client at most, whatever the count.
const MAX_QUEUED_BYTES: usize = 64 << 20;

/// Where and how mosquitto serves one r1 network.
#[derive(Debug, Clone)]
pub struct MosquittoSettings<'a> {
    /// The listener.
    pub listen: SocketAddr,
    /// mosquitto's password file (`mosquitto_passwd -c FILE 0x…`).
    pub password_file: &'a Path,
    /// The ACL file written from [`acl`].
    pub acl_file: &'a Path,
    /// TLS certificate and key for the listener; plain MQTT when `None`.
    pub tls: Option<&'a TlsFiles>,
}

/// `mosquitto.conf` for `settings`.
pub fn config(settings: &MosquittoSettings<'_>) -> String {
    let mut text = String::from(
        "# r1 broker: no anonymous clients, per-identity ACLs, no retained messages.\n",
    );
    let _ = writeln!(text, "per_listener_settings false");
    let _ = writeln!(text, "allow_anonymous false");
    let _ = writeln!(text, "password_file {}", settings.password_file.display());
    let _ = writeln!(text, "acl_file {}", settings.acl_file.display());
    // mosquitto counts the fixed header (at most 5 bytes); r1 clients count what follows it.
    let _ = writeln!(text, "max_packet_size {}", MAX_PACKET_BYTES + 5);
    let _ = writeln!(text, "retain_available false");
    let _ = writeln!(text, "allow_zero_length_clientid false");
    let _ = writeln!(text, "persistence false");
    // An oracle that falls behind (a busy process) finds the fleet's messages queued for it:
    // mosquitto's default of 1,000 a client is one second of heartbeats at 10,000 nodes, past
    // which it drops them silently. Bytes bound the queue of any client that stops reading.
    let _ = writeln!(text, "max_queued_messages {MAX_QUEUED_MESSAGES}");
    let _ = writeln!(text, "max_queued_bytes {MAX_QUEUED_BYTES}");
    let _ = writeln!(
        text,
        "listener {} {}",
        settings.listen.port(),
        settings.listen.ip()
    );
    let _ = writeln!(text, "max_connections {MAX_CONNECTIONS}");
    if let Some(tls) = settings.tls {
        let _ = writeln!(text, "certfile {}", tls.cert_file.display());
        let _ = writeln!(text, "keyfile {}", tls.key_file.display());
        let _ = writeln!(text, "tls_version tlsv1.2");
    }
    text
}

/// The ACL file for the topics under `topics` with `oracles` as the oracle set, from the
/// gate's rules: nodes (every user, by the `%u` patterns) publish their own heartbeat, status
/// and session output (to any oracle) and read their own commands and every oracle's roster;
/// each oracle publishes its own observations, requests and roster and any node's commands,
/// and reads every node's heartbeats and status, every oracle's observations and requests, and
/// the output of its own sessions.
pub fn acl(topics: &Topics, oracles: &[Address]) -> String {
    let node = Address::ZERO;
    let own = |channel| {
        topics
            .topic(channel, &node)
            .replace(&crate::hex::encode(node.as_slice()), "%u")
    };
    let mut text = String::from("# r1 topic ACL: a node's username is its lowercase 0x address.\n");
    for channel in NODE_PUBLISHES {
        let to_any_oracle = if channel == Channel::Sessions {
            "/+"
        } else {
            ""
        };
        let _ = writeln!(text, "pattern write {}{to_any_oracle}", own(channel));
    }
    for channel in NODE_HEARS {
        let _ = writeln!(text, "pattern read {}", own(channel));
    }
    for channel in NODE_HEARS_ANY {
        let _ = writeln!(text, "pattern read {}", topics.all(channel));
    }
    for oracle in oracles {
        let _ = writeln!(text, "\nuser {}", crate::hex::encode(oracle.as_slice()));
        for channel in ORACLE_PUBLISHES_OWN {
            let _ = writeln!(text, "topic write {}", topics.topic(channel, oracle));
        }
        for channel in ORACLE_PUBLISHES_ANY {
            let _ = writeln!(text, "topic write {}", topics.all(channel));
        }
        for channel in ORACLE_HEARS {
            let _ = writeln!(text, "topic read {}", topics.all(channel));
        }
        let _ = writeln!(text, "topic read {}", topics.session_outputs_to(oracle));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_refuses_anonymous_and_retained_and_limits_packets() {
        let tls = TlsFiles {
            cert_file: "/etc/r1/broker.crt".into(),
            key_file: "/etc/r1/broker.key".into(),
        };
        let settings = MosquittoSettings {
            listen: "0.0.0.0:8883".parse().unwrap(),
            password_file: Path::new("/etc/mosquitto/r1.passwd"),
            acl_file: Path::new("/etc/mosquitto/r1.acl"),
            tls: Some(&tls),
        };
        let text = config(&settings);
        for line in [
            "allow_anonymous false",
            "password_file /etc/mosquitto/r1.passwd",
            "acl_file /etc/mosquitto/r1.acl",
            "max_packet_size 4194309",
            "retain_available false",
            "max_queued_messages 20000",
            "max_queued_bytes 67108864",
            "listener 8883 0.0.0.0",
            "certfile /etc/r1/broker.crt",
            "keyfile /etc/r1/broker.key",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        let plain = config(&MosquittoSettings {
            tls: None,
            ..settings
        });
        assert!(!plain.contains("certfile"), "{plain}");
    }

    #[test]
    fn the_acl_has_node_patterns_and_a_block_per_oracle() {
        let oracle = Address::repeat_byte(0xab);
        let text = acl(&Topics::new("r1/devnet"), &[oracle]);
        let user = format!("0x{}", "ab".repeat(20));
        let expected = format!(
            "# r1 topic ACL: a node's username is its lowercase 0x address.\n\
             pattern write r1/devnet/nodes/%u/heartbeat\n\
             pattern write r1/devnet/nodes/%u/status\n\
             pattern write r1/devnet/nodes/%u/sessions/+\n\
             pattern read r1/devnet/nodes/%u/commands\n\
             pattern read r1/devnet/oracles/+/roster\n\
             pattern read r1/devnet/oracles/+/cstore\n\
             \n\
             user {user}\n\
             topic write r1/devnet/oracles/{user}/observations\n\
             topic write r1/devnet/oracles/{user}/requests\n\
             topic write r1/devnet/oracles/{user}/roster\n\
             topic write r1/devnet/oracles/{user}/cstore\n\
             topic write r1/devnet/nodes/+/commands\n\
             topic read r1/devnet/nodes/+/heartbeat\n\
             topic read r1/devnet/nodes/+/status\n\
             topic read r1/devnet/oracles/+/observations\n\
             topic read r1/devnet/oracles/+/requests\n\
             topic read r1/devnet/nodes/+/sessions/{user}\n"
        );
        assert_eq!(text, expected);
    }
}
