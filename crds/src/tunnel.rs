//! `Tunnel`: a public endpoint that forwards to a job's first port through Cloudflare, ngrok or
//! a self-hosted bore server; the node running each replica runs the tunnel client beside it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, SealedValue, SecretKeyRef};

/// Desired state of a Tunnel.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "deeploy.ratio1.ai",
    version = "v1alpha1",
    kind = "Tunnel",
    namespaced,
    status = "TunnelStatus",
    derive = "PartialEq",
    shortname = "tun",
    category = "r1",
    doc = "A public endpoint for a job, served by a tunnel provider running beside the workload.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TunnelSpec {
    /// Tunnel provider: `cloudflare`, `ngrok` or `bore`.
    pub provider: TunnelProvider,
    /// Secret key holding the provider token (Cloudflare tunnel token, ngrok auth token or the
    /// bore server's secret), read and sealed by a Kubernetes-mode oracle. At most one of
    /// `tokenSecretRef` and `sealedToken`; cloudflare and ngrok need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// The token sealed to every oracle by `r1ctl secret seal` (the Deeploy API path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_token: Option<SealedValue>,
    /// Public hostname, e.g. `shop.example.com` (cloudflare and ngrok).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The bore server to tunnel through (provider `bore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bore: Option<BoreServer>,
}

/// A self-hosted bore server (`bore server`, crate `bore-cli`): the public URL is
/// `server:port`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoreServer {
    /// The server's host name or IP address; clients reach its control port 7835.
    pub server: String,
    /// The public port to ask the server for (1024-65535); the server picks one when unset,
    /// and then the URL changes when the replica moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// Supported tunnel providers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TunnelProvider {
    /// Cloudflare Tunnel (`cloudflared`).
    Cloudflare,
    /// ngrok agent.
    Ngrok,
    /// bore client to a self-hosted bore server.
    Bore,
}

impl TunnelProvider {
    /// The provider's name in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cloudflare => "cloudflare",
            Self::Ngrok => "ngrok",
            Self::Bore => "bore",
        }
    }
}

/// Lifecycle phase of a tunnel.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TunnelPhase {
    /// Not yet used by a running job.
    Pending,
    /// Serving traffic.
    Ready,
    /// The provider refused the token or the connector keeps failing.
    Failed,
}

/// Observed state of a Tunnel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TunnelPhase>,
    /// Public URL once the tunnel serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Each replica's tunnel client, as its node reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<TunnelConnection>,
    /// Conditions, e.g. `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One replica's tunnel client.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelConnection {
    /// The job using the tunnel.
    pub job: String,
    /// The replica's workload id (`<chain job>/<replica>`).
    pub replica: String,
    /// The node running the client (checksummed EVM address).
    pub node: String,
    /// Whether the client runs and answers its health check.
    pub up: bool,
    /// The URL the client announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Restarts since its last long healthy run.
    #[serde(default)]
    pub restarts: u32,
    /// Why it is down, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
