#![allow(clippy::unwrap_used)] // test helpers and fixtures

use std::str::FromStr;

use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;
use crate::kube::resource::api_resource;

const ESCROW: &str = include_str!("../../../../crds/examples/escrow.yaml");
const PROJECT: &str = include_str!("../../../../crds/examples/project.yaml");
const JOB: &str = include_str!("../../../../crds/examples/job-http.yaml");
const OWNER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

fn resource(yaml: &str, uid: &str) -> DynamicObject {
    let mut value: Value = serde_yaml::from_str(yaml).unwrap();
    value["metadata"]["namespace"] = json!("shop");
    value["metadata"]["uid"] = json!(uid);
    value["metadata"]["generation"] = json!(1);
    value["metadata"]["resourceVersion"] = json!("7");
    serde_json::from_value(value).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: ResourceStore,
    catalogue: Catalogue,
    escrows: Writer<DynamicObject>,
    projects: Writer<DynamicObject>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = ResourceStore::open(dir.path()).unwrap();
        Self {
            _dir: dir,
            store,
            catalogue: Catalogue::builtin().unwrap(),
            escrows: Writer::new(api_resource(Kind::Escrow)),
            projects: Writer::new(api_resource(Kind::Project)),
        }
    }

    fn seen(&mut self, kind: Kind, object: &DynamicObject) {
        let writer = match kind {
            Kind::Escrow => &mut self.escrows,
            _ => &mut self.projects,
        };
        writer.apply_watcher_event(&Event::Apply(object.clone()));
    }

    fn mirror(&self, kind: Kind, object: &DynamicObject) -> Mirror {
        let cluster = ClusterView {
            escrows: self.escrows.as_reader(),
            projects: self.projects.as_reader(),
        };
        mirror(&self.store, &self.catalogue, &cluster, kind, object).unwrap()
    }
}

#[test]
fn the_document_holds_only_what_the_csp_meant() {
    let mut object = resource(JOB, "uid-1");
    object.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
    object.metadata.annotations = Some(
        [
            ("note".to_owned(), "hi".to_owned()),
            (CLIENT_ANNOTATIONS[0].to_owned(), "{}".to_owned()),
        ]
        .into(),
    );
    object.metadata.finalizers = Some(vec!["x".into()]);
    object.data["status"] = json!({"phase": "Running"});
    let document = desired_document(Kind::Job, &object);
    assert_eq!(
        document["metadata"],
        json!({
            "name": "hello-web",
            "namespace": "shop",
            "labels": {"app": "web"},
            "annotations": {"note": "hi", UID_ANNOTATION: "uid-1"},
        })
    );
    assert_eq!(document["apiVersion"], API_VERSION);
    assert_eq!(document["kind"], "DeeployJob");
    assert_eq!(
        document["spec"]["image"],
        "localhost:5000/r1-examples/httpd:1"
    );
    assert!(document.get("status").is_none());
}

#[test]
fn escrows_and_projects_are_mirrored_for_their_owner_then_jobs_for_the_namespaces() {
    let mut f = Fixture::new();
    let job = resource(JOB, "uid-job");
    assert!(matches!(
        f.mirror(Kind::Job, &job),
        Mirror::Waiting {
            reason: "WaitingForOwner",
            ..
        }
    ));

    let escrow = resource(ESCROW, "uid-escrow");
    f.seen(Kind::Escrow, &escrow);
    assert!(matches!(
        f.mirror(Kind::Job, &job),
        Mirror::Waiting { reason: "WaitingForOwner", message } if message.contains("waiting for the oracle")
    ));
    assert_eq!(f.mirror(Kind::Escrow, &escrow), Mirror::Accepted);
    let owner = Address::from_str(OWNER).unwrap();
    assert_eq!(f.store.namespace_owner("shop").unwrap(), Some(owner));

    match f.mirror(Kind::Job, &job) {
        Mirror::Waiting { reason, message } => {
            assert_eq!(reason, "WaitingForReference");
            assert!(message.contains("DeeployProject hello"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let project = resource(PROJECT, "uid-project");
    f.seen(Kind::Project, &project);
    assert_eq!(f.mirror(Kind::Project, &project), Mirror::Accepted);
    let version = f.store.resource_version();
    assert_eq!(f.mirror(Kind::Job, &job), Mirror::Accepted);
    let stored = f
        .store
        .get(&ObjectKey::new(Kind::Job, "shop", "hello-web"))
        .unwrap()
        .unwrap();
    assert_eq!(stored.metadata.owner, owner);
    assert_eq!(stored.metadata.generation, 1);
    assert_eq!(stored.metadata.annotations[UID_ANNOTATION], "uid-job");
    assert!(f.store.resource_version() > version);

    let version = f.store.resource_version();
    assert_eq!(f.mirror(Kind::Job, &job), Mirror::Accepted);
    assert_eq!(
        f.store.resource_version(),
        version,
        "unchanged: nothing written"
    );
}

#[test]
fn invalid_resources_are_rejected_with_field_paths_and_nothing_is_written() {
    let mut f = Fixture::new();
    let escrow = resource(ESCROW, "uid-escrow");
    f.seen(Kind::Escrow, &escrow);
    let mut bad = escrow.clone();
    bad.data["spec"]["chainId"] = json!("many");
    match f.mirror(Kind::Escrow, &bad) {
        Mirror::Rejected {
            reason, problems, ..
        } => {
            assert_eq!(reason, "Invalid");
            assert!(problems[0].starts_with("spec.chainId: "), "{problems:?}");
        }
        other => panic!("{other:?}"),
    }
    let mut bad = escrow.clone();
    bad.data["spec"]["owner"] = json!("nobody");
    assert!(matches!(
        f.mirror(Kind::Escrow, &bad),
        Mirror::Rejected { reason: "Invalid", problems, .. } if problems[0].starts_with("spec.owner: ")
    ));
    assert_eq!(f.store.resource_version(), 0);

    assert_eq!(f.mirror(Kind::Escrow, &escrow), Mirror::Accepted);
    let project = resource(PROJECT, "uid-project");
    f.seen(Kind::Project, &project);
    assert_eq!(f.mirror(Kind::Project, &project), Mirror::Accepted);
    let mut job = resource(JOB, "uid-job");
    job.data["spec"]["resources"]["memory"] = json!("lots");
    let version = f.store.resource_version();
    match f.mirror(Kind::Job, &job) {
        Mirror::Rejected {
            reason,
            problems,
            shows_store,
        } => {
            assert_eq!(reason, "Invalid");
            assert!(shows_store);
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with("spec.resources.memory: ")),
                "{problems:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.store.resource_version(), version);
}

#[test]
fn another_owner_is_refused_in_a_claimed_namespace() {
    let mut f = Fixture::new();
    let escrow = resource(ESCROW, "uid-escrow");
    f.seen(Kind::Escrow, &escrow);
    assert_eq!(f.mirror(Kind::Escrow, &escrow), Mirror::Accepted);
    let mut project = resource(PROJECT, "uid-project");
    project.data["spec"]["owner"] = json!(Address::repeat_byte(1).to_checksum(None));
    f.seen(Kind::Project, &project);
    assert!(matches!(
        f.mirror(Kind::Project, &project),
        Mirror::Rejected {
            reason: "Forbidden",
            shows_store: false,
            ..
        }
    ));
    let tunnel = resource(
        include_str!("../../../../crds/examples/tunnel.yaml"),
        "uid-tunnel",
    );
    assert!(matches!(
        f.mirror(Kind::Tunnel, &tunnel),
        Mirror::Rejected { reason: "Forbidden", problems, .. } if problems[0].contains("different owners")
    ));
}
