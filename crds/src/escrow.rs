//! `Escrow`: the CSP's escrow contract on an EVM chain, which locks job budgets in USDC.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Condition;

/// Desired state of an Escrow.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "deeploy.ratio1.ai",
    version = "v1alpha1",
    kind = "Escrow",
    namespaced,
    status = "EscrowStatus",
    derive = "PartialEq",
    shortname = "esc",
    category = "r1",
    doc = "A CSP escrow contract (beacon proxy) holding the USDC that pays for the CSP's jobs.",
    printcolumn(name = "Chain", type_ = "integer", json_path = ".spec.chainId"),
    printcolumn(name = "Address", type_ = "string", json_path = ".status.address"),
    printcolumn(
        name = "Locked",
        type_ = "string",
        json_path = ".status.locked",
        description = "USDC locked for running jobs"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EscrowSpec {
    /// EVM chain id, e.g. 8453 for Base, 31337 for a local devnet.
    pub chain_id: u64,
    /// EVM address of the CSP that owns the escrow (its `cspOwner`).
    pub owner: String,
    /// Address of an existing escrow contract to attach; a new one is deployed when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Lifecycle phase of an escrow.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum EscrowPhase {
    /// Not yet deployed or attached.
    Pending,
    /// Deployed and owned by the CSP.
    Ready,
    /// The chain cannot be reached right now; last known figures are kept.
    Unknown,
    /// The address holds no escrow, or another owner's.
    Failed,
}

/// Observed state of an Escrow; amounts are USDC with 6 decimals.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EscrowStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<EscrowPhase>,
    /// Address of the escrow contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// USDC held by the contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// USDC locked for running jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<String>,
    /// USDC credited to node operators so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid: Option<String>,
    /// USDC of the 15 % share taken from jobs so far (swapped to R1 and burned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burned: Option<String>,
    /// USDC refunded to the CSP's wallet so far (closed, redeemed and exited jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<String>,
    /// Conditions, e.g. `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
