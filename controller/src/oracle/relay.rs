//! Keeping every oracle's desired state the same: a CSP's signed apply or delete accepted by one
//! oracle is relayed to the others, which check the CSP's own signature and apply it through the
//! same [`crate::intake::apply`] functions. Every oracle re-sends the newest request of each
//! object now and then, so one that was down catches up.
//!
//! Per object the newest CSP timestamp wins, on every path and strictly: a request reaching an
//! oracle directly ([`admit`]) must be newer than every request recorded for each object it
//! touches, and one relayed ([`receive`]) changes only the objects it is newer for. So a
//! request replayed — to the same oracle or another, within its signature's freshness window
//! or long after — never changes anything: its own timestamp is recorded for its objects the
//! first time it is accepted anywhere, and relays carry that record to every oracle.

use r1_crds::api::kinds;
use r1_crds::api::object::ObjectKey;
use r1_crds::api::outcome::Rejection;
use r1_crds::manifest::Manifest;
use r1_crds::pricing::Catalogue;
use r1_protocol::api_auth::{self, AuthError, Credentials};
use r1_protocol::messages::RelayedRequest;

use alloy_primitives::Address;

use crate::intake::apply::{self, ApplyError};
use crate::intake::delegation::{DelegationError, owner_in, path_of};
use crate::intake::quotas::Quotas;
use crate::intake::store::ResourceStore;
use crate::oracle::state::{OracleState, StateError, request_hash};

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
    /// A request as new or newer already changed an object this one touches.
    #[error(
        "{object} was already changed by a request signed at {newest_ms} (this one: {timestamp_ms}); sign a new request"
    )]
    Superseded {
        /// The object.
        object: ObjectKey,
        /// The newest recorded request's timestamp.
        newest_ms: u64,
        /// This request's timestamp.
        timestamp_ms: u64,
    },
    /// The request names an owner its signer may not act for.
    #[error(transparent)]
    Delegation(#[from] DelegationError),
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

/// What a relayable request changes, its manifests read once.
enum Change {
    /// An apply: the documents read (with their numbers) and what reading them refused.
    Apply(Vec<(usize, Manifest)>, Vec<Rejection>),
    /// A delete of one object.
    Delete(ObjectKey),
}

impl Change {
    /// Reads `request`; `None` when it is not an apply or a delete.
    fn read(request: &RelayedRequest) -> Option<Self> {
        match request.method.as_str() {
            "POST" if path_of(&request.path) == "/v1/apply" => {
                let (parsed, rejections) = apply::parse_set(&request.body);
                Some(Self::Apply(parsed, rejections))
            }
            "DELETE" => {
                let mut parts = path_of(&request.path).strip_prefix("/v1/")?.split('/');
                let kind = kinds::parse(parts.next()?)?;
                let namespace = parts.next()?;
                let name = parts.next()?;
                parts
                    .next()
                    .is_none()
                    .then(|| Self::Delete(ObjectKey::new(kind, namespace, name)))
            }
            _ => None,
        }
    }

    /// The objects it touches.
    fn keys(&self) -> Vec<ObjectKey> {
        match self {
            Self::Apply(parsed, _) => parsed.iter().map(|(_, m)| ObjectKey::of(m)).collect(),
            Self::Delete(key) => vec![key.clone()],
        }
    }
}

/// The objects a request touches, or `None` when it is not an apply or a delete.
pub fn objects(request: &RelayedRequest) -> Option<Vec<ObjectKey>> {
    Change::read(request).map(|change| change.keys())
}

/// The CSP timestamp a request carries (0 when it is not a number, which no check passes).
fn timestamp_of(request: &RelayedRequest) -> u64 {
    request.timestamp.parse().unwrap_or(0)
}

/// The objects among `keys` that `timestamp_ms` is newer for than their recorded requests.
fn newer_for(
    state: &OracleState,
    timestamp_ms: u64,
    keys: &[ObjectKey],
) -> Result<Vec<ObjectKey>, RelayError> {
    let mut newer = Vec::new();
    for key in keys {
        match state.mark(&key.to_string())? {
            Some(mark) if mark.timestamp_ms >= timestamp_ms => {}
            _ => newer.push(key.clone()),
        }
    }
    Ok(newer)
}

/// Checks, before it is applied, that `request` (authenticated, reaching this oracle directly)
/// is newer than every request recorded for each object it touches; returns those objects.
pub fn admit(state: &OracleState, request: &RelayedRequest) -> Result<Vec<ObjectKey>, RelayError> {
    let keys = objects(request)
        .ok_or_else(|| RelayError::NotRelayable(request.method.clone(), request.path.clone()))?;
    let timestamp_ms = timestamp_of(request);
    for key in &keys {
        if let Some(mark) = state.mark(&key.to_string())?
            && mark.timestamp_ms >= timestamp_ms
        {
            return Err(RelayError::Superseded {
                object: key.clone(),
                newest_ms: mark.timestamp_ms,
                timestamp_ms,
            });
        }
    }
    Ok(keys)
}

/// Records `request` as the newest for `keys`, the objects it changed.
pub fn record_accepted(
    state: &OracleState,
    request: &RelayedRequest,
    keys: &[ObjectKey],
) -> Result<(), RelayError> {
    let objects: Vec<String> = keys.iter().map(ToString::to_string).collect();
    state.record_request(request, timestamp_of(request), &objects)?;
    Ok(())
}

/// The owner a relayed request names for a delegate (`?owner=`) other than its signer: the
/// delegation the receiver checks on chain before [`receive`].
pub fn delegated_owner(request: &RelayedRequest) -> Result<Option<Address>, RelayError> {
    let signer: Option<Address> = request.address.parse().ok();
    Ok(owner_in(&request.path)?.filter(|owner| Some(*owner) != signer))
}

/// Checks and applies a request relayed by another oracle, to the objects it is newer for,
/// as its signer or, when `delegation_held`, as the owner its path names (see
/// [`delegated_owner`]), within this oracle's `quotas`.
pub fn receive(
    state: &OracleState,
    store: &ResourceStore,
    catalogue: &Catalogue,
    quotas: Quotas,
    request: &RelayedRequest,
    delegation_held: bool,
) -> Result<Outcome, RelayError> {
    let credentials = Credentials {
        address: Some(&request.address),
        timestamp: Some(&request.timestamp),
        signature: Some(&request.signature),
    };
    // A request stored here was applied to every object it was newer for, and marks only
    // grow: the oracles' periodic re-sends end here without parsing the manifests again.
    if state.holds_request(&request_hash(request))? {
        return Ok(Outcome::AlreadyCurrent);
    }
    let timestamp_ms = timestamp_of(request);
    let change = Change::read(request)
        .ok_or_else(|| RelayError::NotRelayable(request.method.clone(), request.path.clone()))?;
    let newer = newer_for(state, timestamp_ms, &change.keys())?;
    if newer.is_empty() {
        return Ok(Outcome::AlreadyCurrent);
    }
    // Judged at its own time: a relayed request is old by nature; its age is bounded by the
    // per-object ordering instead.
    let verified = api_auth::verify(
        &credentials,
        &request.method,
        &request.path,
        request.body.as_bytes(),
        timestamp_ms,
    )?;
    let acting = match owner_in(&request.path)? {
        Some(owner) if owner != verified.signer => {
            if !delegation_held {
                return Err(DelegationError::NotDelegate {
                    owner,
                    delegate: verified.signer,
                }
                .into());
            }
            owner
        }
        _ => verified.signer,
    };
    match change {
        Change::Delete(key) => match apply::delete(store, acting, &key) {
            Ok(_) | Err(ApplyError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        },
        Change::Apply(mut parsed, rejections) => {
            // The claim was checked by the oracle the CSP sent the request to; quotas hold
            // here too.
            parsed.retain(|(_, manifest)| newer.contains(&ObjectKey::of(manifest)));
            apply::apply_parsed(
                store,
                catalogue,
                acting,
                parsed,
                rejections,
                &apply::Policy {
                    quotas,
                    ..apply::Policy::default()
                },
            )?;
        }
    }
    record_accepted(state, request, &newer)?;
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
        let headers = api_auth::sign(identity, method, path, ts, body.as_bytes()).unwrap();
        RelayedRequest {
            method: method.into(),
            path: path.into(),
            address: headers.address,
            timestamp: headers.timestamp,
            signature: headers.signature,
            body: body.into(),
        }
    }

    /// [`receive`] of a request that names no other owner.
    fn receive_as_signer(
        state: &OracleState,
        store: &ResourceStore,
        catalogue: &Catalogue,
        request: &RelayedRequest,
    ) -> Result<Outcome, RelayError> {
        receive(state, store, catalogue, Quotas::default(), request, false)
    }

    /// An oracle's state and store in a fresh directory, with the built-in catalogue.
    fn oracle() -> (tempfile::TempDir, OracleState, ResourceStore, Catalogue) {
        let dir = tempfile::tempdir().unwrap();
        let state = OracleState::open(&dir.path().join("state")).unwrap();
        let store = ResourceStore::open(&dir.path().join("store")).unwrap();
        (dir, state, store, Catalogue::builtin().unwrap())
    }

    #[test]
    fn a_delegate_acts_for_the_owner_only_when_the_chain_says_so() {
        let (_dir, state, store, catalogue) = oracle();
        let owner = Identity::generate();
        let delegate = Identity::generate();
        let body = DOCS.replace("OWNER", &owner.address().to_checksum(None));
        let path = format!("/v1/apply?owner={}", owner.address());
        let request = signed(&delegate, "POST", &path, &body, 1_000);
        assert_eq!(delegated_owner(&request).unwrap(), Some(owner.address()));
        assert!(matches!(
            receive(
                &state,
                &store,
                &catalogue,
                Quotas::default(),
                &request,
                false
            ),
            Err(RelayError::Delegation(DelegationError::NotDelegate { .. }))
        ));
        assert_eq!(
            receive(
                &state,
                &store,
                &catalogue,
                Quotas::default(),
                &request,
                true
            )
            .unwrap(),
            Outcome::Applied
        );
        let key = ObjectKey::new(r1_crds::manifest::Kind::Project, "acme", "hello");
        assert_eq!(
            store.get(&key).unwrap().unwrap().metadata.owner,
            owner.address(),
            "stored as the owner's"
        );
        let own = signed(&owner, "POST", &path, &body, 2_000);
        assert_eq!(
            delegated_owner(&own).unwrap(),
            None,
            "the owner naming itself"
        );
        let delete = signed(
            &delegate,
            "DELETE",
            &format!("/v1/deeployprojects/acme/hello?owner={}", owner.address()),
            "",
            3_000,
        );
        assert_eq!(
            objects(&delete).unwrap(),
            vec![key.clone()],
            "the query is not part of the name"
        );
    }

    #[test]
    fn newest_request_wins_and_forgeries_are_refused() {
        let (_dir, state, store, catalogue) = oracle();
        let csp = Identity::generate();
        let body = DOCS.replace("OWNER", &csp.address().to_checksum(None));
        let described = body.replace("spec:\n", "spec:\n  description: second\n");

        let first = signed(&csp, "POST", "/v1/apply", &body, 1_000);
        let second = signed(&csp, "POST", "/v1/apply", &described, 2_000);
        assert_eq!(
            receive_as_signer(&state, &store, &catalogue, &second).unwrap(),
            Outcome::Applied
        );
        assert_eq!(
            receive_as_signer(&state, &store, &catalogue, &first).unwrap(),
            Outcome::AlreadyCurrent,
            "an older request never rolls the object back"
        );
        let key = ObjectKey::new(r1_crds::manifest::Kind::Project, "acme", "hello");
        let stored = store.get(&key).unwrap().unwrap();
        assert_eq!(
            stored.spec.project().unwrap().description.as_deref(),
            Some("second")
        );

        let mut forged = signed(&csp, "POST", "/v1/apply", &body, 3_000);
        forged.body = forged.body.replace("hello", "other");
        assert!(matches!(
            receive_as_signer(&state, &store, &catalogue, &forged),
            Err(RelayError::Auth(_))
        ));

        let delete = signed(&csp, "DELETE", "/v1/deeployprojects/acme/hello", "", 4_000);
        assert_eq!(
            receive_as_signer(&state, &store, &catalogue, &delete).unwrap(),
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
            receive_as_signer(&state, &store, &catalogue, &delete).unwrap(),
            Outcome::AlreadyCurrent
        );
    }

    #[test]
    fn a_resent_request_is_answered_from_its_stored_copy_then_from_the_marks() {
        let (_dir, state, store, catalogue) = oracle();
        let csp = Identity::generate();
        let body = DOCS.replace("OWNER", &csp.address().to_checksum(None));
        let first = signed(&csp, "POST", "/v1/apply", &body, 1_000);
        assert_eq!(
            receive_as_signer(&state, &store, &catalogue, &first).unwrap(),
            Outcome::Applied
        );
        assert!(state.holds_request(&request_hash(&first)).unwrap());
        assert_eq!(
            receive_as_signer(&state, &store, &catalogue, &first).unwrap(),
            Outcome::AlreadyCurrent
        );
        let described = body.replace("spec:\n", "spec:\n  description: second\n");
        let second = signed(&csp, "POST", "/v1/apply", &described, 2_000);
        assert_eq!(
            receive_as_signer(&state, &store, &catalogue, &second).unwrap(),
            Outcome::Applied
        );
        assert_eq!(state.current_requests().unwrap().len(), 1);
        assert!(
            !state.holds_request(&request_hash(&first)).unwrap(),
            "outdated for its one object, the first request is dropped"
        );
        assert_eq!(
            receive_as_signer(&state, &store, &catalogue, &first).unwrap(),
            Outcome::AlreadyCurrent
        );
    }

    #[test]
    fn a_replayed_or_older_request_is_refused_at_the_door() {
        let (_dir, state, _, _) = oracle();
        let csp = Identity::generate();
        let delete = signed(&csp, "DELETE", "/v1/deeployjobs/acme/web", "", 1_000);
        let keys = admit(&state, &delete).unwrap();
        record_accepted(&state, &delete, &keys).unwrap();
        // The same delete again (to this oracle, or to one the relay reached) changes nothing.
        assert!(matches!(
            admit(&state, &delete),
            Err(RelayError::Superseded {
                newest_ms: 1_000,
                ..
            })
        ));
        let body = DOCS.replace("OWNER", &csp.address().to_checksum(None));
        let recreate = signed(&csp, "POST", "/v1/apply", &body, 2_000);
        let keys = admit(&state, &recreate).unwrap();
        record_accepted(&state, &recreate, &keys).unwrap();
        let old = signed(&csp, "POST", "/v1/apply", &body, 1_500);
        assert!(matches!(
            admit(&state, &old),
            Err(RelayError::Superseded {
                newest_ms: 2_000,
                ..
            })
        ));
    }

    #[test]
    fn a_late_relay_changes_only_the_objects_it_is_newer_for() {
        let (_dir, state, store, catalogue) = oracle();
        let csp = Identity::generate();
        let hello = DOCS.replace("OWNER", &csp.address().to_checksum(None));
        let both = format!(
            "{}---\n{}",
            hello,
            hello.replace("name: hello", "name: other")
        );
        let first = signed(&csp, "POST", "/v1/apply", &both, 1_000);
        let described = hello.replace("spec:\n", "spec:\n  description: second\n");
        let second = signed(&csp, "POST", "/v1/apply", &described, 2_000);
        assert_eq!(
            receive_as_signer(&state, &store, &catalogue, &second).unwrap(),
            Outcome::Applied
        );
        assert_eq!(
            receive_as_signer(&state, &store, &catalogue, &first).unwrap(),
            Outcome::Applied
        );
        let hello_key = ObjectKey::new(r1_crds::manifest::Kind::Project, "acme", "hello");
        let other_key = ObjectKey::new(r1_crds::manifest::Kind::Project, "acme", "other");
        assert_eq!(
            store
                .get(&hello_key)
                .unwrap()
                .unwrap()
                .spec
                .project()
                .unwrap()
                .description
                .as_deref(),
            Some("second"),
            "the newer request for hello stands"
        );
        assert!(store.get(&other_key).unwrap().is_some(), "other is created");
        assert_eq!(
            state
                .mark(&hello_key.to_string())
                .unwrap()
                .unwrap()
                .timestamp_ms,
            2_000
        );
        assert_eq!(
            state
                .mark(&other_key.to_string())
                .unwrap()
                .unwrap()
                .timestamp_ms,
            1_000
        );
    }
}
