//! Linking a node to a licence: what the node signs and hands its operator, which the operator
//! sends an oracle to co-sign (`POST /v1/licences/attest`), and the oracle's answer. The
//! signed record itself (EIP-712 `LinkNode`) is `r1_contracts::LinkTerms`.

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

/// `POST /v1/licences/attest` body: a licence owner asks the oracle to co-sign linking a node
/// to its licence (`NodeDeed.linkNode`), with the node's own signature of the same terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkAttestRequest {
    /// The licence.
    pub licence_id: u64,
    /// The licence's owner: the request's signer.
    pub owner: Address,
    /// The node to link.
    pub node: Address,
    /// The node's link nonce the signatures carry.
    pub nonce: u64,
    /// Unix seconds after which the signatures are refused on chain.
    pub deadline: u64,
    /// The node's EIP-712 signature of the terms, `0x` + 130 hex digits.
    pub node_signature: String,
}

/// `POST /v1/licences/attest` answer: the oracle's signature of the same terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkAttestation {
    /// The oracle that signed.
    pub oracle: Address,
    /// Its EIP-712 signature of the terms, `0x` + 130 hex digits.
    pub oracle_signature: String,
}
