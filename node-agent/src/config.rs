//! `r1-node` configuration: identity, data directory, the oracles it obeys, broker and
//! containerd settings, read from a YAML file and checked before anything starts.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use r1_protocol::Address;
use r1_protocol::config_file::{self, ConfigError};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::logs::retired::Retention;
use crate::network::NetworkConfig;

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
    /// Labels advertised in heartbeats and matched by job selectors (with the labels of what
    /// the sandbox allows, see [`crate::sandbox::allowance_labels`]).
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
    /// Where Prometheus scrapes `/metrics`; no metrics endpoint when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory of OCI image archives (`*.tar`) the node imports images from; defaults to
    /// `<dataDir>/images`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_dir: Option<PathBuf>,
    /// How workload ports are exposed.
    #[serde(default)]
    pub ports: PortsConfig,
    /// Workload log files.
    #[serde(default)]
    pub logs: LogsConfig,
    /// Delays between restarts of a crashing workload.
    #[serde(default)]
    pub restart_backoff: BackoffConfig,
    /// Where the tunnel clients' binaries are.
    #[serde(default)]
    pub tunnels: TunnelsConfig,
    /// Oldest acceptable oracle command, in seconds.
    #[serde(default = "default_command_max_age")]
    pub command_max_age_seconds: u64,
    /// The peer-to-peer layer R1FS and CSTORE use.
    #[serde(default)]
    pub p2p: P2pConfig,
    /// The node's R1FS store and its APIs.
    #[serde(default)]
    pub r1fs: R1fsConfig,
    /// The node's CSTORE replica and its Redis port.
    #[serde(default)]
    pub cstore: CstoreConfig,
    /// How images are pulled from registries.
    #[serde(default)]
    pub registries: RegistriesConfig,
    /// How workloads are confined (user namespace, read-only root, scratch quota).
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// Each replica's interface beyond loopback and what it may reach (`egress.mode: none`:
    /// loopback only).
    #[serde(default)]
    pub network: NetworkConfig,
    /// The chain the node reads its own licence on, to say plainly whether oracles will give
    /// it work (optional: without it the node does not check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainConfig>,
}

/// Where the node reads its own licence (`chain` in the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChainConfig {
    /// JSON-RPC endpoint of the chain the licences live on.
    pub rpc_url: Url,
    /// The PoAI manager contract; the Node Deed is found from it.
    pub manager: Address,
}

/// How the node confines the strangers' code it runs. Every workload gets containerd's default
/// seccomp profile, `no-new-privileges` and a small capability set; these settings choose the
/// rest, secure by default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SandboxConfig {
    /// Run each workload in a user namespace: its uids and gids `0..idMapSize` are the host's
    /// `idMapBase..idMapBase+idMapSize`, so root in a container is nobody on the host. Off
    /// only on hosts whose kernel or runtime cannot do it: root in the container is then root
    /// on the host.
    pub user_namespace: bool,
    /// First host uid and gid of the workloads' range (like a `/etc/subuid` entry).
    pub id_map_base: u32,
    /// How many uids and gids the range holds.
    pub id_map_size: u32,
    /// Size of each workload's writable scratch disk, mounted at `/scratch`: a file system of
    /// its own (an ext4 image on a loop device under `<dataDir>/scratch`), so a workload that
    /// fills it gets `ENOSPC` and the node's disk is untouched. 0: no scratch disk.
    pub scratch_bytes: u64,
    /// Size of each workload's `/tmp` (a tmpfs, charged to the workload's memory limit).
    pub tmp_bytes: u64,
    /// Jobs may ask to share the host's users (`securityContext.hostUsers`: no user namespace,
    /// root in the container is root on the host); otherwise such a replica fails with the
    /// reason.
    pub allow_host_users: bool,
    /// Jobs may ask for a writable root file system (`securityContext.writableRootFilesystem`);
    /// otherwise such a replica fails with the reason. What such a workload writes there goes
    /// to containerd's snapshot directory on the node's disk, with no quota.
    pub allow_writable_root_filesystem: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            user_namespace: true,
            id_map_base: 100_000,
            id_map_size: 65_536,
            scratch_bytes: 1 << 30,
            tmp_bytes: 64 << 20,
            allow_host_users: false,
            allow_writable_root_filesystem: false,
        }
    }
}

/// Image pulls from registries (OCI distribution). HTTPS with the system's CA certificates,
/// except for the hosts listed here and loopback hosts, which are spoken to over plain HTTP.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistriesConfig {
    /// Registries (`host[:port]`) reached over plain HTTP, e.g. one on the operator's LAN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plain_http: Vec<String>,
    /// Ask peers for the blobs of public images before the registry, and serve them to peers.
    #[serde(default = "yes")]
    pub share_with_peers: bool,
    /// Most bytes the images' blobs may take (containerd's content store); a pull that would
    /// go over first removes unused pulled images, then fails. 0: no limit.
    #[serde(default = "default_image_quota")]
    pub quota_bytes: u64,
    /// A pulled image no workload has used for this long is removed.
    #[serde(default = "default_unused_image_seconds")]
    pub unused_image_seconds: u64,
}

impl Default for RegistriesConfig {
    fn default() -> Self {
        Self {
            plain_http: Vec::new(),
            share_with_peers: true,
            quota_bytes: default_image_quota(),
            unused_image_seconds: default_unused_image_seconds(),
        }
    }
}

const fn yes() -> bool {
    true
}

const fn default_image_quota() -> u64 {
    64 << 30
}

const fn default_unused_image_seconds() -> u64 {
    24 * 3600
}

/// The node's CSTORE: the Redis port workloads reach from inside their containers, and how
/// replicas keep in step.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CstoreConfig {
    /// Port of CSTORE's Redis protocol on 127.0.0.1 inside every container (`CSTORE_REDIS_URL`);
    /// each job reads and writes its own namespace (`job-<id>`). 0 turns it off.
    pub workload_port: u16,
    /// How far ahead of this node's clock another node's write stamp may be, ms.
    pub max_ahead_ms: u64,
    /// Seconds between anti-entropy rounds with every connected peer (a peer is also synced
    /// with as soon as it connects).
    pub anti_entropy_seconds: u64,
    /// Seconds a delete's tombstone is kept. A node cut off for longer can bring a deleted
    /// value back when it reconnects.
    pub tombstone_horizon_seconds: u64,
}

impl Default for CstoreConfig {
    fn default() -> Self {
        Self {
            workload_port: 6379,
            max_ahead_ms: 5_000,
            anti_entropy_seconds: 30,
            tombstone_horizon_seconds: 7 * 24 * 3600,
        }
    }
}

/// The node's R1FS file store: how much disk it may take, what the operator may add by path,
/// and the API workloads reach from inside their containers.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct R1fsConfig {
    /// Most bytes of blocks kept under `<dataDir>/r1fs` (10 GiB by default); an add or fetch
    /// that would pass it fails and leaves nothing pinned.
    pub quota_bytes: u64,
    /// Directories `r1ctl fs add PATH` may read from; a path outside them (after following
    /// symlinks) is refused. Empty: adding by path is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_dirs: Vec<PathBuf>,
    /// Port of the workload API on 127.0.0.1 inside every container; the container learns its
    /// URL from `R1FS_API_URL`. 0 turns the workload API off.
    pub workload_port: u16,
    /// Largest upload one workload request may carry.
    pub max_upload_bytes: u64,
}

impl Default for R1fsConfig {
    fn default() -> Self {
        Self {
            quota_bytes: 10 << 30,
            add_dirs: Vec::new(),
            workload_port: 4102,
            max_upload_bytes: 1 << 30,
        }
    }
}

/// The peer-to-peer layer: where the node listens for its peers and what it tells the oracles
/// to put on the roster.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct P2pConfig {
    /// libp2p listen addresses (TCP and QUIC on port 4001 of every interface by default).
    pub listen: Vec<String>,
    /// Addresses peers should dial, when the listen addresses are not reachable as they are
    /// (behind NAT, a load balancer); empty: the addresses the node actually listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announce: Vec<String>,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".into(),
                "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
            ],
            announce: Vec::new(),
        }
    }
}

/// How workload ports are exposed on the node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortsConfig {
    /// Address host ports listen on (`0.0.0.0` for all interfaces).
    pub bind_address: IpAddr,
    /// First port the node may choose when a job leaves the host port open.
    pub first: u16,
    /// Last such port.
    pub last: u16,
}

impl Default for PortsConfig {
    fn default() -> Self {
        Self {
            bind_address: IpAddr::from([0, 0, 0, 0]),
            first: 30000,
            last: 32767,
        }
    }
}

/// Workload log files.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogsConfig {
    /// Size past which a log is rotated.
    pub max_bytes: u64,
    /// Rotated files kept per container.
    pub keep: u32,
    /// How long a removed container's logs are kept for its owner (seconds).
    #[serde(default = "default_retired_keep_seconds")]
    pub retired_keep_seconds: u64,
    /// Most bytes the logs of removed containers take together; the oldest go first.
    #[serde(default = "default_retired_max_bytes")]
    pub retired_max_bytes: u64,
}

fn default_retired_keep_seconds() -> u64 {
    Retention::default().keep_ms / 1000
}

fn default_retired_max_bytes() -> u64 {
    Retention::default().max_bytes
}

impl LogsConfig {
    /// How removed containers' logs are kept.
    pub fn retention(&self) -> Retention {
        Retention {
            keep_ms: self.retired_keep_seconds.saturating_mul(1000),
            max_bytes: self.retired_max_bytes,
        }
    }
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            max_bytes: 10 << 20,
            keep: 3,
            retired_keep_seconds: default_retired_keep_seconds(),
            retired_max_bytes: default_retired_max_bytes(),
        }
    }
}

/// Restart delays: doubling from `initialMs` to `maxMs`, forgotten after `resetAfterMs` of
/// running.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackoffConfig {
    /// First delay.
    pub initial_ms: u64,
    /// Longest delay.
    pub max_ms: u64,
    /// A run this long resets the delays.
    pub reset_after_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial_ms: 2_000,
            max_ms: 60_000,
            reset_after_ms: 300_000,
        }
    }
}

/// Where the node finds the tunnel clients it runs beside replicas whose job has a `Tunnel`;
/// each unset path is looked up on `PATH`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TunnelsConfig {
    /// The `bore` binary (crate `bore-cli`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bore_path: Option<PathBuf>,
    /// The `cloudflared` binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudflared_path: Option<PathBuf>,
    /// The `ngrok` binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ngrok_path: Option<PathBuf>,
}

/// Settings given on the command line or in the environment, which win over the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Node name shown in listings.
    #[arg(long, env = "R1_NODE_ALIAS")]
    pub alias: Option<String>,
    /// State directory.
    #[arg(long, env = "R1_NODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// MQTT broker URL.
    #[arg(long, env = "R1_NODE_BROKER_URL")]
    pub broker_url: Option<Url>,
    /// containerd socket.
    #[arg(long, env = "R1_NODE_CONTAINERD_SOCKET")]
    pub containerd_socket: Option<PathBuf>,
    /// containerd namespace.
    #[arg(long, env = "R1_NODE_CONTAINERD_NAMESPACE")]
    pub containerd_namespace: Option<String>,
    /// Seconds between heartbeats.
    #[arg(long, env = "R1_NODE_HEARTBEAT_INTERVAL_SECONDS")]
    pub heartbeat_interval_seconds: Option<u64>,
    /// Unix socket of the local API.
    #[arg(long, env = "R1_NODE_API_SOCKET")]
    pub api_socket: Option<PathBuf>,
    /// Metrics listen address.
    #[arg(long, env = "R1_NODE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Broker connection.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrokerConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: Url,
    /// Root of every topic of this network, e.g. `r1/devnet`.
    pub topic_root: String,
    /// CA certificate (PEM) that signed an `mqtts://` broker's certificate; the system's roots
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
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

fn default_command_max_age() -> u64 {
    60
}

impl NodeConfig {
    /// Reads and checks the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, &Overrides::default())
    }

    /// Reads the configuration at `path`, applies `overrides`, and checks the result.
    pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config: Self = config_file::load(path)?;
        let o = overrides.clone();
        config.alias = o.alias.unwrap_or(config.alias);
        config.data_dir = o.data_dir.unwrap_or(config.data_dir);
        config.broker.url = o.broker_url.unwrap_or(config.broker.url);
        config.containerd.socket = o.containerd_socket.unwrap_or(config.containerd.socket);
        config.containerd.namespace = o
            .containerd_namespace
            .unwrap_or(config.containerd.namespace);
        config.heartbeat_interval_seconds = o
            .heartbeat_interval_seconds
            .unwrap_or(config.heartbeat_interval_seconds);
        config.api_socket = o.api_socket.unwrap_or(config.api_socket);
        config.metrics_listen = o.metrics_listen.or(config.metrics_listen);
        config.check(path)?;
        Ok(config)
    }

    /// Where image archives are read from.
    pub fn images_dir(&self) -> PathBuf {
        self.images_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("images"))
    }

    fn check_p2p(&self, path: &Path) -> Result<(), ConfigError> {
        if self.p2p.listen.is_empty() {
            return Err(config_file::invalid(
                path,
                "p2p.listen",
                "list at least one address: R1FS and CSTORE need the peer-to-peer layer",
            ));
        }
        for (field, list) in [
            ("listen", &self.p2p.listen),
            ("announce", &self.p2p.announce),
        ] {
            for (i, text) in list.iter().enumerate() {
                if let Err(e) = text.parse::<r1_p2p::Multiaddr>() {
                    return Err(config_file::invalid(
                        path,
                        &format!("p2p.{field}[{i}]"),
                        format!("{text:?} is not a multiaddr: {e}"),
                    ));
                }
            }
        }
        let most = r1_protocol::messages::Roster::MAX_ADDRS_PER_NODE;
        if self.p2p.announce.len() > most {
            return Err(config_file::invalid(
                path,
                "p2p.announce",
                format!("at most {most} addresses are put on the roster"),
            ));
        }
        Ok(())
    }

    fn check_sandbox(&self, path: &Path) -> Result<(), ConfigError> {
        let sandbox = &self.sandbox;
        if sandbox.user_namespace {
            if sandbox.id_map_base == 0 || sandbox.id_map_size == 0 {
                return Err(config_file::invalid(
                    path,
                    "sandbox",
                    "idMapBase and idMapSize must be at least 1: uid 0 of the host is never mapped",
                ));
            }
            if sandbox
                .id_map_base
                .checked_add(sandbox.id_map_size)
                .is_none()
            {
                return Err(config_file::invalid(
                    path,
                    "sandbox",
                    "idMapBase + idMapSize must stay below 2^32",
                ));
            }
        }
        if sandbox.tmp_bytes < 1 << 20 {
            return Err(config_file::invalid(
                path,
                "sandbox.tmpBytes",
                "must be at least 1 MiB",
            ));
        }
        if sandbox.scratch_bytes != 0 && sandbox.scratch_bytes < 16 << 20 {
            return Err(config_file::invalid(
                path,
                "sandbox.scratchBytes",
                "must be 0 (no scratch disk) or at least 16 MiB",
            ));
        }
        Ok(())
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
        if !(1..=86_400).contains(&self.cstore.anti_entropy_seconds) {
            return Err(config_file::invalid(
                path,
                "cstore.antiEntropySeconds",
                "must be 1 to 86400",
            ));
        }
        if self.cstore.tombstone_horizon_seconds < 60 {
            return Err(config_file::invalid(
                path,
                "cstore.tombstoneHorizonSeconds",
                "must be at least 60",
            ));
        }
        if self.ports.first == 0 || self.ports.first > self.ports.last {
            return Err(config_file::invalid(
                path,
                "ports",
                "first must be at least 1 and at most last",
            ));
        }
        if self.restart_backoff.initial_ms == 0
            || self.restart_backoff.initial_ms > self.restart_backoff.max_ms
        {
            return Err(config_file::invalid(
                path,
                "restartBackoff",
                "initialMs must be at least 1 and at most maxMs",
            ));
        }
        if self.command_max_age_seconds == 0 {
            return Err(config_file::invalid(
                path,
                "commandMaxAgeSeconds",
                "must be at least 1",
            ));
        }
        self.check_p2p(path)?;
        for (field, value) in [
            ("r1fs.quotaBytes", self.r1fs.quota_bytes),
            ("r1fs.maxUploadBytes", self.r1fs.max_upload_bytes),
        ] {
            if value == 0 {
                return Err(config_file::invalid(path, field, "must be at least 1"));
            }
        }
        if let Some(i) = self.r1fs.add_dirs.iter().position(|d| !d.is_absolute()) {
            return Err(config_file::invalid(
                path,
                &format!("r1fs.addDirs[{i}]"),
                "must be an absolute path",
            ));
        }
        self.check_sandbox(path)?;
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
        assert_eq!(config.sandbox, SandboxConfig::default());
        assert!(config.sandbox.user_namespace);
        assert_eq!(config.oracles.len(), 1);
    }

    #[test]
    fn flags_and_environment_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let overrides = Overrides {
            alias: Some("edge-9".into()),
            heartbeat_interval_seconds: Some(2),
            ..Default::default()
        };
        let config = NodeConfig::load_with(&path, &overrides).unwrap();
        assert_eq!(
            (config.alias.as_str(), config.heartbeat_interval_seconds),
            ("edge-9", 2)
        );
        let zero = Overrides {
            heartbeat_interval_seconds: Some(0),
            ..Default::default()
        };
        let err = NodeConfig::load_with(&path, &zero).unwrap_err().to_string();
        assert!(err.contains("heartbeatIntervalSeconds"), "{err}");
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
            (
                GOOD.replace(
                    "alias: edge-1",
                    "alias: e\nports: {bindAddress: 127.0.0.1, first: 9, last: 8}",
                ),
                "ports: first must be at least 1 and at most last",
            ),
            (
                GOOD.replace("alias: edge-1", "alias: e\nr1fs: {quotaBytes: 10, workloadPort: 1, maxUploadBytes: 0}"),
                "r1fs.maxUploadBytes: must be at least 1",
            ),
            (
                GOOD.replace("alias: edge-1", "alias: e\nr1fs: {quotaBytes: 10, workloadPort: 1, maxUploadBytes: 1, addDirs: [data]}"),
                "r1fs.addDirs[0]: must be an absolute path",
            ),
            (
                GOOD.replace("alias: edge-1", "alias: e\nsandbox: {idMapBase: 0}"),
                "uid 0 of the host is never mapped",
            ),
            (
                GOOD.replace("alias: edge-1", "alias: e\nsandbox: {scratchBytes: 1000}"),
                "sandbox.scratchBytes",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }
}
