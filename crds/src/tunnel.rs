//! `Tunnel`: a public hostname that forwards to a job's first port through Cloudflare or ngrok.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, SecretKeyRef};

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
    printcolumn(name = "Hostname", type_ = "string", json_path = ".spec.hostname"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TunnelSpec {
    /// Tunnel provider: `cloudflare` or `ngrok`.
    pub provider: TunnelProvider,
    /// Secret key holding the provider token (Cloudflare tunnel token or ngrok auth token).
    pub token_secret_ref: SecretKeyRef,
    /// Public hostname, e.g. `shop.example.com`.
    pub hostname: String,
}

/// Supported tunnel providers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TunnelProvider {
    /// Cloudflare Tunnel (`cloudflared`).
    Cloudflare,
    /// ngrok agent.
    Ngrok,
}

impl TunnelProvider {
    /// The provider's name in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cloudflare => "cloudflare",
            Self::Ngrok => "ngrok",
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
    /// Conditions, e.g. `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
