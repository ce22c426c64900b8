//! How the adapter's writes reach every oracle: signed with a key the CSP delegated to this
//! oracle (`kube.delegateKeyFile`, kept in a Kubernetes Secret), as a Deeploy API request
//! (`POST /v1/apply?owner=…`, `DELETE /v1/{kind}/{namespace}/{name}?owner=…`) handed to the
//! oracle's own API in-process. So a cluster change passes exactly the doors a CSP's request
//! passes: the signature, the delegation check on chain, the claims and quotas, the write
//! order, and the relay to the other oracles, which accept it only while the chain lists the
//! key as a delegate of the owner's escrow. A revoked delegate's changes are refused everywhere.
//!
//! Without a delegate key ([`Writes::Local`]) the adapter writes into this oracle's store only:
//! enough for a network of one oracle, and what the adapter's own tests use.

use std::sync::Arc;

use alloy_primitives::Address;
use axum::Router;
use axum::body::Body;
use axum::http::{self, Method, Request, StatusCode};
use r1_crds::api::object::ObjectKey;
use r1_crds::api::wire::ErrorBody;
use r1_crds::field::FieldError;
use r1_protocol::api_auth::{self, ADDRESS_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use r1_protocol::identity::Identity;
use r1_protocol::now_ms;
use tower::ServiceExt;

use crate::intake::delegation::OWNER_PARAM;
use crate::kube::error::KubeError;
use crate::kube::funding::ClusterFunding;
use crate::kube::mirror::Mirror;
use crate::kube::pinning::ImagePinner;
use crate::kube::secrets::SecretSealer;

/// Longest answer of the oracle's API the adapter reads.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Longest wait for the oracle's API to answer, as the API's own per-request limit over TCP.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How the adapter's changes reach the network: where its writes go and, with a delegate key,
/// who pays for its jobs.
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// Where writes go.
    pub writes: Writes,
    /// Funding of mirrored jobs with the delegate key, when the oracle has a chain.
    pub funding: Option<Arc<ClusterFunding>>,
    /// Sealing of the Kubernetes Secrets jobs name, when the oracle knows the oracles' keys.
    pub secrets: Option<Arc<SecretSealer>>,
    /// Pinning of job image tags to the digests their registries serve.
    pub pinning: Option<Arc<ImagePinner>>,
}

/// Where the adapter's writes go.
#[derive(Clone, Default)]
pub enum Writes {
    /// Into this oracle's store only.
    #[default]
    Local,
    /// Signed with a delegate key, through the oracle's API, to every oracle.
    Signed(SignedWrites),
}

impl std::fmt::Debug for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("Local"),
            Self::Signed(signed) => write!(f, "Signed({})", signed.address()),
        }
    }
}

/// The delegate key and the oracle's API router it sends signed requests to.
#[derive(Clone)]
pub struct SignedWrites {
    identity: Identity,
    api: Router,
}

/// What a signed deletion came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// The deletion is requested.
    Requested,
    /// The store holds no such object any more.
    Gone,
    /// The object is still in use (a project with jobs, a tunnel a job names).
    InUse(String),
    /// Refused, for a reason that will not pass by itself (the delegation, the namespace).
    Refused {
        /// One CamelCase word.
        reason: &'static str,
        /// The oracle's explanation.
        message: String,
    },
}

impl SignedWrites {
    /// Signs with `identity` and sends to `api`, the oracle's Deeploy API router.
    pub fn new(identity: Identity, api: Router) -> Self {
        Self { identity, api }
    }

    /// The delegate key's address (what CSPs delegate to with `r1ctl escrow delegate`).
    pub fn address(&self) -> Address {
        self.identity.address()
    }

    /// Applies `document` (one manifest as JSON) on behalf of `owner`.
    pub async fn apply(
        &self,
        owner: Address,
        document: &serde_json::Value,
    ) -> Result<Mirror, KubeError> {
        let body = serde_json::to_vec(document)
            .map_err(|e| KubeError::Object(format!("cannot encode the manifest: {e}")))?;
        let path = self.path_for("/v1/apply", owner);
        let (status, answer) = self.send(Method::POST, &path, body).await?;
        Ok(apply_outcome(status, &answer))
    }

    /// Requests the deletion of `key` on behalf of `owner`.
    pub async fn request_deletion(
        &self,
        owner: Address,
        key: &ObjectKey,
    ) -> Result<Deletion, KubeError> {
        let base = format!(
            "/v1/{}/{}/{}",
            r1_crds::api::kinds::plural(key.kind),
            key.namespace,
            key.name
        );
        let path = self.path_for(&base, owner);
        let (status, answer) = self.send(Method::DELETE, &path, Vec::new()).await?;
        Ok(delete_outcome(status, &answer))
    }

    /// `base` naming `owner` when the key acts for someone else.
    fn path_for(&self, base: &str, owner: Address) -> String {
        if owner == self.address() {
            base.to_owned()
        } else {
            format!("{base}?{OWNER_PARAM}={owner:#x}")
        }
    }

    /// Signs and sends one request; the answer's status and body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, ErrorBody), KubeError> {
        let headers = api_auth::sign(&self.identity, method.as_str(), path, now_ms(), &body)
            .map_err(|e| KubeError::Object(format!("cannot sign: {e}")))?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(ADDRESS_HEADER, headers.address)
            .header(TIMESTAMP_HEADER, headers.timestamp)
            .header(SIGNATURE_HEADER, headers.signature)
            .body(Body::from(body))
            .map_err(|e| KubeError::Object(format!("cannot build the request: {e}")))?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.api.clone().oneshot(request))
            .await
            .map_err(|_| {
                KubeError::Object(format!(
                    "the oracle's API did not answer within {} s",
                    ANSWER_TIMEOUT.as_secs()
                ))
            })?;
        let response = match answer {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| KubeError::Object(format!("cannot read the API's answer: {e}")))?;
        let answer = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
            error: String::new(),
            reason: String::from_utf8_lossy(&bytes).into_owned(),
            errors: Vec::new(),
        });
        Ok((status, answer))
    }
}

/// What an apply answered with `status` and `answer` (its error body, when it failed) means
/// for the resource.
pub fn apply_outcome(status: StatusCode, answer: &ErrorBody) -> Mirror {
    let message = answer.reason.clone();
    match status {
        s if s.is_success() => Mirror::Accepted,
        StatusCode::UNPROCESSABLE_ENTITY => Mirror::Rejected {
            reason: "Invalid",
            problems: if answer.errors.is_empty() {
                vec![message]
            } else {
                answer
                    .errors
                    .iter()
                    .map(|r| FieldError::new(r.path.clone(), r.message.clone()).to_string())
                    .collect()
            },
            shows_store: true,
        },
        StatusCode::FORBIDDEN if answer.error == "not_delegate" => Mirror::Waiting {
            reason: "NotDelegated",
            message,
        },
        StatusCode::FORBIDDEN => Mirror::Rejected {
            reason: "Forbidden",
            problems: vec![message],
            shows_store: false,
        },
        StatusCode::CONFLICT => Mirror::Waiting {
            reason: "WaitingForOracle",
            message,
        },
        _ => Mirror::Waiting {
            reason: "OracleUnavailable",
            message: format!("the oracle's API answered {status}: {message}"),
        },
    }
}

/// What a deletion answered with `status` and `answer` means.
pub fn delete_outcome(status: StatusCode, answer: &ErrorBody) -> Deletion {
    let message = answer.reason.clone();
    match status {
        s if s.is_success() => Deletion::Requested,
        StatusCode::CONFLICT => Deletion::InUse(message),
        StatusCode::FORBIDDEN if answer.error == "not_delegate" => Deletion::Refused {
            reason: "NotDelegated",
            message,
        },
        StatusCode::FORBIDDEN => Deletion::Refused {
            reason: "Forbidden",
            message,
        },
        _ => Deletion::Refused {
            reason: "OracleUnavailable",
            message: format!("the oracle's API answered {status}: {message}"),
        },
    }
}

#[cfg(test)]
mod tests;
