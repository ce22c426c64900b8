//! `r1-node` configuration: identity, data directory, the oracles it obeys, broker and
//! containerd settings, read from a YAML file and checked before anything starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use r1_protocol::Address;
use r1_protocol::config_file::{self, ConfigError};
use serde::{Deserialize, Serialize};
use url::Url;

/// The node agent's configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeConfig {
    /// The node's key file (0600); its address is the node's identity.
    pub key_file: PathBuf,
    /// Where the agent keeps its state (desired workloads, logs).
    pub data_dir: PathBuf,
    /// Name shown in listings.
    pub alias: String,
    /// Labels advertised in heartbeats and matched by job selectors.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Addresses of the oracles whose signed commands the node obeys.
    pub oracles: Vec<Address>,
    /// MQTT broker.
    pub broker: BrokerConfig,
    /// containerd connection.
    #[serde(default)]
    pub containerd: ContainerdConfig,
    /// Seconds between heartbeats.
    #[serde(default = "default_heartbeat_seconds")]
    pub heartbeat_interval_seconds: u64,
    /// Unix socket of the local gRPC API.
    pub api_socket: PathBuf,
}

/// Broker connection.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrokerConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: Url,
    /// Root of every topic of this network, e.g. `r1/devnet`.
    pub topic_root: String,
}

/// containerd connection.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerdConfig {
    /// containerd's gRPC socket.
    pub socket: PathBuf,
    /// containerd namespace holding r1's containers.
    pub namespace: String,
}

impl Default for ContainerdConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/containerd/containerd.sock"),
            namespace: "r1".into(),
        }
    }
}

fn default_heartbeat_seconds() -> u64 {
    10
}

impl NodeConfig {
    /// Reads and checks the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = config_file::load(path)?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        if self.oracles.is_empty() {
            return Err(config_file::invalid(
                path,
                "oracles",
                "list at least one trusted oracle address",
            ));
        }
        config_file::check_broker_url(&self.broker.url)
            .map_err(|reason| config_file::invalid(path, "broker.url", reason))?;
        config_file::check_topic_root(&self.broker.topic_root)
            .map_err(|reason| config_file::invalid(path, "broker.topicRoot", reason))?;
        if self.heartbeat_interval_seconds == 0 {
            return Err(config_file::invalid(
                path,
                "heartbeatIntervalSeconds",
                "must be at least 1",
            ));
        }
        if self.containerd.namespace.is_empty() {
            return Err(config_file::invalid(
                path,
                "containerd.namespace",
                "must not be empty",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
keyFile: /var/lib/r1-node/node.key
dataDir: /var/lib/r1-node
alias: edge-1
labels: { kyb: "true" }
oracles: ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]
broker: { url: "mqtt://127.0.0.1:1883", topicRoot: r1/devnet }
apiSocket: /run/r1/node.sock
"#;

    fn parse(text: &str) -> Result<NodeConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.yaml");
        std::fs::write(&path, text).unwrap();
        NodeConfig::load(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn good_config_loads_with_defaults() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.heartbeat_interval_seconds, 10);
        assert_eq!(config.containerd, ContainerdConfig::default());
        assert_eq!(config.oracles.len(), 1);
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                GOOD.replace(r#"["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]"#, "[]"),
                "oracles: list at least one",
            ),
            (
                GOOD.replace(
                    r#"["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]"#,
                    r#"["0x7099"]"#,
                ),
                "oracles[0]",
            ),
            (
                GOOD.replace("mqtt://127.0.0.1:1883", "http://x"),
                "broker.url: scheme \"http\" is not mqtt or mqtts",
            ),
            (
                GOOD.replace(
                    "alias: edge-1",
                    "alias: edge-1\nheartbeatIntervalSeconds: 0",
                ),
                "heartbeatIntervalSeconds: must be at least 1",
            ),
            (
                GOOD.replace("alias: edge-1", "alais: edge-1"),
                "unknown field `alais`",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }
}
