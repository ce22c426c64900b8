//! Types shared by several resources: references, conditions and amounts.

use std::collections::BTreeMap;

use alloy_primitives::Address;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to another r1 object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LocalRef {
    /// Name of the referenced object (same namespace).
    pub name: String,
}

/// A reference to one key of a Kubernetes Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key inside the Secret whose value is used.
    pub key: String,
}

/// A secret value sealed to every oracle (`r1ctl secret seal`): one copy per oracle, keyed by
/// the oracle's address, each `0x` hex that only that oracle opens, and only for the namespace
/// it was sealed for (see `r1_protocol::oracle_sealed`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct SealedValue(pub BTreeMap<String, String>);

impl SealedValue {
    /// The copies by oracle address; an error names the first key that is not an address.
    pub fn copies(&self) -> Result<BTreeMap<Address, String>, String> {
        self.0
            .iter()
            .map(|(oracle, copy)| Ok((crate::names::evm_address(oracle)?, copy.clone())))
            .collect()
    }
}

/// Whether a condition holds, in the Kubernetes vocabulary.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell, e.g. it lost sight of a dependency.
    Unknown,
}

/// One observation about a resource, in the style of Kubernetes status conditions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Funded`, `Scheduled`, `Validated`, `Running`, `Degraded`, `Closed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// One CamelCase word saying why the condition has this status.
    pub reason: String,
    /// A sentence for humans with the details.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339); unchanged while the status stays the same.
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
