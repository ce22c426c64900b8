//! The JSON bodies of the Deeploy API, shared by the server and `r1ctl` so both sides agree by
//! construction.

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::api::object::StoredObject;
use crate::api::outcome::{Applied, Rejection};

/// Error code of `GET /v1/info` when the oracle runs without a chain.
pub const NO_CHAIN: &str = "no_chain";

/// `POST /v1/apply` answer: what happened to each object, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// One entry per applied object.
    pub applied: Vec<Applied>,
}

/// `GET /v1/{kind}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListResponse {
    /// The objects, ordered by namespace and name.
    pub items: Vec<StoredObject>,
}

/// Every refusal: a short code, a sentence, and for invalid manifests each problem by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code: `unsigned`, `bad_signature`, `stale`, `forbidden`, `invalid`, …
    pub error: String,
    /// What went wrong, for a human.
    pub reason: String,
    /// For `invalid`: every problem with its field path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Rejection>,
}

/// `GET /healthz` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
    /// The store's resource version.
    pub resource_version: u64,
}

/// `GET /v1/info` answer: which oracle this is and the chain it works on, so that a CSP can fund
/// its jobs on the right chain and contracts (`r1ctl fund`) without being told separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiInfo {
    /// The oracle's address (checksummed in JSON).
    #[serde(with = "checksummed")]
    pub oracle: Address,
    /// EVM chain id of the chain the oracle settles on.
    pub chain_id: u64,
    /// The PoAI manager contract; every other contract is found from it.
    #[serde(with = "checksummed")]
    pub poai_manager: Address,
    /// Epoch length in seconds.
    pub epoch_seconds: u64,
    /// Start of epoch 0, unix seconds.
    pub genesis_unix: u64,
}

/// `GET /v1/oracle-keys` answer: the public key of every oracle this one has heard from (itself
/// included) that the chain lists now — what `r1ctl secret seal` seals to. Each key must hash to
/// its address; a client checks that before sealing, so a lying oracle can leave an oracle out
/// but never slip in a key of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OracleKeys {
    /// The oracles, ordered by address.
    pub oracles: Vec<OracleKey>,
}

/// One oracle's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OracleKey {
    /// The oracle's address (checksummed in JSON).
    #[serde(with = "checksummed")]
    pub address: Address,
    /// Its compressed secp256k1 public key, `0x` and 66 hex digits.
    pub public_key: String,
}

/// Addresses as EIP-55 checksummed text, as users see them everywhere else.
mod checksummed {
    use alloy_primitives::Address;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(address: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&address.to_checksum(None))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
