//! `r1-oracle` configuration: identity, chain, broker, API and epoch settings, read from a YAML
//! file and checked before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use r1_protocol::config_file::{self, ConfigError};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::intake::quotas::Quotas;

/// The oracle's configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OracleConfig {
    /// The oracle's key file (0600).
    pub key_file: PathBuf,
    /// Where the oracle keeps its state.
    pub data_dir: PathBuf,
    /// EVM chain holding the contracts.
    pub chain: ChainConfig,
    /// MQTT broker for the oracle ↔ node control plane.
    pub broker: BrokerConfig,
    /// Deeploy API listener.
    pub api: ApiConfig,
    /// Prometheus `/metrics` listener; metrics are served on the API listener when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Epoch clock; read from the PoAI manager when unset, and checked against it when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<EpochConfig>,
    /// How often the loops run and how long their patience lasts.
    #[serde(default)]
    pub loops: LoopsConfig,
    /// What the oracle expects of node heartbeats.
    #[serde(default)]
    pub nodes: NodesConfig,
    /// Mirror the CRDs of the cluster the oracle runs in (the kube path); off when unset.
    /// Run it on one oracle per cluster: status is written under one field manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<crate::kube::KubeSettings>,
    /// Price catalogue file; the built-in catalogue when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<PathBuf>,
}

/// Chain connection and contract addresses.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChainConfig {
    /// JSON-RPC endpoint (`http`, `https`, `ws` or `wss`).
    pub rpc_url: Url,
    /// Chain id the RPC endpoint must report.
    pub chain_id: u64,
    /// Address of the PoAI manager contract.
    pub poai_manager: String,
    /// The consensus rule this oracle agrees to work under (`reference` or `byzantine`); the
    /// oracle refuses to start against a manager deployed with another. Unset: any, logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<r1_contracts::Quorum>,
}

/// Broker settings: an external broker by URL, or the embedded one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrokerConfig {
    /// External broker (`mqtt://host:port` or `mqtts://…`); the embedded broker runs when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    /// Where the embedded broker listens.
    #[serde(default = "default_embedded_listen")]
    pub embedded_listen: SocketAddr,
    /// CA certificate (PEM) that signed an external `mqtts://` broker's certificate; the
    /// system's roots when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The embedded broker serves TLS (`mqtts`) with this certificate and key; plain when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<r1_protocol::broker_tls::TlsFiles>,
    /// Addresses the embedded broker treats as oracles besides this oracle and the chain's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oracles: Vec<alloy_primitives::Address>,
    /// Root of every topic of this network, e.g. `r1/devnet`.
    pub topic_root: String,
}

fn default_embedded_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1883))
}

/// Deeploy API settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// How much one owner may keep in this oracle's store (default 500 objects in 20
    /// namespaces); every oracle of a network should hold the same, since each applies every
    /// CSP's writes.
    #[serde(default)]
    pub quotas: Quotas,
}

/// The epoch clock all oracles share.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EpochConfig {
    /// Start of epoch 0, in seconds since the Unix epoch.
    pub genesis_unix: u64,
    /// Epoch length in seconds (86400 on mainnet; a few seconds on a devnet).
    pub length_seconds: u64,
}

/// Loop timing.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoopsConfig {
    /// Milliseconds between two passes of the reconcile loops (10 s as in the reference).
    #[serde(default = "default_period_ms")]
    pub period_ms: u64,
    /// Seconds a replica may take to start before it counts as failed where it is.
    #[serde(default = "default_start_grace_seconds")]
    pub start_grace_seconds: u64,
    /// Seconds between two full re-publications of the CSPs' signed requests to the other
    /// oracles (anti-entropy; a request is also sent once as soon as it is accepted).
    #[serde(default = "default_resync_seconds")]
    pub resync_seconds: u64,
    /// Seconds a new replica of a changed job has to become healthy (running, and passing its
    /// HTTP or TCP health check when it has one) before the rollout is rolled back.
    #[serde(default = "default_rollout_deadline_seconds")]
    pub rollout_deadline_seconds: u64,
}

fn default_period_ms() -> u64 {
    10_000
}

fn default_start_grace_seconds() -> u64 {
    120
}

fn default_resync_seconds() -> u64 {
    30
}

fn default_rollout_deadline_seconds() -> u64 {
    120
}

impl Default for LoopsConfig {
    fn default() -> Self {
        Self {
            period_ms: default_period_ms(),
            start_grace_seconds: default_start_grace_seconds(),
            resync_seconds: default_resync_seconds(),
            rollout_deadline_seconds: default_rollout_deadline_seconds(),
        }
    }
}

/// Heartbeat expectations shared by liveness and availability.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodesConfig {
    /// Seconds between two heartbeats of a node (the nodes' own setting).
    #[serde(default = "default_heartbeat_interval_seconds")]
    pub heartbeat_interval_seconds: u64,
    /// Missed heartbeats, watched while connected, after which a node is lost and its replicas
    /// move (at least 2).
    #[serde(default = "default_grace_missed")]
    pub grace_missed: u32,
}

fn default_heartbeat_interval_seconds() -> u64 {
    10
}

fn default_grace_missed() -> u32 {
    3
}

impl Default for NodesConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_seconds: default_heartbeat_interval_seconds(),
            grace_missed: default_grace_missed(),
        }
    }
}

impl OracleConfig {
    /// Reads and checks the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = config_file::load(path)?;
        config.check(path)?;
        Ok(config)
    }

    /// Checks values serde cannot: URL schemes, addresses, non-zero lengths.
    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let scheme = self.chain.rpc_url.scheme();
        if !matches!(scheme, "http" | "https" | "ws" | "wss") {
            return Err(config_file::invalid(
                path,
                "chain.rpcUrl",
                format!("scheme {scheme:?} is not http, https, ws or wss"),
            ));
        }
        if self.chain.chain_id == 0 {
            return Err(config_file::invalid(
                path,
                "chain.chainId",
                "must be a positive chain id",
            ));
        }
        r1_crds::names::evm_address(&self.chain.poai_manager)
            .map_err(|reason| config_file::invalid(path, "chain.poaiManager", reason))?;
        if let Some(url) = &self.broker.url {
            config_file::check_broker_url(url)
                .map_err(|reason| config_file::invalid(path, "broker.url", reason))?;
        }
        config_file::check_topic_root(&self.broker.topic_root)
            .map_err(|reason| config_file::invalid(path, "broker.topicRoot", reason))?;
        if self.epoch.as_ref().is_some_and(|e| e.length_seconds == 0) {
            return Err(config_file::invalid(
                path,
                "epoch.lengthSeconds",
                "must be at least 1",
            ));
        }
        if self.loops.period_ms < 100 {
            return Err(config_file::invalid(
                path,
                "loops.periodMs",
                "must be at least 100",
            ));
        }
        if self.nodes.heartbeat_interval_seconds == 0 {
            return Err(config_file::invalid(
                path,
                "nodes.heartbeatIntervalSeconds",
                "must be at least 1",
            ));
        }
        if self.nodes.grace_missed < 2 {
            return Err(config_file::invalid(
                path,
                "nodes.graceMissed",
                "must be at least 2: a single late heartbeat must not move workloads",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
keyFile: /var/lib/r1-oracle/oracle.key
dataDir: /var/lib/r1-oracle
chain:
  rpcUrl: http://127.0.0.1:8545
  chainId: 31337
  poaiManager: "0x5FbDB2315678afecb367f032d93F642f64180aa3"
broker:
  topicRoot: r1/devnet
api:
  listen: 127.0.0.1:8080
epoch:
  genesisUnix: 1790000000
  lengthSeconds: 20
"#;

    fn parse(text: &str) -> Result<OracleConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oracle.yaml");
        std::fs::write(&path, text).unwrap();
        OracleConfig::load(&path).map_err(|e| {
            e.to_string()
                .replace(&path.display().to_string(), "oracle.yaml")
        })
    }

    #[test]
    fn good_config_loads_with_defaults() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.broker.url, None);
        assert_eq!(config.broker.embedded_listen, default_embedded_listen());
        assert_eq!(config.epoch.map(|e| e.length_seconds), Some(20));
        assert_eq!(config.loops, LoopsConfig::default());
        assert_eq!(config.nodes.grace_missed, 3);
    }

    #[test]
    fn an_operator_may_set_the_quotas_per_owner() {
        assert_eq!(parse(GOOD).unwrap().api.quotas, Quotas::default());
        let raised = GOOD.replace(
            "  listen: 127.0.0.1:8080",
            "  listen: 127.0.0.1:8080\n  quotas: { objects: 2000, namespaces: 40 }",
        );
        assert_eq!(
            parse(&raised).unwrap().api.quotas,
            Quotas {
                objects: 2000,
                namespaces: 40
            }
        );
        let misspelt = raised.replace("objects:", "object:");
        assert!(parse(&misspelt).unwrap_err().contains("object"));
    }

    #[test]
    fn the_agreed_quorum_rule_is_read_by_name() {
        assert_eq!(parse(GOOD).unwrap().chain.quorum, None);
        let byzantine = GOOD.replace(
            "  poaiManager: \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"",
            "  poaiManager: \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n  quorum: byzantine",
        );
        assert_eq!(
            parse(&byzantine).unwrap().chain.quorum,
            Some(r1_contracts::Quorum::Byzantine)
        );
        let unknown = byzantine.replace("quorum: byzantine", "quorum: majority");
        let error = parse(&unknown).unwrap_err();
        assert!(error.contains("majority"), "{error}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                GOOD.replace("http://127.0.0.1:8545", "ftp://x"),
                "chain.rpcUrl: scheme \"ftp\" is not http, https, ws or wss",
            ),
            (
                GOOD.replace("chainId: 31337", "chainId: 0"),
                "chain.chainId: must be a positive chain id",
            ),
            (
                GOOD.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x5fbdb"),
                "chain.poaiManager: \"0x5fbdb\" is not an EVM address",
            ),
            (
                GOOD.replace("topicRoot: r1/devnet", "topicRoot: r1/#"),
                "broker.topicRoot: \"r1/#\" must be",
            ),
            (
                GOOD.replace(
                    "topicRoot: r1/devnet",
                    "topicRoot: r1/devnet\n  url: http://broker:1883",
                ),
                "broker.url: scheme \"http\" is not mqtt or mqtts",
            ),
            (
                GOOD.replace("lengthSeconds: 20", "lengthSeconds: 0"),
                "epoch.lengthSeconds: must be at least 1",
            ),
            (
                format!("{GOOD}nodes:\n  graceMissed: 1\n"),
                "nodes.graceMissed: must be at least 2",
            ),
            (
                format!("{GOOD}loops:\n  periodMs: 5\n"),
                "loops.periodMs: must be at least 100",
            ),
            (
                GOOD.replace("listen: 127.0.0.1:8080", "listen: everywhere"),
                "api.listen: invalid socket address syntax",
            ),
            (
                GOOD.replace("dataDir:", "dataDirectory:"),
                "unknown field `dataDirectory`",
            ),
            (
                GOOD.replace("keyFile: /var/lib/r1-oracle/oracle.key\n", ""),
                "missing field `keyFile`",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with("config file oracle.yaml: "), "{err}");
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }
}
