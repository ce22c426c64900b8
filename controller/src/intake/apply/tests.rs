use std::str::FromStr;

use super::*;
use crate::intake::quotas::Quotas;

const ESCROW: &str = include_str!("../../../../crds/examples/escrow.yaml");
const PROJECT: &str = include_str!("../../../../crds/examples/project.yaml");
const TUNNEL: &str = include_str!("../../../../crds/examples/tunnel.yaml");
const JOB: &str = include_str!("../../../../crds/examples/job-http.yaml");

fn csp() -> Address {
    Address::from_str("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap()
}

fn stranger() -> Address {
    Address::from_str("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC").unwrap()
}

fn all() -> String {
    [ESCROW, PROJECT, TUNNEL, JOB].join("\n---\n")
}

/// What `signer` lists of `kind` in `namespace`, with no label selector.
fn listed(
    store: &ResourceStore,
    signer: Address,
    kind: Option<Kind>,
    namespace: Option<&str>,
) -> Vec<StoredObject> {
    list(store, signer, kind, namespace, &LabelSelector::default()).unwrap()
}

fn job_key() -> ObjectKey {
    ObjectKey::new(Kind::Job, "default", "hello-web")
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: ResourceStore,
    catalogue: Catalogue,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = ResourceStore::open(dir.path()).unwrap();
        Self {
            _dir: dir,
            store,
            catalogue: Catalogue::builtin().unwrap(),
        }
    }

    fn apply(&self, signer: Address, text: &str) -> Result<Vec<Applied>, ApplyError> {
        apply(&self.store, &self.catalogue, signer, text)
    }

    fn actions(&self, text: &str) -> Vec<(String, Action)> {
        self.apply(csp(), text)
            .unwrap()
            .into_iter()
            .map(|a| (a.name, a.action))
            .collect()
    }
}

fn rejections(result: Result<Vec<Applied>, ApplyError>) -> Vec<Rejection> {
    match result {
        Err(ApplyError::Invalid(rejections)) => rejections,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn creates_then_leaves_unchanged_then_configures() {
    let f = Fixture::new();
    let applied = f.apply(csp(), &all()).unwrap();
    assert_eq!(applied.len(), 4);
    assert!(
        applied
            .iter()
            .all(|a| a.action == Action::Created && a.generation == 1)
    );
    assert_eq!(applied[3].kind, Kind::Job);
    assert_eq!(f.store.namespace_owner("default").unwrap(), Some(csp()));
    let version = f.store.resource_version();
    assert_eq!(version, 4);

    let job = f.store.get(&job_key()).unwrap().unwrap();
    assert_eq!(job.metadata.owner, csp());
    assert_eq!(job.metadata.generation, 1);
    assert!(!job.metadata.uid.is_empty());
    assert!(job.status.is_null());

    // The same set again writes nothing.
    let mut changes = f.store.subscribe();
    changes.borrow_and_update();
    assert!(
        f.actions(&all())
            .iter()
            .all(|(_, a)| *a == Action::Unchanged)
    );
    assert_eq!(f.store.resource_version(), version);
    assert!(!changes.has_changed().unwrap());

    // A new image is a new generation.
    let changed = JOB.replace("httpd:1", "httpd:2");
    let applied = f.apply(csp(), &changed).unwrap();
    assert_eq!(applied[0].action, Action::Configured);
    assert_eq!(applied[0].generation, 2);
    assert!(changes.has_changed().unwrap());
    let stored = f.store.get(&job_key()).unwrap().unwrap();
    assert_eq!(
        stored.spec.job().unwrap().image.as_deref(),
        Some("localhost:5000/r1-examples/httpd:2")
    );
    assert_eq!(stored.metadata.uid, job.metadata.uid);
    assert_eq!(
        stored.metadata.creation_timestamp,
        job.metadata.creation_timestamp
    );

    // A label alone configures without a new generation.
    let labelled = changed.replace(
        "name: hello-web\n",
        "name: hello-web\n  labels: { tier: web }\n",
    );
    let applied = f.apply(csp(), &labelled).unwrap();
    assert_eq!(
        (applied[0].action, applied[0].generation),
        (Action::Configured, 2)
    );
    assert_eq!(
        f.store.get(&job_key()).unwrap().unwrap().metadata.labels["tier"],
        "web"
    );
}

#[test]
fn references_resolve_against_the_store() {
    let f = Fixture::new();
    f.apply(csp(), &[ESCROW, PROJECT].join("---\n")).unwrap();
    assert_eq!(f.actions(JOB), [("hello-web".to_owned(), Action::Created)]);
    let with_tunnel = JOB.replace(
        "  type: container",
        "  tunnelRef: { name: hello-web }\n  type: container",
    );
    let errors = rejections(f.apply(csp(), &with_tunnel));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "spec.tunnelRef.name");
    assert!(errors[0].message.contains("not found"), "{}", errors[0]);
    assert_eq!(
        errors[0].resource.as_deref(),
        Some("DeeployJob default/hello-web")
    );
    assert_eq!(errors[0].document, Some(1));
    f.apply(csp(), TUNNEL).unwrap();
    assert_eq!(f.actions(&with_tunnel)[0].1, Action::Configured);
}

#[test]
fn an_invalid_set_stores_nothing() {
    let f = Fixture::new();
    let broken = JOB.replace("memory: 128Mi", "memory: 12XB");
    let errors = rejections(f.apply(csp(), &[ESCROW, PROJECT, &broken].join("---\n")));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "spec.resources.memory");
    assert_eq!(errors[0].document, Some(3));
    assert!(f.store.list_all(None).unwrap().is_empty());
    assert_eq!(f.store.namespace_owner("default").unwrap(), None);
    assert_eq!(f.store.resource_version(), 0);

    // Every problem is reported, not just the first.
    let errors = rejections(f.apply(csp(), &format!("{JOB}\n---\nkind: Pod\n---\n{JOB}")));
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"spec.projectRef.name"), "{paths:?}");
    assert!(paths.contains(&"spec.escrowRef.name"), "{paths:?}");
    assert!(paths.contains(&"apiVersion"), "{paths:?}");
    assert!(paths.contains(&"metadata.name"), "{paths:?}"); // defined twice
    assert!(
        rejections(f.apply(csp(), "# nothing here\n"))[0]
            .message
            .contains("no resources")
    );
    assert!(f.store.list_all(None).unwrap().is_empty());
}

#[test]
fn owners_must_be_the_signer() {
    let f = Fixture::new();
    let errors = rejections(f.apply(stranger(), ESCROW));
    assert_eq!(errors[0].path, "spec.owner");
    assert!(
        errors[0].message.contains("not the signer"),
        "{}",
        errors[0]
    );
    let errors = rejections(f.apply(stranger(), PROJECT));
    assert_eq!(errors[0].path, "spec.owner");
    assert!(f.store.list_all(None).unwrap().is_empty());
}

#[test]
fn namespaces_belong_to_their_first_applier() {
    let f = Fixture::new();
    f.apply(csp(), &all()).unwrap();
    let other_escrow = ESCROW.replace("acme-escrow", "other").replace(
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    );
    let err = f.apply(stranger(), &other_escrow).unwrap_err();
    assert_eq!(err.to_string(), "namespace default is not yours");
    // Reads and deletes answer as for a missing object; nothing names the owner.
    let missing = ObjectKey::new(Kind::Job, "default", "nope");
    for (theirs, absent) in [
        (
            get(&f.store, stranger(), &job_key()).map(drop),
            get(&f.store, csp(), &missing).map(drop),
        ),
        (
            delete(&f.store, stranger(), &job_key()).map(drop),
            delete(&f.store, csp(), &missing).map(drop),
        ),
    ] {
        let (theirs, absent) = (theirs.unwrap_err(), absent.unwrap_err());
        assert!(matches!(theirs, ApplyError::NotFound(_)), "{theirs:?}");
        assert!(matches!(absent, ApplyError::NotFound(_)), "{absent:?}");
        assert!(!theirs.to_string().contains("0x"), "{theirs}");
    }
    assert!(listed(&f.store, stranger(), Some(Kind::Job), Some("default")).is_empty());
    assert!(listed(&f.store, stranger(), None, None).is_empty());
    assert!(
        !f.store
            .get(&job_key())
            .unwrap()
            .unwrap()
            .metadata
            .deletion_requested
    );

    // The stranger has namespaces of its own.
    let theirs = other_escrow.replace("name: other\n", "name: other\n  namespace: theirs\n");
    f.apply(stranger(), &theirs).unwrap();
    assert_eq!(listed(&f.store, stranger(), None, None).len(), 1);
    assert_eq!(listed(&f.store, csp(), None, None).len(), 4);
    assert_eq!(listed(&f.store, csp(), Some(Kind::Job), None).len(), 1);
    assert!(listed(&f.store, csp(), None, Some("nobody")).is_empty());
    assert!(matches!(
        get(
            &f.store,
            csp(),
            &ObjectKey::new(Kind::Job, "default", "nope")
        ),
        Err(ApplyError::NotFound(_))
    ));
}

#[test]
fn immutable_fields_are_refused_with_their_path() {
    let f = Fixture::new();
    f.apply(csp(), &all()).unwrap();
    let second = ESCROW.replace("acme-escrow", "second-escrow");
    let moved = JOB
        .replace("name: acme-escrow", "name: second-escrow")
        .replace("type: container", "type: service");
    let errors = rejections(f.apply(csp(), &[second.as_str(), &moved].join("---\n")));
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"spec.escrowRef"), "{paths:?}");
    assert!(paths.contains(&"spec.type"), "{paths:?}");
    let errors = rejections(f.apply(csp(), &ESCROW.replace("31337", "8453")));
    assert_eq!(errors[0].path, "spec.chainId");
    assert!(errors[0].message.contains("immutable"), "{}", errors[0]);
}

#[test]
fn deletion_is_two_phase() {
    let f = Fixture::new();
    f.apply(csp(), &all()).unwrap();
    let escrow = ObjectKey::new(Kind::Escrow, "default", "acme-escrow");
    let err = delete(&f.store, csp(), &escrow).unwrap_err();
    assert!(matches!(err, ApplyError::InUse { .. }), "{err}");
    assert!(
        err.to_string().contains("DeeployJob default/hello-web"),
        "{err}"
    );

    let deleted = delete(&f.store, csp(), &job_key()).unwrap();
    assert_eq!(deleted.action, DeleteAction::Requested);
    let marked = f.store.get(&job_key()).unwrap().unwrap();
    assert!(marked.metadata.deletion_requested);
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.resource_version, deleted.resource_version);
    assert_eq!(
        delete(&f.store, csp(), &job_key()).unwrap().action,
        DeleteAction::AlreadyRequested
    );
    assert!(matches!(
        f.apply(csp(), JOB),
        Err(ApplyError::Terminating(_))
    ));

    // With the job on its way out, the escrow can go too.
    assert_eq!(
        delete(&f.store, csp(), &escrow).unwrap().action,
        DeleteAction::Requested
    );
    assert!(matches!(
        delete(
            &f.store,
            csp(),
            &ObjectKey::new(Kind::Job, "default", "nope")
        ),
        Err(ApplyError::NotFound(_))
    ));
    assert!(matches!(
        delete(
            &f.store,
            csp(),
            &ObjectKey::new(Kind::Job, "elsewhere", "nope")
        ),
        Err(ApplyError::NotFound(_))
    ));

    // The reconciler finalizes; the name can then be used again, as a new object.
    f.store.finalize_delete(&job_key(), None).unwrap();
    f.store.finalize_delete(&escrow, None).unwrap();
    let applied = f.apply(csp(), &[ESCROW, JOB].join("---\n")).unwrap();
    assert!(
        applied
            .iter()
            .all(|a| a.action == Action::Created && a.generation == 1)
    );
    assert_ne!(
        f.store.get(&job_key()).unwrap().unwrap().metadata.uid,
        marked.metadata.uid
    );
}

#[test]
fn references_to_objects_being_deleted_do_not_resolve() {
    let f = Fixture::new();
    f.apply(csp(), &[ESCROW, PROJECT, TUNNEL].join("---\n"))
        .unwrap();
    delete(
        &f.store,
        csp(),
        &ObjectKey::new(Kind::Escrow, "default", "acme-escrow"),
    )
    .unwrap();
    let errors = rejections(f.apply(csp(), JOB));
    assert_eq!(errors[0].path, "spec.escrowRef.name");
}

#[test]
fn claiming_a_namespace_needs_the_policy_and_says_the_same_as_a_taken_one() {
    let f = Fixture::new();
    let no_claims = Policy {
        may_claim: false,
        ..Policy::default()
    };
    assert_eq!(unclaimed_namespaces(&f.store, &all()).unwrap(), ["default"]);
    let err = apply_with(&f.store, &f.catalogue, csp(), &all(), &no_claims).unwrap_err();
    assert_eq!(err.to_string(), "namespace default is not yours");
    assert!(f.store.list_all(None).unwrap().is_empty());
    f.apply(csp(), &all()).unwrap();
    assert!(unclaimed_namespaces(&f.store, &all()).unwrap().is_empty());
    // Once owned, applying there needs no claim.
    let again = ESCROW.replace("acme-escrow", "second-escrow");
    apply_with(&f.store, &f.catalogue, csp(), &again, &no_claims).unwrap();
}

#[test]
fn quotas_bound_what_an_owner_keeps() {
    let f = Fixture::new();
    let policy = Policy {
        quotas: Quotas {
            objects: 5,
            namespaces: 2,
        },
        may_claim: true,
    };
    let apply = |text: &str| apply_with(&f.store, &f.catalogue, csp(), text, &policy);
    apply(&all()).unwrap();
    // Re-applying what exists adds nothing.
    apply(&all()).unwrap();
    let second = ESCROW.replace("acme-escrow", "second-escrow");
    apply(&second).unwrap();
    let third = ESCROW.replace("acme-escrow", "third-escrow");
    let err = apply(&third).unwrap_err();
    assert!(matches!(err, ApplyError::Quota(_)), "{err:?}");
    assert!(err.to_string().contains("objects quota is 5"), "{err}");
    let elsewhere = |ns: &str| {
        ESCROW.replace(
            "name: acme-escrow\n",
            &format!("name: acme-escrow\n  namespace: {ns}\n"),
        )
    };
    let policy = Policy {
        quotas: Quotas {
            objects: 100,
            namespaces: 2,
        },
        may_claim: true,
    };
    apply_with(&f.store, &f.catalogue, csp(), &elsewhere("two"), &policy).unwrap();
    let err = apply_with(&f.store, &f.catalogue, csp(), &elsewhere("three"), &policy).unwrap_err();
    assert!(err.to_string().contains("namespaces quota is 2"), "{err}");
    assert_eq!(f.store.count_objects("default").unwrap(), 5);
}
