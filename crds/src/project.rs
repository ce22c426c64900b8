//! `DeeployProject`: a CSP's group of jobs (a dApp, a CMS, a database cluster).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Condition;

/// Desired state of a DeeployProject.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "deeploy.ratio1.ai",
    version = "v1alpha1",
    kind = "DeeployProject",
    namespaced,
    status = "DeeployProjectStatus",
    derive = "PartialEq",
    shortname = "dproj",
    category = "r1",
    doc = "A CSP's project: a named group of DeeployJobs owned by one CSP address.",
    printcolumn(
        name = "Owner",
        type_ = "string",
        json_path = ".spec.owner",
        description = "CSP address"
    ),
    printcolumn(
        name = "Jobs",
        type_ = "integer",
        json_path = ".status.jobCount",
        description = "Jobs in the project"
    ),
    printcolumn(
        name = "Spend",
        type_ = "string",
        json_path = ".status.spend",
        description = "USDC locked for the project's jobs so far"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DeeployProjectSpec {
    /// EVM address of the CSP that owns the project; requests on its jobs must be signed by it.
    pub owner: String,
    /// Human-readable project name shown in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What the project is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Projects of the same namespace whose jobs may read this project's CSTORE namespace (its
    /// own jobs read and write it; nobody else writes it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cstore_readers: Vec<String>,
    /// Which of the project's jobs may call which by name (`api:8080`); without it every job
    /// may call every other. Jobs of other projects never can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicy>,
}

/// Calls allowed between a project's jobs: any call no rule allows is refused.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicy {
    /// The rules.
    #[serde(default)]
    pub allow: Vec<CallRule>,
}

/// One rule: the jobs named in `from` may call the jobs named in `to`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallRule {
    /// The calling jobs, by name.
    pub from: Vec<String>,
    /// The jobs they may call, by name.
    pub to: Vec<String>,
}

impl NetworkPolicy {
    /// Whether job `caller` may call job `served`, by their names.
    pub fn allows(&self, caller: &str, served: &str) -> bool {
        self.allow.iter().any(|rule| {
            rule.from.iter().any(|f| f == caller) && rule.to.iter().any(|t| t == served)
        })
    }
}

/// Observed state of a DeeployProject.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeeployProjectStatus {
    /// Number of DeeployJobs referencing this project.
    #[serde(default)]
    pub job_count: u32,
    /// USDC locked for the project's jobs so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<String>,
    /// Conditions, e.g. `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
