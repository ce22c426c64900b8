//! Signed writes through a real Deeploy API router and store: the owner's own key, a delegate
//! the chain (here a fixed answer) lists, and one it does not.

#![allow(clippy::unwrap_used)] // test fixtures

use std::collections::HashSet;

use futures_util::future::BoxFuture;
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use serde_json::json;

use super::*;
use crate::intake::delegation::Delegations;
use crate::intake::http::{ApiState, router};
use crate::intake::store::ResourceStore;

/// Delegations held by the listed `(owner, delegate)` pairs.
#[derive(Debug, Default)]
struct Listed(HashSet<(Address, Address)>);

impl Delegations for Listed {
    fn permits(&self, owner: Address, delegate: Address) -> BoxFuture<'_, Result<bool, String>> {
        let held = self.0.contains(&(owner, delegate));
        Box::pin(async move { Ok(held) })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<ResourceStore>,
    api: Router,
}

fn fixture(delegations: Listed) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ResourceStore::open(dir.path()).unwrap());
    let state = ApiState::new(store.clone(), Catalogue::builtin().unwrap())
        .with_delegations(Arc::new(delegations));
    Fixture {
        _dir: dir,
        store,
        api: router(state),
    }
}

fn project(owner: Address) -> serde_json::Value {
    json!({
        "apiVersion": "deeploy.ratio1.ai/v1alpha1",
        "kind": "DeeployProject",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"owner": owner.to_string(), "displayName": "Shop"}
    })
}

fn project_key() -> ObjectKey {
    ObjectKey::new(Kind::Project, "shop", "shop")
}

#[tokio::test]
async fn a_delegate_the_chain_lists_writes_and_deletes_for_the_owner() {
    let owner = Identity::generate().address();
    let delegate = Identity::generate();
    let f = fixture(Listed(HashSet::from([(owner, delegate.address())])));
    let writes = SignedWrites::new(delegate, f.api.clone());
    let outcome = writes.apply(owner, &project(owner)).await.unwrap();
    assert_eq!(outcome, Mirror::Accepted);
    let stored = f.store.get(&project_key()).unwrap().unwrap();
    assert_eq!(stored.metadata.owner, owner, "written as the owner's");
    let deleted = writes
        .request_deletion(owner, &project_key())
        .await
        .unwrap();
    assert_eq!(deleted, Deletion::Requested);
    let gone = f.store.get(&project_key()).unwrap();
    assert!(gone.is_none_or(|o| o.metadata.deletion_requested));
}

#[tokio::test]
async fn a_key_that_is_not_a_delegate_waits_and_writes_nothing() {
    let owner = Identity::generate().address();
    let f = fixture(Listed::default());
    let writes = SignedWrites::new(Identity::generate(), f.api.clone());
    let outcome = writes.apply(owner, &project(owner)).await.unwrap();
    let Mirror::Waiting { reason, message } = outcome else {
        panic!("expected Waiting, got {outcome:?}");
    };
    assert_eq!(reason, "NotDelegated");
    assert!(message.contains("not a delegate"), "{message}");
    assert!(f.store.get(&project_key()).unwrap().is_none());
    let deleted = writes
        .request_deletion(owner, &project_key())
        .await
        .unwrap();
    assert!(
        matches!(
            deleted,
            Deletion::Refused {
                reason: "NotDelegated",
                ..
            }
        ),
        "{deleted:?}"
    );
}

#[tokio::test]
async fn the_owners_own_key_names_no_owner_and_invalid_fields_come_back() {
    let owner = Identity::generate();
    let f = fixture(Listed::default());
    let address = owner.address();
    let writes = SignedWrites::new(owner, f.api.clone());
    assert_eq!(writes.path_for("/v1/apply", address), "/v1/apply");
    let mut bad = project(address);
    bad["spec"]["owner"] = json!(address.to_string());
    bad["spec"]["unknownField"] = json!(1);
    let outcome = writes.apply(address, &bad).await.unwrap();
    let Mirror::Rejected {
        reason, problems, ..
    } = outcome
    else {
        panic!("expected Rejected, got {outcome:?}");
    };
    assert_eq!(reason, "Invalid");
    assert!(
        problems.iter().any(|p| p.contains("unknownField")),
        "{problems:?}"
    );
    assert_eq!(
        writes.apply(address, &project(address)).await.unwrap(),
        Mirror::Accepted
    );
}

#[test]
fn answers_map_to_what_the_resource_shows() {
    let body = |error: &str| ErrorBody {
        error: error.into(),
        reason: "why".into(),
        errors: Vec::new(),
    };
    assert_eq!(apply_outcome(StatusCode::OK, &body("")), Mirror::Accepted);
    assert!(matches!(
        apply_outcome(StatusCode::FORBIDDEN, &body("forbidden")),
        Mirror::Rejected {
            reason: "Forbidden",
            ..
        }
    ));
    assert!(matches!(
        apply_outcome(StatusCode::CONFLICT, &body("conflict")),
        Mirror::Waiting { .. }
    ));
    assert!(matches!(
        apply_outcome(StatusCode::SERVICE_UNAVAILABLE, &body("not_delegate")),
        Mirror::Waiting {
            reason: "OracleUnavailable",
            ..
        }
    ));
    assert_eq!(
        delete_outcome(StatusCode::CONFLICT, &body("conflict")),
        Deletion::InUse("why".into())
    );
    assert!(matches!(
        delete_outcome(StatusCode::NOT_FOUND, &body("not_found")),
        Deletion::Refused { .. }
    ));
}
