//! The messages oracles and nodes exchange. Each travels as the payload of a signed
//! [`Envelope`](crate::Envelope); [`Message::KIND`](crate::Message::KIND) ties a payload type to its envelope kind so a
//! deploy command can never be read as a heartbeat.

use std::collections::BTreeMap;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::envelope::{Message, MessageKind};

/// One replica of one on-chain job: what a node runs and an oracle schedules.
///
/// A rollout runs the old and the new generation of a replica side by side, so each
/// generation gets its own id: `replica = tag × 10 000 + index` (see [`WorkloadId::of`]), where
/// the tag names the generation and the index is the replica's place in the job. Nodes treat
/// the number as opaque; oracles and `r1ctl` read it back with [`WorkloadId::tag`] and
/// [`WorkloadId::index`] (`12/4710001` is job 12, tag 471, replica 1).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct WorkloadId {
    /// Job id in the escrow contract.
    pub job: u64,
    /// Generation tag and replica index, as `tag × REPLICA_STRIDE + index`.
    pub replica: u32,
}

impl WorkloadId {
    /// How far apart the ids of one generation's replicas and the next tag's are: a job has
    /// fewer replicas than this.
    pub const REPLICA_STRIDE: u32 = 10_000;

    /// The largest tag whose ids all fit the `u32` replica number.
    pub const MAX_TAG: u32 = (u32::MAX - (Self::REPLICA_STRIDE - 1)) / Self::REPLICA_STRIDE;

    /// The id of replica `index` of the generation tagged `tag` of on-chain job `job`.
    pub const fn of(job: u64, tag: u32, index: u32) -> Self {
        Self {
            job,
            replica: tag * Self::REPLICA_STRIDE + index,
        }
    }

    /// The generation tag the id carries.
    pub const fn tag(&self) -> u32 {
        self.replica / Self::REPLICA_STRIDE
    }

    /// The replica's index in its job.
    pub const fn index(&self) -> u32 {
        self.replica % Self::REPLICA_STRIDE
    }
}

/// Amounts of what a replica reserves and a node offers: the one capacity type of the node
/// agent, the heartbeat and the oracle's placement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU, millicores.
    pub cpu_millis: u64,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// Disk, bytes.
    pub disk_bytes: u64,
    /// Whole GPUs.
    pub gpu: u32,
}

impl Resources {
    /// What is left of `self` once `used` is taken (saturating at zero).
    pub const fn minus(&self, used: &Self) -> Self {
        Self {
            cpu_millis: self.cpu_millis.saturating_sub(used.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(used.memory_bytes),
            disk_bytes: self.disk_bytes.saturating_sub(used.disk_bytes),
            gpu: self.gpu.saturating_sub(used.gpu),
        }
    }

    /// `self` and `more` together (saturating).
    pub const fn plus(&self, more: &Self) -> Self {
        Self {
            cpu_millis: self.cpu_millis.saturating_add(more.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(more.memory_bytes),
            disk_bytes: self.disk_bytes.saturating_add(more.disk_bytes),
            gpu: self.gpu.saturating_add(more.gpu),
        }
    }
}

/// Resources of a node: totals and what is still free for new workloads (totals minus the
/// reservations of the workloads it runs; disk as the filesystem reports it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeResources {
    /// What the node has.
    pub total: Resources,
    /// What is still free.
    pub free: Resources,
    /// GPU model (e.g. `NVIDIA L4`), when the node has GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_model: Option<String>,
}

/// What a workload is doing, as its node sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(tag = "state", rename_all = "camelCase", deny_unknown_fields)]
pub enum WorkloadState {
    /// Image being imported or container being created.
    Starting,
    /// Image being pulled from a registry or from peers: `percent` of its bytes are here.
    Pulling {
        /// Share of the image's bytes downloaded, 0-100 (0 until its manifest is read).
        percent: u8,
    },
    /// The image cannot be pulled (missing tag, credentials refused, registry down, corrupt
    /// blob); the node tries again with backoff, as Kubernetes' `ImagePullBackOff`.
    ImagePullBackOff {
        /// Why, for the CSP.
        reason: String,
    },
    /// Running (and healthy, when it has a health check).
    Running,
    /// Crashed and waiting to be restarted with backoff.
    Restarting {
        /// Restarts so far.
        restarts: u32,
        /// Exit code of the last run.
        last_exit_code: i32,
        /// Why it ended, when known (`OOMKilled`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Stopped with an exit code and not restarted.
    Exited {
        /// Exit code.
        code: i32,
    },
    /// Cannot run: bad image, killed for exceeding memory, unsupported spec.
    Failed {
        /// Why, for humans.
        reason: String,
    },
}

impl WorkloadState {
    /// The name of the state (`starting`, `running`, `imagePullBackOff`, …), as metrics,
    /// listings and statuses show it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Pulling { .. } => "pulling",
            Self::ImagePullBackOff { .. } => "imagePullBackOff",
            Self::Running => "running",
            Self::Restarting { .. } => "restarting",
            Self::Exited { .. } => "exited",
            Self::Failed { .. } => "failed",
        }
    }

    /// What a person needs beyond the name: a pull's progress, why it failed or backs off,
    /// the last exit; empty when the name says it all.
    pub fn detail(&self) -> String {
        match self {
            Self::Starting | Self::Running => String::new(),
            Self::Pulling { percent } => format!("{percent}% of the image pulled"),
            Self::ImagePullBackOff { reason } | Self::Failed { reason } => reason.clone(),
            Self::Restarting {
                last_exit_code,
                reason: Some(reason),
                ..
            } => format!("{reason} (exit {last_exit_code})"),
            Self::Restarting { last_exit_code, .. } => format!("exit {last_exit_code}"),
            Self::Exited { code } => format!("exit {code}"),
        }
    }
}

/// One workload in a heartbeat or status report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct WorkloadReport {
    /// Which replica of which job.
    pub id: WorkloadId,
    /// Revision of the spec running (see [`WorkloadSpec::revision`]).
    pub revision: String,
    /// Current state.
    pub state: WorkloadState,
    /// Digest of the image the container runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// Ports exposed on the node, with the host port chosen for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// Result of the workload's health check; `None` when it has none or none ran yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// The tunnel client the node runs for the replica, when its job has a tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelReport>,
}

/// How a replica's tunnel client is doing on its node, as the oracles fold it into the
/// `Tunnel`'s status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct TunnelReport {
    /// The public URL the client announced (or the configured hostname), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether the client runs and its last health check passed.
    pub up: bool,
    /// Restarts since the last long healthy run.
    #[serde(default)]
    pub restarts: u32,
    /// Why the client is down or last failed (a missing binary, a refused token), for the CSP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TunnelReport {
    /// Longest error text a report carries; longer text is cut.
    pub const MAX_ERROR_LEN: usize = 512;
    /// Longest URL a report carries.
    pub const MAX_URL_LEN: usize = 256;
}

/// Liveness proof and capacity report, sent by every node every `interval_ms` (10 s unless the
/// network chose otherwise).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Operator-chosen node name for displays.
    pub alias: String,
    /// How often this node sends heartbeats (ms), so oracles judge its silence by its own
    /// pace: a node beating faster than the network is found lost sooner, one beating slower
    /// is still judged (and paid) by the network's interval, and is flagged. 0: not announced.
    #[serde(default)]
    pub interval_ms: u64,
    /// Where peers reach this node (libp2p multiaddrs), which the oracles put on their roster;
    /// at most [`Roster::MAX_ADDRS_PER_NODE`] of at most [`Roster::MAX_ADDR_LEN`] bytes are
    /// carried over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p2p_addrs: Vec<String>,
    /// Agent version.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Capacity and free resources.
    pub resources: NodeResources,
    /// Node labels used by job selectors (`kyb`, `ratio1.ai/region`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Every workload the node runs.
    #[serde(default)]
    pub workloads: Vec<WorkloadReport>,
    /// Workloads that no longer run here but whose logs the node keeps for their owners, newest
    /// first; receivers read at most [`Heartbeat::MAX_RETIRED_LOGS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_logs: Vec<WorkloadId>,
}

impl Heartbeat {
    /// Retired workloads' logs a heartbeat names.
    pub const MAX_RETIRED_LOGS: usize = 32;
}

impl Message for Heartbeat {
    const KIND: MessageKind = MessageKind::Heartbeat;
}

/// Transport protocol of an exposed port.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// A port a workload exposes on its node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// Port inside the container.
    pub container_port: u16,
    /// Port on the host; the node chooses one when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Transport protocol.
    pub protocol: PortProtocol,
}

/// How a node checks that a workload is healthy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "probe", rename_all = "camelCase", deny_unknown_fields)]
pub enum HealthProbe {
    /// `GET http://127.0.0.1:<port><path>` answers 2xx or 3xx.
    Http {
        /// Container port.
        port: u16,
        /// Request path.
        path: String,
    },
    /// A TCP connection to the port opens.
    Tcp {
        /// Container port.
        port: u16,
    },
    /// The command exits 0 inside the container.
    Exec {
        /// Command and arguments.
        command: Vec<String>,
    },
}

/// Health-check schedule around a probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// What to check.
    pub probe: HealthProbe,
    /// Seconds after start before the first check.
    pub initial_delay_s: u32,
    /// Seconds between checks.
    pub period_s: u32,
    /// Consecutive failures that make the workload unhealthy.
    pub failure_threshold: u32,
}

/// Everything a node needs to run one replica.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Which replica of which job.
    pub id: WorkloadId,
    /// Content hash of the job spec; a new revision replaces the old one.
    pub revision: String,
    /// Image reference.
    pub image: String,
    /// Entrypoint override.
    #[serde(default)]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment, resolved.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Exposed ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// CPU limit in millicores.
    pub cpu_millis: u64,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// GPUs to pass through.
    #[serde(default)]
    pub gpu: u32,
    /// Health check, when the job has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheckSpec>,
    /// Secret env values and registry credentials, sealed to the node this command is for; not
    /// part of the revision (each sealing differs; the revision covers what the CSP sealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<crate::secrets::SealedSecrets>,
    /// The public tunnel to run beside the replica, forwarding to its first port; its token,
    /// when it needs one, travels in [`WorkloadSpec::secrets`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<WorkloadTunnel>,
    /// Less isolation than a node's default that the job asks for; a node whose operator does
    /// not allow it reports the replica `failed` rather than run it so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityRequest>,
}

/// How a job's isolation differs from a node's default sandbox (each off by default): less,
/// only where the node's operator allows it, or, with `no_egress`, more.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityRequest {
    /// Share the host's users: no user namespace, so root in the container is root on the host.
    #[serde(default)]
    pub host_users: bool,
    /// A writable root file system: the image's files may be changed in place.
    #[serde(default)]
    pub writable_root_filesystem: bool,
    /// No interface beyond loopback, whatever the node's egress: the replica reaches its
    /// project's services and nothing outside its node.
    #[serde(default)]
    pub no_egress: bool,
}

impl SecurityRequest {
    /// Label a node carries (value [`Self::ALLOWED`]) when it runs jobs asking for `hostUsers`.
    pub const HOST_USERS_LABEL: &'static str = "sandbox.ratio1.ai/host-users";
    /// Label a node carries when it runs jobs asking for `writableRootFilesystem`.
    pub const WRITABLE_ROOT_LABEL: &'static str = "sandbox.ratio1.ai/writable-root-filesystem";
    /// Value of those labels.
    pub const ALLOWED: &'static str = "allowed";

    /// The node labels a node must carry to run a job asking for this, so placement picks
    /// only nodes whose operator allows it.
    pub fn required_labels(&self) -> Vec<(&'static str, &'static str)> {
        [
            (self.host_users, Self::HOST_USERS_LABEL),
            (self.writable_root_filesystem, Self::WRITABLE_ROOT_LABEL),
        ]
        .into_iter()
        .filter(|(asked, _)| *asked)
        .map(|(_, label)| (label, Self::ALLOWED))
        .collect()
    }
}

/// A tunnel client a node runs beside a replica.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadTunnel {
    /// The `Tunnel` resource's name, for logs and metrics.
    pub name: String,
    /// Which client, and where it connects.
    pub provider: TunnelClient,
}

/// The tunnel providers a node runs clients of.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "provider", rename_all = "camelCase", deny_unknown_fields)]
pub enum TunnelClient {
    /// `cloudflared tunnel run` with the tunnel's token; serves `hostname`.
    Cloudflare {
        /// The public hostname the tunnel is routed to.
        hostname: String,
    },
    /// The ngrok agent with the account's auth token, on `hostname` (an ngrok domain).
    Ngrok {
        /// The reserved domain.
        hostname: String,
    },
    /// `bore local` to a self-hosted bore server; the token, when set, is the server's secret.
    Bore {
        /// The server's host (its control port is bore's fixed 7835).
        server: String,
        /// The public port to ask for; the server picks one when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    },
}

impl WorkloadSpec {
    /// Whether `other` orders the same workload: equal but for the sealing of the secrets,
    /// which differs each time an oracle seals the same secrets (the revision covers them).
    pub fn same_workload(&self, other: &Self) -> bool {
        let unsealed = |spec: &Self| Self {
            secrets: None,
            ..spec.clone()
        };
        self.secrets.is_some() == other.secrets.is_some() && unsealed(self) == unsealed(other)
    }

    /// What the replica reserves on its node (disk is not reserved per replica).
    pub const fn reserves(&self) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis,
            memory_bytes: self.memory_bytes,
            disk_bytes: 0,
            gpu: self.gpu,
        }
    }
}

/// An oracle's order to a node to run (or keep running) a workload. Idempotent: repeating it
/// changes nothing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeployCommand {
    /// The node the command is for; nodes refuse commands addressed to others, so a command
    /// captured on one node's topic cannot be replayed to another.
    pub target: Address,
    /// What to run.
    pub workload: WorkloadSpec,
}

impl Message for DeployCommand {
    const KIND: MessageKind = MessageKind::Deploy;
}

/// An oracle's question to a node it suspects gone (the broker published the node's
/// [`NodeGone`]): a live node answers at once with a heartbeat, and one that does not answer
/// within the oracle's patience is lost without waiting out the heartbeat grace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LivenessProbe {
    /// The node asked; nodes refuse probes addressed to others.
    pub target: Address,
}

impl Message for LivenessProbe {
    const KIND: MessageKind = MessageKind::Probe;
}

/// The last will a node leaves with the broker, signed when it connects: the broker publishes
/// it on the node's status topic when the session ends without a goodbye (the agent was
/// killed, its host or network went away). Only a suspicion, since it is old and the broker
/// relays it: the oracles probe the node ([`LivenessProbe`]) before anything moves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct NodeGone {}

impl Message for NodeGone {
    const KIND: MessageKind = MessageKind::Gone;
}

/// An oracle's order to a node to stop a workload and forget it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StopCommand {
    /// The node the command is for.
    pub target: Address,
    /// What to stop.
    pub workload: WorkloadId,
    /// Why, for the node's log: `job closed`, `not on the paid roster`, `moved`.
    pub reason: String,
}

impl Message for StopCommand {
    const KIND: MessageKind = MessageKind::Stop;
}

/// A node's report after a workload changed state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JobStatusReport {
    /// The workload and its new state.
    pub workload: WorkloadReport,
    /// Details for humans (last log line, error text).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl JobStatusReport {
    /// What a node says about a workload it stopped and removed: no revision, exited.
    pub fn removed(id: WorkloadId) -> Self {
        Self {
            workload: WorkloadReport {
                id,
                revision: String::new(),
                state: WorkloadState::Exited { code: 0 },
                image_digest: None,
                ports: Vec::new(),
                healthy: None,
                tunnel: None,
            },
            message: "stopped and removed".into(),
        }
    }

    /// Whether this report says the workload was stopped and removed (see [`Self::removed`]).
    pub fn is_removal(&self) -> bool {
        self.workload.revision.is_empty()
    }
}

impl Message for JobStatusReport {
    const KIND: MessageKind = MessageKind::JobStatus;
}

/// What one oracle observed during an epoch, exchanged so that oracles can agree on a median.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OracleObservation {
    /// Epoch observed.
    pub epoch: u64,
    /// Availability byte per node: `floor(received / expected × 255)`.
    pub availability: BTreeMap<Address, u8>,
    /// Nodes seen running each job, sorted.
    #[serde(default)]
    pub job_nodes: BTreeMap<u64, Vec<Address>>,
}

impl Message for OracleObservation {
    const KIND: MessageKind = MessageKind::Observation;
}

/// A CSP's signed Deeploy API request (apply or delete), relayed by the oracle that accepted it
/// so that every oracle holds the same desired state. Receivers check the CSP's own signature
/// over the request, so a relaying oracle can delay a request but never forge or alter one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RelayedRequest {
    /// HTTP method (`POST` or `DELETE`).
    pub method: String,
    /// Path and query as signed.
    pub path: String,
    /// The CSP's address header.
    pub address: String,
    /// The timestamp header (unix ms).
    pub timestamp: String,
    /// The signature header.
    pub signature: String,
    /// The request body (UTF-8 YAML or JSON; empty for deletes).
    pub body: String,
}

impl Message for RelayedRequest {
    const KIND: MessageKind = MessageKind::Request;
}

/// An oracle's periodic word to the other oracles that it is there. Its signature tells them
/// the oracle's public key, which the Deeploy API lists so that CSPs can seal secrets to every
/// oracle (see [`crate::oracle_sealed`]).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OraclePresence {}

impl Message for OraclePresence {
    const KIND: MessageKind = MessageKind::Presence;
}

/// The oracles' list of who may talk peer to peer: every licensed node with the listen
/// multiaddrs it announces. Nodes connect only to the nodes on the newest roster they accepted
/// (see the `r1-p2p` crate) and drop connections to nodes that leave it.
///
/// Limits ([`Roster::check`]) keep a roster within one MQTT packet and bound what a receiver
/// parses: at most [`Roster::MAX_NODES`] entries, [`Roster::MAX_ADDRS_PER_NODE`] addresses per
/// entry, [`Roster::MAX_ADDR_LEN`] bytes per address.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    /// When the oracle built this roster (ms since the Unix epoch); the newest one wins.
    pub issued_ms: u64,
    /// The nodes allowed, each once.
    pub nodes: Vec<RosterEntry>,
}

/// One node on a [`Roster`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    /// The node's address; its libp2p peer id carries the same secp256k1 key.
    pub address: Address,
    /// Listen multiaddrs as text (`/ip4/203.0.113.7/tcp/4001`, `/ip4/…/udp/4001/quic-v1`).
    #[serde(default)]
    pub addrs: Vec<String>,
}

/// Why a [`Roster`] is refused before anything in it is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterLimit {
    /// More entries than [`Roster::MAX_NODES`].
    #[error("roster lists {0} nodes; at most {max} are accepted", max = Roster::MAX_NODES)]
    TooManyNodes(usize),
    /// An entry with more addresses than [`Roster::MAX_ADDRS_PER_NODE`].
    #[error("node {0} announces {1} addresses; at most {max} are accepted", max = Roster::MAX_ADDRS_PER_NODE)]
    TooManyAddrs(Address, usize),
    /// An address longer than [`Roster::MAX_ADDR_LEN`] bytes.
    #[error("node {0} announces an address of {1} bytes; at most {max} are accepted", max = Roster::MAX_ADDR_LEN)]
    AddrTooLong(Address, usize),
    /// The same node twice.
    #[error("node {0} is listed twice")]
    Duplicate(Address),
}

impl Roster {
    /// Most nodes one roster lists.
    pub const MAX_NODES: usize = 4096;
    /// Most listen addresses per node.
    pub const MAX_ADDRS_PER_NODE: usize = 4;
    /// Longest listen address, in bytes.
    pub const MAX_ADDR_LEN: usize = 128;

    /// Checks the limits and that no node is listed twice.
    pub fn check(&self) -> Result<(), RosterLimit> {
        if self.nodes.len() > Self::MAX_NODES {
            return Err(RosterLimit::TooManyNodes(self.nodes.len()));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.nodes.len());
        for entry in &self.nodes {
            if entry.addrs.len() > Self::MAX_ADDRS_PER_NODE {
                return Err(RosterLimit::TooManyAddrs(entry.address, entry.addrs.len()));
            }
            if let Some(long) = entry.addrs.iter().find(|a| a.len() > Self::MAX_ADDR_LEN) {
                return Err(RosterLimit::AddrTooLong(entry.address, long.len()));
            }
            if !seen.insert(entry.address) {
                return Err(RosterLimit::Duplicate(entry.address));
            }
        }
        Ok(())
    }
}

impl Message for Roster {
    const KIND: MessageKind = MessageKind::Roster;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{Roster, RosterEntry, RosterLimit, WorkloadId, WorkloadSpec};
    use alloy_primitives::Address;

    #[test]
    fn a_new_sealing_of_the_same_secrets_is_the_same_workload() {
        let sealed = |text: &str| {
            Some(crate::secrets::SealedSecrets {
                sealed: text.into(),
            })
        };
        let spec = WorkloadSpec {
            id: WorkloadId { job: 1, replica: 0 },
            revision: "r".into(),
            image: "a/b:1".into(),
            command: Vec::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            ports: Vec::new(),
            cpu_millis: 100,
            memory_bytes: 1 << 20,
            gpu: 0,
            health: None,
            secrets: sealed("0x01"),
            tunnel: None,
            security: None,
        };
        let resealed = WorkloadSpec {
            secrets: sealed("0x02"),
            ..spec.clone()
        };
        assert!(spec.same_workload(&resealed));
        let without = WorkloadSpec {
            secrets: None,
            ..spec.clone()
        };
        assert!(!spec.same_workload(&without));
        let other = WorkloadSpec {
            revision: "s".into(),
            ..resealed
        };
        assert!(!spec.same_workload(&other));
    }

    #[test]
    fn workload_ids_carry_tag_and_index() {
        let id = WorkloadId::of(12, 471, 1);
        assert_eq!(id.replica, 4_710_001);
        assert_eq!((id.tag(), id.index()), (471, 1));
        let last = WorkloadId::of(1, WorkloadId::MAX_TAG, WorkloadId::REPLICA_STRIDE - 1);
        assert_eq!(
            (last.tag(), last.index()),
            (WorkloadId::MAX_TAG, WorkloadId::REPLICA_STRIDE - 1)
        );
    }

    #[test]
    fn roster_limits() {
        let entry = |byte: u8, addrs: Vec<String>| RosterEntry {
            address: Address::repeat_byte(byte),
            addrs,
        };
        let ok = Roster {
            issued_ms: 1,
            nodes: vec![
                entry(
                    1,
                    vec!["/ip4/127.0.0.1/tcp/1".into(); Roster::MAX_ADDRS_PER_NODE],
                ),
                entry(2, vec!["a".repeat(Roster::MAX_ADDR_LEN)]),
            ],
        };
        assert_eq!(ok.check(), Ok(()));
        let mut many = ok.clone();
        many.nodes[0].addrs.push("/ip4/127.0.0.1/tcp/2".into());
        assert_eq!(
            many.check(),
            Err(RosterLimit::TooManyAddrs(Address::repeat_byte(1), 5))
        );
        let mut long = ok.clone();
        long.nodes[1].addrs[0].push('a');
        assert_eq!(
            long.check(),
            Err(RosterLimit::AddrTooLong(
                Address::repeat_byte(2),
                Roster::MAX_ADDR_LEN + 1
            ))
        );
        let mut twice = ok.clone();
        twice.nodes.push(entry(1, vec![]));
        assert_eq!(
            twice.check(),
            Err(RosterLimit::Duplicate(Address::repeat_byte(1)))
        );
        let crowd = Roster {
            issued_ms: 1,
            nodes: (0..=Roster::MAX_NODES)
                .map(|i| RosterEntry {
                    address: Address::left_padding_from(&(i as u64).to_be_bytes()),
                    addrs: vec![],
                })
                .collect(),
        };
        assert_eq!(
            crowd.check(),
            Err(RosterLimit::TooManyNodes(Roster::MAX_NODES + 1))
        );
    }
}
