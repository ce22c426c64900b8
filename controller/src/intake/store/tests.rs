use super::*;
use r1_crds::api::object::Desired;
use r1_crds::api::spec::Spec;
use serde_json::json;

/// A valid spec of any kind: each kind reads the fields it knows from the same document.
fn spec(kind: Kind) -> Spec {
    let fields = json!({
        "chainId": 31337, "owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "provider": "cloudflare", "hostname": "a.example", "tokenSecretRef": {"name": "t", "key": "k"},
        "projectRef": {"name": "p"}, "escrowRef": {"name": "e"}, "image": "x",
        "resources": {"cpu": "1", "memory": "1Gi"}, "durationEpochs": 30,
    });
    Spec::from_json(kind, fields).unwrap()
}

fn object(kind: Kind, ns: &str, name: &str) -> StoredObject {
    StoredObject::create(
        &ObjectKey::new(kind, ns, name),
        Desired {
            spec: spec(kind),
            labels: Default::default(),
            annotations: Default::default(),
        },
        Address::repeat_byte(1),
        format!("uid-{name}"),
        0,
        "2026-01-01T00:00:00Z".into(),
    )
}

fn put(store: &ResourceStore, object: StoredObject) -> StoredObject {
    let mut tx = store.begin();
    let object = tx.put(object).unwrap();
    tx.commit().unwrap();
    object
}

#[test]
fn put_get_list_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResourceStore::open(dir.path()).unwrap();
    assert_eq!(store.resource_version(), 0);
    let a = put(&store, object(Kind::Escrow, "shop", "a"));
    let b = put(&store, object(Kind::Escrow, "shop2", "b"));
    let c = put(&store, object(Kind::Tunnel, "shop", "c"));
    assert_eq!(
        [
            a.metadata.resource_version,
            b.metadata.resource_version,
            c.metadata.resource_version
        ],
        [1, 2, 3]
    );
    assert_eq!(store.resource_version(), 3);
    assert_eq!(store.get(&a.key()).unwrap(), Some(a.clone()));
    assert_eq!(
        store
            .get(&ObjectKey::new(Kind::Escrow, "shop", "zz"))
            .unwrap(),
        None
    );
    // "shop" must not match "shop2".
    let names = |v: Vec<Arc<StoredObject>>| {
        v.into_iter()
            .map(|o| o.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list(Kind::Escrow, Some("shop")).unwrap()),
        ["a"]
    );
    assert_eq!(names(store.list(Kind::Escrow, None).unwrap()), ["a", "b"]);
    assert_eq!(names(store.list_all(Some("shop")).unwrap()), ["a", "c"]);
    assert!(store.list(Kind::Job, None).unwrap().is_empty());
}

#[test]
fn survives_reopen_with_its_counter() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ResourceStore::open(dir.path()).unwrap();
        put(&store, object(Kind::Escrow, "shop", "a"));
        let mut tx = store.begin();
        tx.claim_namespace("shop", Address::repeat_byte(9));
        tx.commit().unwrap();
    }
    let store = ResourceStore::open(dir.path()).unwrap();
    assert_eq!(store.resource_version(), 1);
    assert!(
        store
            .get(&ObjectKey::new(Kind::Escrow, "shop", "a"))
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.namespace_owner("shop").unwrap(),
        Some(Address::repeat_byte(9))
    );
    assert_eq!(store.namespace_owner("other").unwrap(), None);
    assert_eq!(
        store.namespaces().unwrap(),
        vec![("shop".to_owned(), Address::repeat_byte(9))]
    );
    let b = put(&store, object(Kind::Escrow, "shop", "b"));
    assert_eq!(b.metadata.resource_version, 2);
}

#[test]
fn a_second_process_cannot_open_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let _first = ResourceStore::open(dir.path()).unwrap();
    assert!(matches!(
        ResourceStore::open(dir.path()),
        Err(StoreError::Db(_))
    ));
}

#[test]
fn dropped_transaction_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResourceStore::open(dir.path()).unwrap();
    {
        let mut tx = store.begin();
        tx.put(object(Kind::Escrow, "shop", "a")).unwrap();
        tx.claim_namespace("shop", Address::repeat_byte(1));
    }
    assert!(store.list_all(None).unwrap().is_empty());
    assert_eq!(store.namespace_owner("shop").unwrap(), None);
    assert_eq!(store.resource_version(), 0);
    assert_eq!(store.begin().commit().unwrap(), 0);
}

#[test]
fn status_updates_with_and_without_precondition() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResourceStore::open(dir.path()).unwrap();
    let a = put(&store, object(Kind::Escrow, "shop", "a"));
    let status = r1_crds::EscrowStatus {
        locked: Some("12.5".into()),
        ..Default::default()
    };
    let updated = store
        .update_status(&a.key(), Some(a.metadata.resource_version), &status)
        .unwrap();
    assert_eq!(updated.metadata.resource_version, 2);
    assert_eq!(updated.metadata.generation, 1);
    assert_eq!(updated.spec, a.spec);
    let back = store.get(&a.key()).unwrap().unwrap();
    assert_eq!(
        back.status_as::<r1_crds::EscrowStatus>().unwrap(),
        Some(status)
    );
    // A writer that read version 1 lost the race.
    let err = store
        .update_status(&a.key(), Some(1), &json!({"phase": "Ready"}))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    store
        .update_status(&a.key(), None, &json!({"phase": "Ready"}))
        .unwrap();
    assert_eq!(
        store.get(&a.key()).unwrap().unwrap().status,
        json!({"phase": "Ready"})
    );
    let missing = ObjectKey::new(Kind::Job, "shop", "nope");
    assert!(matches!(
        store.update_status(&missing, None, &json!({})),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn finalize_delete_only_after_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResourceStore::open(dir.path()).unwrap();
    let a = put(&store, object(Kind::Escrow, "shop", "a"));
    assert!(matches!(
        store.finalize_delete(&a.key(), None),
        Err(StoreError::NotMarkedForDeletion(_))
    ));
    let mut marked = a.clone();
    marked.metadata.deletion_requested = true;
    let marked = put(&store, marked);
    assert!(matches!(
        store.finalize_delete(&a.key(), Some(1)),
        Err(StoreError::Conflict { .. })
    ));
    store
        .finalize_delete(&a.key(), Some(marked.metadata.resource_version))
        .unwrap();
    assert_eq!(store.get(&a.key()).unwrap(), None);
    assert_eq!(store.resource_version(), 3);
    assert!(matches!(
        store.finalize_delete(&a.key(), None),
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn watchers_wake_on_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(ResourceStore::open(dir.path()).unwrap());
    let mut changes = store.subscribe();
    assert_eq!(*changes.borrow_and_update(), 0);
    let writer = store.clone();
    let task = tokio::task::spawn_blocking(move || {
        put(&writer, object(Kind::Escrow, "shop", "a"));
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), changes.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*changes.borrow_and_update(), 1);
    task.await.unwrap();
    // An empty transaction does not wake anyone.
    store.begin().commit().unwrap();
    assert!(!changes.has_changed().unwrap());
}

#[test]
fn index_resolves_live_objects_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResourceStore::open(dir.path()).unwrap();
    put(&store, object(Kind::Escrow, "shop", "live"));
    let mut gone = object(Kind::Escrow, "shop", "going");
    gone.metadata.deletion_requested = true;
    put(&store, gone);
    put(&store, object(Kind::Escrow, "other", "elsewhere"));
    let index = store
        .index([
            ObjectKey::new(Kind::Escrow, "shop", "live"),
            ObjectKey::new(Kind::Escrow, "shop", "going"),
            ObjectKey::new(Kind::Escrow, "shop", "absent"),
        ])
        .unwrap();
    assert!(index.lookup(Kind::Escrow, "shop", "live").is_some());
    assert!(index.lookup(Kind::Escrow, "shop", "going").is_none());
    assert!(index.lookup(Kind::Escrow, "other", "elsewhere").is_none());
}

#[test]
fn uids_differ() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResourceStore::open(dir.path()).unwrap();
    let key = ObjectKey::new(Kind::Job, "shop", "web");
    let first = store.begin().new_uid(&key);
    put(&store, object(Kind::Escrow, "shop", "a"));
    let second = store.begin().new_uid(&key);
    assert_ne!(first, second);
    assert_eq!(first.len(), 36);
    assert_eq!(first.matches('-').count(), 4);
}

#[test]
fn listings_decode_an_object_again_only_when_it_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResourceStore::open(dir.path()).unwrap();
    let a = put(&store, object(Kind::Escrow, "shop", "a"));
    put(&store, object(Kind::Escrow, "shop", "b"));
    assert_eq!(store.list(Kind::Escrow, None).unwrap().len(), 2);
    assert_eq!(store.decoded.held(), 2);
    let listed = store.list(Kind::Escrow, None).unwrap();
    assert_eq!(*listed[0], a, "a held decoding is the object");
    assert!(
        Arc::ptr_eq(&listed[0], &store.list(Kind::Escrow, None).unwrap()[0]),
        "listings share a held decoding, they do not copy it"
    );
    let updated = store
        .update_status(&a.key(), None, &json!({"phase": "Ready"}))
        .unwrap();
    let listed = store.list(Kind::Escrow, None).unwrap();
    assert_eq!(*listed[0], updated, "a written object is decoded again");
    assert_eq!(store.get(&a.key()).unwrap(), Some(updated));
    let mut tx = store.begin();
    tx.remove(&a.key());
    tx.commit().unwrap();
    assert_eq!(store.decoded.held(), 1, "a removed object is let go");
    assert_eq!(store.list(Kind::Escrow, None).unwrap().len(), 1);
}
