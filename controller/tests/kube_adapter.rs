//! The Kubernetes adapter against kube's mock service: each test plays the API server for one
//! reconcile at a time, checks every request the adapter makes, and checks the real resource
//! store behind it.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions, where the usual exemption does not reach

use std::str::FromStr;
use std::sync::Arc;

use alloy_primitives::Address;
use http::{Method, Request, Response, StatusCode};
use kube::api::DynamicObject;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use r1_controller::intake::store::ResourceStore;
use r1_controller::kube::resource::{FINALIZER, UID_ANNOTATION, api_resource};
use r1_controller::kube::{ClusterView, KubeError, KubeMetrics, KubeSettings, Reconciler};
use r1_crds::api::object::ObjectKey;
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

const ESCROW: &str = include_str!("../../crds/examples/escrow.yaml");
const PROJECT: &str = include_str!("../../crds/examples/project.yaml");
const JOB: &str = include_str!("../../crds/examples/job-http.yaml");
const OWNER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const NS: &str = "shop";

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// One request the adapter made, as the API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

/// A reply of the fake API server other than its normal answer.
enum Reply {
    /// An HTTP error status with a Kubernetes `Status` body.
    Error(StatusCode, Value),
    /// No answer: the connection fails.
    Unreachable,
}

/// How the fake API server answers one request: `None` for its normal answer.
type Fault = fn(&Seen) -> Option<Reply>;

fn no_fault(_: &Seen) -> Option<Reply> {
    None
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<ResourceStore>,
    reconciler: Arc<Reconciler>,
    handle: ApiHandle,
    escrows: Writer<DynamicObject>,
    projects: Writer<DynamicObject>,
    metrics: KubeMetrics,
    settings: KubeSettings,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ResourceStore::open(dir.path()).unwrap());
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let escrows = Writer::new(api_resource(Kind::Escrow));
        let projects = Writer::new(api_resource(Kind::Project));
        let cluster = ClusterView {
            escrows: escrows.as_reader(),
            projects: projects.as_reader(),
        };
        let metrics = KubeMetrics::default();
        // Owner references have their own tests (kube::reconcile); this API server answers a
        // patch with the patch alone, which would lose the status these tests follow.
        let settings = KubeSettings {
            retry_initial_ms: 250,
            owner_references: false,
            ..KubeSettings::default()
        };
        let reconciler = Arc::new(Reconciler::new(
            client,
            Arc::clone(&store),
            Catalogue::builtin().unwrap(),
            cluster,
            settings.clone(),
            metrics.clone(),
        ));
        Self {
            _dir: dir,
            store,
            reconciler,
            handle,
            escrows,
            projects,
            metrics,
            settings,
        }
    }

    /// Makes an escrow or project visible to the adapter's watches.
    fn watched(&mut self, kind: Kind, object: &Value) {
        let writer = match kind {
            Kind::Escrow => &mut self.escrows,
            Kind::Project => &mut self.projects,
            _ => return,
        };
        writer.apply_watcher_event(&Event::Apply(dynamic(object)));
    }

    /// Runs one reconcile of `object` while playing the API server; returns the outcome, the
    /// requests made and the object as the server holds it afterwards.
    async fn reconcile(
        &mut self,
        kind: Kind,
        object: &Value,
        fault: Fault,
    ) -> (Result<Action, KubeError>, Vec<Seen>, Value) {
        let reconciler = Arc::clone(&self.reconciler);
        let dynamic_object = dynamic(object);
        let task = tokio::spawn(async move { reconciler.reconcile(kind, &dynamic_object).await });
        tokio::pin!(task);
        let mut current = object.clone();
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                result = &mut task => return (result.unwrap(), seen, current),
                request = self.handle.next_request() => {
                    let (request, send) = request.expect("the client is alive");
                    let request = read(request).await;
                    let reply = fault(&request);
                    match reply {
                        None => {
                            let (status, body) = answer(&request, &mut current);
                            send.send_response(respond(status, &body));
                        }
                        Some(Reply::Error(status, body)) => send.send_response(respond(status, &body)),
                        Some(Reply::Unreachable) => send.send_error("connection refused"),
                    }
                    seen.push(request);
                }
            }
        }
    }

    fn stored(&self, kind: Kind, name: &str) -> Option<r1_crds::api::object::StoredObject> {
        self.store.get(&ObjectKey::new(kind, NS, name)).unwrap()
    }

    /// Mirrors the example escrow, project and job; returns them as the server holds them.
    async fn mirror_examples(&mut self) -> (Value, Value, Value) {
        let escrow = resource(ESCROW, "uid-escrow");
        let project = resource(PROJECT, "uid-project");
        self.watched(Kind::Escrow, &escrow);
        self.watched(Kind::Project, &project);
        let (result, _, escrow) = self.reconcile(Kind::Escrow, &escrow, no_fault).await;
        result.unwrap();
        let (result, _, project) = self.reconcile(Kind::Project, &project, no_fault).await;
        result.unwrap();
        let (result, _, job) = self
            .reconcile(Kind::Job, &resource(JOB, "uid-job"), no_fault)
            .await;
        result.unwrap();
        (escrow, project, job)
    }
}

/// An example manifest as the API server would serve it after a `kubectl apply`.
fn resource(yaml: &str, uid: &str) -> Value {
    let mut value: Value = serde_yaml::from_str(yaml).unwrap();
    let metadata = value["metadata"].as_object_mut().unwrap();
    metadata.insert("namespace".into(), NS.into());
    metadata.insert("uid".into(), uid.into());
    metadata.insert("generation".into(), 1.into());
    metadata.insert("resourceVersion".into(), "100".into());
    metadata.insert("creationTimestamp".into(), "2026-01-01T00:00:00Z".into());
    value
}

fn dynamic(value: &Value) -> DynamicObject {
    serde_json::from_value(value.clone()).unwrap()
}

async fn read(request: Request<Body>) -> Seen {
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    Seen {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        },
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn api_error(code: StatusCode, message: &str) -> Reply {
    Reply::Error(
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "InternalError", "code": code.as_u16(),
        }),
    )
}

/// What a real API server would answer: merge patches (with the resource version as a
/// precondition) and status applies change `current`; events are created.
fn answer(request: &Seen, current: &mut Value) -> (StatusCode, Value) {
    let bump = |current: &mut Value| {
        let version: u64 = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        current["metadata"]["resourceVersion"] = (version + 1).to_string().into();
    };
    match (&request.method, request.content_type.as_str()) {
        (&Method::PATCH, "application/merge-patch+json") => {
            let expected = &request.body["metadata"]["resourceVersion"];
            if !expected.is_null() && *expected != current["metadata"]["resourceVersion"] {
                let conflict = json!({"kind": "Status", "status": "Failure", "code": 409,
                    "reason": "Conflict", "message": "the object has been modified"});
                return (StatusCode::CONFLICT, conflict);
            }
            let mut patch = request.body.clone();
            patch["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("resourceVersion");
            merge(current, &patch);
            bump(current);
            (StatusCode::OK, current.clone())
        }
        (&Method::PATCH, "application/apply-patch+yaml") => {
            current["status"] = request.body["status"].clone();
            bump(current);
            (StatusCode::OK, current.clone())
        }
        (&Method::POST, _) => (StatusCode::CREATED, request.body.clone()),
        other => panic!("unexpected request {other:?}: {request:?}"),
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().unwrap();
    for (key, value) in fields {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn condition<'a>(object: &'a Value, type_: &str) -> &'a Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

fn owner() -> Address {
    Address::from_str(OWNER).unwrap()
}

#[tokio::test]
async fn an_applied_resource_is_mirrored_with_its_owner_and_generation() {
    let mut f = Fixture::new();
    let escrow = resource(ESCROW, "uid-escrow");
    f.watched(Kind::Escrow, &escrow);
    let (result, seen, escrow) = f.reconcile(Kind::Escrow, &escrow, no_fault).await;
    assert_eq!(result.unwrap(), Action::requeue(f.settings.resync()));

    // First the finalizer, guarded by the resource version, then the status.
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].method, Method::PATCH);
    assert_eq!(
        seen[0].path,
        "/apis/deeploy.ratio1.ai/v1alpha1/namespaces/shop/escrows/acme-escrow"
    );
    assert_eq!(
        seen[0].body,
        json!({"metadata": {"finalizers": [FINALIZER], "resourceVersion": "100"}})
    );
    assert!(seen[1].path.ends_with("/escrows/acme-escrow/status"));
    assert_eq!(escrow["metadata"]["finalizers"], json!([FINALIZER]));
    let valid = condition(&escrow, "Valid");
    assert_eq!(valid["status"], "True");
    assert_eq!(valid["reason"], "Accepted");
    assert_eq!(valid["observedGeneration"], 1);

    let stored = f.stored(Kind::Escrow, "acme-escrow").unwrap();
    assert_eq!(stored.metadata.owner, owner());
    assert_eq!(stored.metadata.generation, 1);
    assert_eq!(stored.metadata.annotations[UID_ANNOTATION], "uid-escrow");
    assert_eq!(stored.spec.escrow().unwrap().chain_id, 31337);

    // The job takes the namespace's owner once its escrow and project are in.
    let project = resource(PROJECT, "uid-project");
    f.watched(Kind::Project, &project);
    f.reconcile(Kind::Project, &project, no_fault)
        .await
        .0
        .unwrap();
    let (result, _, job) = f
        .reconcile(Kind::Job, &resource(JOB, "uid-job"), no_fault)
        .await;
    result.unwrap();
    let stored = f.stored(Kind::Job, "hello-web").unwrap();
    assert_eq!(stored.metadata.owner, owner());
    assert_eq!(stored.metadata.generation, 1);

    // Reconciling the same resource again writes nothing anywhere.
    let version = f.store.resource_version();
    let (result, seen, _) = f.reconcile(Kind::Job, &job, no_fault).await;
    result.unwrap();
    assert!(seen.is_empty(), "{seen:#?}");
    assert_eq!(f.store.resource_version(), version);

    // A spec change is a new generation in both places.
    let mut edited = job.clone();
    edited["spec"]["image"] = "localhost:5000/r1-examples/httpd:2".into();
    edited["metadata"]["generation"] = 2.into();
    let (result, seen, edited) = f.reconcile(Kind::Job, &edited, no_fault).await;
    result.unwrap();
    let stored = f.stored(Kind::Job, "hello-web").unwrap();
    assert_eq!(stored.metadata.generation, 2);
    assert_eq!(
        stored.spec.job().unwrap().image.as_deref(),
        Some("localhost:5000/r1-examples/httpd:2")
    );
    assert_eq!(seen.len(), 1, "only the status: {seen:#?}");
    assert_eq!(condition(&edited, "Valid")["observedGeneration"], 2);
    assert_eq!(f.metrics.reconciles(Kind::Job), 3);
    assert_eq!(f.metrics.errors(Kind::Job), 0);
}

#[tokio::test]
async fn an_invalid_resource_gets_a_warning_event_with_the_field_path_and_stays_out_of_the_store() {
    let mut f = Fixture::new();
    let mut escrow = resource(ESCROW, "uid-escrow");
    escrow["spec"]["chainId"] = "many".into();
    f.watched(Kind::Escrow, &escrow);
    let (result, seen, escrow) = f.reconcile(Kind::Escrow, &escrow, no_fault).await;
    result.unwrap();
    assert_eq!(f.store.resource_version(), 0, "nothing written");
    assert!(f.stored(Kind::Escrow, "acme-escrow").is_none());

    let events: Vec<_> = seen.iter().filter(|s| s.method == Method::POST).collect();
    assert_eq!(events.len(), 1, "{seen:#?}");
    let event = events[0];
    assert_eq!(event.path, "/apis/events.k8s.io/v1/namespaces/shop/events");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "Invalid");
    assert_eq!(event.body["regarding"]["kind"], "Escrow");
    assert_eq!(event.body["regarding"]["name"], "acme-escrow");
    assert_eq!(event.body["regarding"]["uid"], "uid-escrow");
    let note = event.body["note"].as_str().unwrap();
    assert!(note.starts_with("spec.chainId: "), "{note}");

    let valid = condition(&escrow, "Valid");
    assert_eq!(valid["status"], "False");
    assert_eq!(valid["reason"], "Invalid");
    assert!(valid["message"].as_str().unwrap().contains("spec.chainId"));

    // Seen again unchanged: no second event, no status write.
    let (result, seen, _) = f.reconcile(Kind::Escrow, &escrow, no_fault).await;
    result.unwrap();
    assert!(seen.is_empty(), "{seen:#?}");

    // Fixed: accepted, and the condition turns True.
    let mut fixed = escrow.clone();
    fixed["spec"]["chainId"] = 31337.into();
    fixed["metadata"]["generation"] = 2.into();
    let (result, seen, fixed) = f.reconcile(Kind::Escrow, &fixed, no_fault).await;
    result.unwrap();
    assert!(seen.iter().all(|s| s.method != Method::POST), "{seen:#?}");
    assert_eq!(condition(&fixed, "Valid")["status"], "True");
    assert_eq!(
        f.stored(Kind::Escrow, "acme-escrow")
            .unwrap()
            .metadata
            .generation,
        1
    );
}

#[tokio::test]
async fn store_status_reaches_the_resource_by_server_side_apply() {
    let mut f = Fixture::new();
    let (_, _, job) = f.mirror_examples().await;
    let key = ObjectKey::new(Kind::Job, NS, "hello-web");
    let status = json!({
        "phase": "Running",
        "ready": "2/2",
        "readyReplicas": 2,
        "observedGeneration": 1,
        "conditions": [{
            "type": "Running", "status": "True", "reason": "AllReplicasReady",
            "message": "", "lastTransitionTime": "2026-01-01T00:01:00Z", "observedGeneration": 1,
        }],
    });
    f.store.update_status(&key, None, &status).unwrap();

    let (result, seen, job) = f.reconcile(Kind::Job, &job, no_fault).await;
    result.unwrap();
    // The status write, then the story's events (kube::story has their tests).
    let (events, writes): (Vec<&Seen>, Vec<&Seen>) =
        seen.iter().partition(|s| s.path.contains("/events"));
    assert_eq!(writes.len(), 1, "{seen:#?}");
    assert!(
        events.iter().all(|e| e.body["reason"] == "Deployed"),
        "{events:#?}"
    );
    let patch = writes[0];
    assert_eq!(patch.method, Method::PATCH);
    assert_eq!(patch.content_type, "application/apply-patch+yaml");
    assert_eq!(
        patch.path,
        "/apis/deeploy.ratio1.ai/v1alpha1/namespaces/shop/deeployjobs/hello-web/status"
    );
    assert!(
        patch.query.contains("fieldManager=r1-oracle"),
        "{}",
        patch.query
    );
    assert!(patch.query.contains("force=true"), "{}", patch.query);
    assert_eq!(patch.body["apiVersion"], "deeploy.ratio1.ai/v1alpha1");
    assert_eq!(patch.body["kind"], "DeeployJob");
    assert_eq!(patch.body["status"]["phase"], "Running");
    assert_eq!(patch.body["status"]["ready"], "2/2");
    assert_eq!(job["status"]["observedGeneration"], 1);
    assert_eq!(condition(&job, "Running")["reason"], "AllReplicasReady");
    let valid = condition(&job, "Valid").clone();
    assert_eq!(valid["status"], "True");

    // Unchanged store status: nothing is written.
    let (result, seen, job) = f.reconcile(Kind::Job, &job, no_fault).await;
    result.unwrap();
    assert!(seen.is_empty(), "{seen:#?}");

    // A new status is written again; the Valid condition keeps its transition time.
    let mut status = status;
    status["phase"] = "Degraded".into();
    f.store.update_status(&key, None, &status).unwrap();
    let (result, seen, job) = f.reconcile(Kind::Job, &job, no_fault).await;
    result.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(job["status"]["phase"], "Degraded");
    assert_eq!(
        condition(&job, "Valid")["lastTransitionTime"],
        valid["lastTransitionTime"]
    );

    // An edit the store refuses keeps the last accepted status, now one generation behind.
    let mut edited = job.clone();
    edited["spec"]["replicas"] = 0.into();
    edited["metadata"]["generation"] = 2.into();
    let (result, _, edited) = f.reconcile(Kind::Job, &edited, no_fault).await;
    result.unwrap();
    assert_eq!(edited["status"]["phase"], "Degraded");
    assert_eq!(edited["status"]["observedGeneration"], 1);
    assert_eq!(condition(&edited, "Valid")["status"], "False");
    assert_eq!(condition(&edited, "Valid")["observedGeneration"], 2);
    assert_eq!(
        f.stored(Kind::Job, "hello-web")
            .unwrap()
            .spec
            .job()
            .unwrap()
            .replicas,
        2
    );
}

#[tokio::test]
async fn deletion_holds_the_finalizer_until_the_oracle_finalizes() {
    let mut f = Fixture::new();
    let (escrow, _, job) = f.mirror_examples().await;
    let key = ObjectKey::new(Kind::Job, NS, "hello-web");

    // The escrow still pays for the job: its deletion waits, with one Warning event.
    let mut deleting_escrow = escrow.clone();
    deleting_escrow["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z".into();
    let (result, seen, _) = f.reconcile(Kind::Escrow, &deleting_escrow, no_fault).await;
    result.unwrap();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].body["reason"], "InUse");
    assert!(
        !f.stored(Kind::Escrow, "acme-escrow")
            .unwrap()
            .metadata
            .deletion_requested
    );
    let (_, seen, _) = f.reconcile(Kind::Escrow, &deleting_escrow, no_fault).await;
    assert!(seen.is_empty(), "the same news is not repeated: {seen:#?}");

    let mut deleting = job.clone();
    deleting["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z".into();
    let (result, seen, deleting) = f.reconcile(Kind::Job, &deleting, no_fault).await;
    result.unwrap();
    assert!(seen.is_empty(), "the finalizer stays: {seen:#?}");
    let stored = f.stored(Kind::Job, "hello-web").unwrap();
    assert!(stored.metadata.deletion_requested);
    assert_eq!(deleting["metadata"]["finalizers"], json!([FINALIZER]));

    // The oracle is still closing the job: the finalizer still stays, status flows.
    f.store
        .update_status(&key, None, &json!({"phase": "Closing"}))
        .unwrap();
    let (result, seen, deleting) = f.reconcile(Kind::Job, &deleting, no_fault).await;
    result.unwrap();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert!(seen[0].path.ends_with("/status"));
    assert_eq!(deleting["status"]["phase"], "Closing");
    assert_eq!(deleting["metadata"]["finalizers"], json!([FINALIZER]));

    // Closed on chain: the finalizer goes.
    f.store.finalize_delete(&key, None).unwrap();
    let (result, seen, deleted) = f.reconcile(Kind::Job, &deleting, no_fault).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].content_type, "application/merge-patch+json");
    assert_eq!(seen[0].body["metadata"]["finalizers"], json!([]));
    assert_eq!(deleted["metadata"]["finalizers"], json!([]));
    assert!(f.stored(Kind::Job, "hello-web").is_none());

    // Now the escrow's deletion is requested.
    let (result, seen, _) = f.reconcile(Kind::Escrow, &deleting_escrow, no_fault).await;
    result.unwrap();
    assert!(seen.is_empty(), "{seen:#?}");
    assert!(
        f.stored(Kind::Escrow, "acme-escrow")
            .unwrap()
            .metadata
            .deletion_requested
    );
}

#[tokio::test]
async fn a_resource_that_was_never_mirrored_releases_its_finalizer_at_once() {
    let mut f = Fixture::new();
    let (escrow, _, _) = f.mirror_examples().await;
    // Another incarnation under the same name: the store object is not this resource's.
    let mut other = escrow.clone();
    other["metadata"]["uid"] = "uid-other".into();
    other["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z".into();
    let (result, seen, _) = f.reconcile(Kind::Escrow, &other, no_fault).await;
    result.unwrap();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].body["metadata"]["finalizers"], json!([]));
    assert!(
        !f.stored(Kind::Escrow, "acme-escrow")
            .unwrap()
            .metadata
            .deletion_requested
    );
}

fn fail_everything(_: &Seen) -> Option<Reply> {
    Some(api_error(StatusCode::INTERNAL_SERVER_ERROR, "etcd is gone"))
}

fn fail_status(seen: &Seen) -> Option<Reply> {
    seen.path
        .ends_with("/status")
        .then(|| api_error(StatusCode::SERVICE_UNAVAILABLE, "try later"))
}

fn unreachable(_: &Seen) -> Option<Reply> {
    Some(Reply::Unreachable)
}

#[tokio::test]
async fn api_server_errors_leave_the_store_untouched() {
    let mut f = Fixture::new();
    let escrow = resource(ESCROW, "uid-escrow");
    f.watched(Kind::Escrow, &escrow);
    let (result, seen, _) = f.reconcile(Kind::Escrow, &escrow, fail_everything).await;
    let error = result.unwrap_err();
    assert!(matches!(error, KubeError::Api(_)), "{error}");
    assert_eq!(
        seen.len(),
        1,
        "nothing after the failed finalizer: {seen:#?}"
    );
    assert_eq!(f.store.resource_version(), 0);
    let object = dynamic(&escrow);
    assert_eq!(
        f.reconciler.error_policy(Kind::Escrow, &object, &error),
        Action::requeue(f.settings.retry_delay(1))
    );
    assert_eq!(
        f.reconciler.error_policy(Kind::Escrow, &object, &error),
        Action::requeue(f.settings.retry_delay(2)),
        "backs off"
    );
    assert_eq!(f.metrics.errors(Kind::Escrow), 2);

    // Mirrored objects keep their spec and status through failures, including an API server
    // that cannot be reached at all.
    let (_, _, job) = f.mirror_examples().await;
    let key = ObjectKey::new(Kind::Job, NS, "hello-web");
    f.store
        .update_status(&key, None, &json!({"phase": "Running"}))
        .unwrap();
    let before = f.stored(Kind::Job, "hello-web").unwrap();
    let version = f.store.resource_version();
    for fault in [fail_status as Fault, unreachable] {
        let (result, seen, _) = f.reconcile(Kind::Job, &job, fault).await;
        assert!(matches!(result, Err(KubeError::Api(_))), "{result:?}");
        assert_eq!(seen.len(), 1);
        assert_eq!(f.store.resource_version(), version);
        assert_eq!(f.stored(Kind::Job, "hello-web").unwrap(), before);
    }
}
