//! Keeping every oracle's desired state the same: a CSP's signed apply or delete accepted by one
//! oracle is relayed to the others, which check the CSP's own signature and apply it through the
//! same [`crate::intake::apply`] functions. Per object the newest CSP timestamp wins, so a
//! relayed request that arrives late, or is replayed, never rolls an object back. Every oracle
//! re-sends the newest request of each object now and then, so one that was down catches up.

use r1_crds::manifest::parse_documents;
use r1_crds::pricing::Catalogue;
use r1_protocol::messages::RelayedRequest;

use crate::intake::apply::{self, ApplyError};
use crate::intake::auth::{self, AuthError, Credentials};
use crate::intake::kinds;
use crate::intake::object::ObjectKey;
use crate::intake::store::ResourceStore;
use crate::oracle::state::{OracleState, RelayedRecord, StateError};

/// Why a relayed request was not applied.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The CSP's signature does not hold.
    #[error("the CSP signature does not hold: {0}")]
    Auth(#[from] AuthError),
    /// Neither an apply nor a delete of one object.
    #[error("not a relayable request: {0} {1}")]
    NotRelayable(String, String),
    /// The apply or delete was refused (as it would be over HTTP).
    #[error(transparent)]
    Refused(#[from] ApplyError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What became of a relayed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied or deleted here.
    Applied,
    /// Every object it touches has seen this request or a newer one.
    AlreadyCurrent,
}

/// The objects a request touches, or `None` when it is not an apply or a delete.
fn objects(request: &RelayedRequest) -> Option<Vec<ObjectKey>> {
    match request.method.as_str() {
        "POST" if request.path == "/v1/apply" => Some(
            parse_documents(&request.body)
                .into_iter()
                .filter_map(|d| d.result.ok())
                .map(|m| ObjectKey::of(&m))
                .collect(),
        ),
        "DELETE" => {
            let mut parts = request.path.strip_prefix("/v1/")?.split('/');
            let kind = kinds::parse(parts.next()?)?;
            let namespace = parts.next()?;
            let name = parts.next()?;
            parts
                .next()
                .is_none()
                .then(|| vec![ObjectKey::new(kind, namespace, name)])
        }
        _ => None,
    }
}

/// Records `request`, accepted over this oracle's API, as the newest for each object it touched.
pub fn record_accepted(state: &OracleState, request: &RelayedRequest) -> Result<(), RelayError> {
    let timestamp_ms = request.timestamp.parse().unwrap_or(0);
    let record = RelayedRecord {
        timestamp_ms,
        request: request.clone(),
    };
    for key in objects(request).unwrap_or_default() {
        state.record_relayed(&key.to_string(), &record)?;
    }
    Ok(())
}

/// Checks and applies a request relayed by another oracle.
pub fn receive(
    state: &OracleState,
    store: &ResourceStore,
    catalogue: &Catalogue,
    request: &RelayedRequest,
) -> Result<Outcome, RelayError> {
    let credentials = Credentials {
        address: Some(&request.address),
        timestamp: Some(&request.timestamp),
        signature: Some(&request.signature),
    };
    let timestamp_ms: u64 = request.timestamp.parse().unwrap_or(0);
    // Judged at its own time: a relayed request is old by nature; its age is bounded by the
    // per-object ordering below instead.
    let verified = auth::verify(
        &credentials,
        &request.method,
        &request.path,
        request.body.as_bytes(),
        timestamp_ms,
    )?;
    let keys = objects(request)
        .ok_or_else(|| RelayError::NotRelayable(request.method.clone(), request.path.clone()))?;
    let mut newer = false;
    for key in &keys {
        match state.relayed(&key.to_string())? {
            Some(seen) if seen.timestamp_ms >= timestamp_ms => {}
            _ => newer = true,
        }
    }
    if !newer {
        return Ok(Outcome::AlreadyCurrent);
    }
    if request.method == "DELETE" {
        match apply::delete(store, verified.signer, &keys[0]) {
            Ok(_) | Err(ApplyError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    } else {
        apply::apply(store, catalogue, verified.signer, &request.body)?;
    }
    record_accepted(state, request)?;
    Ok(Outcome::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_protocol::identity::Identity;

    const DOCS: &str = "apiVersion: deeploy.ratio1.ai/v1alpha1\nkind: DeeployProject\nmetadata: {name: hello, namespace: acme}\nspec:\n  owner: \"OWNER\"\n";

    fn signed(
        identity: &Identity,
        method: &str,
        path: &str,
        body: &str,
        ts: u64,
    ) -> RelayedRequest {
        let headers = auth::sign(identity, method, path, ts, body.as_bytes()).unwrap();
        RelayedRequest {
            method: method.into(),
            path: path.into(),
            address: headers.address,
            timestamp: headers.timestamp,
            signature: headers.signature,
            body: body.into(),
        }
    }

    #[test]
    fn newest_request_wins_and_forgeries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = OracleState::open(&dir.path().join("state")).unwrap();
        let store = ResourceStore::open(&dir.path().join("store")).unwrap();
        let catalogue = Catalogue::builtin().unwrap();
        let csp = Identity::generate();
        let body = DOCS.replace("OWNER", &csp.address().to_checksum(None));
        let described = body.replace("spec:\n", "spec:\n  description: second\n");

        let first = signed(&csp, "POST", "/v1/apply", &body, 1_000);
        let second = signed(&csp, "POST", "/v1/apply", &described, 2_000);
        assert_eq!(
            receive(&state, &store, &catalogue, &second).unwrap(),
            Outcome::Applied
        );
        assert_eq!(
            receive(&state, &store, &catalogue, &first).unwrap(),
            Outcome::AlreadyCurrent,
            "an older request never rolls the object back"
        );
        let key = ObjectKey::new(r1_crds::manifest::Kind::Project, "acme", "hello");
        let stored = store.get(&key).unwrap().unwrap();
        assert_eq!(stored.spec["description"], "second");

        let mut forged = signed(&csp, "POST", "/v1/apply", &body, 3_000);
        forged.body = forged.body.replace("hello", "other");
        assert!(matches!(
            receive(&state, &store, &catalogue, &forged),
            Err(RelayError::Auth(_))
        ));

        let delete = signed(&csp, "DELETE", "/v1/deeployprojects/acme/hello", "", 4_000);
        assert_eq!(
            receive(&state, &store, &catalogue, &delete).unwrap(),
            Outcome::Applied
        );
        assert!(
            store
                .get(&key)
                .unwrap()
                .unwrap()
                .metadata
                .deletion_requested
        );
        assert_eq!(
            receive(&state, &store, &catalogue, &delete).unwrap(),
            Outcome::AlreadyCurrent
        );
    }
}
