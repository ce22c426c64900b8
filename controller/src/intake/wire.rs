//! The JSON bodies of the Deeploy API, shared by the server and `r1ctl` so both sides agree by
//! construction.

use serde::{Deserialize, Serialize};

use crate::intake::apply::{Applied, Rejection};
use crate::intake::object::StoredObject;

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
