//! `DeeployJob`: one workload of a project, run on `replicas` independent edge nodes and paid for
//! in advance from the CSP's escrow.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, LocalRef, SealedValue, SecretKeyRef};
use crate::manifest::Kind;
use crate::quantity::Quantity;

/// Fewest epochs a job can be prepaid for; the escrow contract enforces the same bound.
pub const MIN_DURATION_EPOCHS: u32 = 30;

/// The most replicas a job may ask for: node-facing workload ids number a job's replicas
/// below 10 000 (the oracle checks the two agree at compile time).
pub const MAX_REPLICAS: u32 = 9_999;

/// Desired state of a DeeployJob: what to run, on how many nodes, for how long.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "deeploy.ratio1.ai",
    version = "v1alpha1",
    kind = "DeeployJob",
    namespaced,
    status = "DeeployJobStatus",
    derive = "PartialEq",
    shortname = "djob",
    category = "r1",
    doc = "A workload run by Ratio1 edge nodes on several independent nodes, prepaid in USDC from the CSP's escrow and kept running by the oracle network.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Replicas running / wanted"
    ),
    printcolumn(
        name = "Budget Left",
        type_ = "string",
        json_path = ".status.budgetLeft",
        description = "USDC still locked for this job"
    ),
    printcolumn(
        name = "Epoch",
        type_ = "integer",
        json_path = ".status.currentEpoch",
        priority = 1,
        description = "Current epoch"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DeeployJobSpec {
    /// The DeeployProject (same namespace) this job belongs to.
    pub project_ref: LocalRef,
    /// The Escrow (same namespace) that pays for this job.
    pub escrow_ref: LocalRef,
    /// Kind of workload: `container` (any image), `service` (a packaged service such as a
    /// database) or `native` (a plugin run by the node itself). Sets the price family.
    #[serde(rename = "type", default)]
    pub job_type: JobType,
    /// Container image reference, e.g. `ghcr.io/acme/web:1.4`. Required for `container` and
    /// `service` jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Name of the native plugin to run. Required for `native` jobs, forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Entrypoint override; the image's entrypoint when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments to the entrypoint; the image's default command when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables of the workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Ports the workload listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Compute the workload needs on each node; also selects the price class.
    pub resources: Resources,
    /// Number of independent nodes running one replica each.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 9999))]
    pub replicas: u32,
    /// Node labels a node must carry to be chosen, e.g. `kyb: "true"` or `region: eu`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Number of epochs paid in advance (at least 30).
    #[schemars(range(min = 30))]
    pub duration_epochs: u32,
    /// Tunnel (same namespace) that exposes the first port publicly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_ref: Option<LocalRef>,
    /// How to tell that a replica is healthy; used before a rollout stops the old version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Credentials for the image's registry, when it is private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<ImagePullSecret>,
    /// Less isolation than a node's default sandbox; only nodes whose operator allows it run
    /// such a replica, others report it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
}

/// Less isolation than a node's default sandbox (user namespace, read-only root file system).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    /// Share the host's users: no user namespace, so root in the container is root on the node.
    #[serde(default)]
    pub host_users: bool,
    /// Let the workload write its root file system (otherwise only `/tmp` and `/scratch`).
    #[serde(default)]
    pub writable_root_filesystem: bool,
    /// More isolation instead: no network interface beyond loopback on any node, so the
    /// replicas reach the project's services (by name) and nothing outside their node.
    #[serde(default)]
    pub no_egress: bool,
}

fn one() -> u32 {
    1
}

impl DeeployJobSpec {
    /// The objects of the job's namespace it refers to, with the field that names each: its
    /// project and escrow, and its tunnel when it has one. The one list of a job's references
    /// that validation, deletion protection and the kube door all read.
    pub fn references(&self) -> Vec<(Kind, &'static str, &str)> {
        let mut refs = vec![
            (
                Kind::Project,
                "spec.projectRef",
                self.project_ref.name.as_str(),
            ),
            (
                Kind::Escrow,
                "spec.escrowRef",
                self.escrow_ref.name.as_str(),
            ),
        ];
        if let Some(tunnel) = &self.tunnel_ref {
            refs.push((Kind::Tunnel, "spec.tunnelRef", tunnel.name.as_str()));
        }
        refs
    }
}

/// Kind of workload, which selects the price family in the catalogue.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum JobType {
    /// Any container image.
    #[default]
    Container,
    /// A packaged service (database, cache, queue) from an image.
    Service,
    /// A native plugin executed by the node agent.
    Native,
}

impl JobType {
    /// The name used in manifests and the price catalogue.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Service => "service",
            Self::Native => "native",
        }
    }
}

/// One environment variable: a literal value or a value read from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Literal value. Exactly one of `value` and `valueFrom` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from. Exactly one of `value` and `valueFrom` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Source of an environment variable's value. Exactly one of `secretKeyRef` and `sealed` is
/// set; either way the value reaches the nodes sealed to each node's key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// A key of a Kubernetes Secret in the job's namespace (the Kubernetes path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// The value sealed to every oracle by `r1ctl secret seal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedValue>,
}

/// Registry credentials for a private image, in Docker's config format. Exactly one of `name`
/// and `sealed` is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePullSecret {
    /// A Kubernetes Secret of type `kubernetes.io/dockerconfigjson` in the job's namespace (the
    /// Kubernetes path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A Docker config (`{"auths": …}`) sealed to every oracle by `r1ctl secret seal
    /// --docker-server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedValue>,
}

/// Transport protocol of a port.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Protocol {
    /// TCP.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
}

/// A port the workload listens on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Optional name, unique within the job, e.g. `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port inside the container (1-65535).
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: u32,
    /// Port opened on the node's host (1-65535); the node picks one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub host_port: Option<u32>,
    /// `TCP` (default) or `UDP`.
    #[serde(default)]
    pub protocol: Protocol,
}

/// Compute requested on each node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Price class from the catalogue, e.g. `entry`; the cheapest class that fits is used when
    /// unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// CPU, in cores or millicores: `2`, `500m`.
    pub cpu: Quantity,
    /// Memory: `512Mi`, `2Gi`.
    pub memory: Quantity,
    /// Scratch disk: `8Gi`. Defaults to the class's disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Quantity>,
    /// Whole GPUs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpu: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How the node checks that a replica is healthy. Exactly one of `http`, `tcp`, `exec` is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Healthy when `GET http://127.0.0.1:<port><path>` answers 2xx or 3xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// Healthy when a TCP connection to the port opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// Healthy when the command exits 0 inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheck>,
    /// Seconds to wait after start before the first check.
    #[serde(default)]
    pub initial_delay_seconds: u32,
    /// Seconds between checks (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub period_seconds: Option<u32>,
    /// Consecutive failures before the replica counts as unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_threshold: Option<u32>,
}

/// An HTTP health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// Request path, starting with `/`.
    #[serde(default = "root_path")]
    pub path: String,
    /// Container port to query.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u32,
}

fn root_path() -> String {
    "/".into()
}

/// A TCP health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpCheck {
    /// Container port to connect to.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u32,
}

/// A command health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecCheck {
    /// Command and arguments run inside the container.
    pub command: Vec<String>,
}

/// Lifecycle phase of a job.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum JobPhase {
    /// Accepted, not funded on chain yet.
    Pending,
    /// Budget locked in escrow; waiting for placement.
    Funded,
    /// Nodes chosen and deploy commands sent.
    Scheduled,
    /// All replicas running on validated nodes.
    Running,
    /// Fewer replicas running than wanted, or a rollout failed.
    Degraded,
    /// Budget spent or job deleted; workloads being removed.
    Closing,
    /// Closed on chain; nothing runs.
    Closed,
    /// Cannot proceed; the conditions say why.
    Failed,
}

/// Where one replica runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaAssignment {
    /// Replica index, 0-based.
    pub replica: u32,
    /// EVM address of the node running it.
    pub node: String,
    /// What the node last reported: `running`, `starting`, `pulling`, `imagePullBackOff`,
    /// `restarting`, `exited`, `failed`, `unknown`.
    pub state: String,
    /// When the replica was placed on this node (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// What the node adds to the state: a pull's progress, why the image cannot be pulled,
    /// why the replica failed or its last exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Observed state of a DeeployJob, written by the oracle controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeeployJobStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<JobPhase>,
    /// Conditions: `Funded`, `Scheduled`, `Validated`, `Running`, `Degraded`, `Closed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Replicas running over replicas wanted, e.g. `1/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Replicas running and healthy.
    #[serde(default)]
    pub ready_replicas: u32,
    /// Node chosen for each replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<ReplicaAssignment>,
    /// Job id in the escrow contract (decimal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_job_id: Option<String>,
    /// Price class the job was funded under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_class: Option<String>,
    /// USDC charged per epoch for all replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_epoch: Option<String>,
    /// USDC still locked for this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_left: Option<String>,
    /// Current epoch as the oracle sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
    /// Last epoch the job is paid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_epoch: Option<u64>,
    /// Epoch of the last on-chain consensus on this job's node set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_consensus_epoch: Option<u64>,
    /// `metadata.generation` last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
