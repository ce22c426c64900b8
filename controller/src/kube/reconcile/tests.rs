//! Reconciles against kube's mock service (tower-test): the test plays the API server for one
//! reconcile at a time and checks every request the adapter makes — the owner references it
//! applies and the events of a job's story.

#![allow(clippy::unwrap_used)] // test helpers and fixtures

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::json;
use tower_test::mock::{self, Handle};

use super::*;
use crate::decide::rollout::ROLLOUT_FAILED;
use crate::kube::resource::api_resource;

const ESCROW: &str = include_str!("../../../../crds/examples/escrow.yaml");
const PROJECT: &str = include_str!("../../../../crds/examples/project.yaml");
const TUNNEL: &str = include_str!("../../../../crds/examples/tunnel.yaml");
const JOB: &str = include_str!("../../../../crds/examples/job-http.yaml");
const NS: &str = "shop";

/// One request the adapter made, as the API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<ResourceStore>,
    reconciler: Arc<Reconciler>,
    handle: Handle<Request<Body>, Response<Body>>,
    escrows: Writer<DynamicObject>,
    projects: Writer<DynamicObject>,
}

impl Fixture {
    fn new(settings: KubeSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ResourceStore::open(dir.path()).unwrap());
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let escrows = Writer::new(api_resource(Kind::Escrow));
        let projects = Writer::new(api_resource(Kind::Project));
        let cluster = ClusterView {
            escrows: escrows.as_reader(),
            projects: projects.as_reader(),
        };
        let reconciler = Arc::new(Reconciler::new(
            client,
            Arc::clone(&store),
            Catalogue::builtin().unwrap(),
            cluster,
            settings,
            KubeMetrics::default(),
        ));
        Self {
            _dir: dir,
            store,
            reconciler,
            handle,
            escrows,
            projects,
        }
    }

    /// Makes an escrow or project visible to the adapter's watches.
    fn watched(&mut self, kind: Kind, object: &Value) {
        let writer = match kind {
            Kind::Escrow => &mut self.escrows,
            _ => &mut self.projects,
        };
        writer.apply_watcher_event(&Event::Apply(dynamic(object)));
    }

    /// Runs one reconcile of `object` while playing the API server; returns the requests made
    /// and the object as the server holds it afterwards.
    async fn reconcile(&mut self, kind: Kind, object: &Value) -> (Vec<Seen>, Value) {
        let reconciler = Arc::clone(&self.reconciler);
        let dynamic_object = dynamic(object);
        let task = tokio::spawn(async move { reconciler.reconcile(kind, &dynamic_object).await });
        tokio::pin!(task);
        let mut current = object.clone();
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                result = &mut task => {
                    result.unwrap().unwrap();
                    return (seen, current);
                }
                request = self.handle.next_request() => {
                    let (request, send) = request.expect("the client is alive");
                    let request = read(request).await;
                    let (status, body) = answer(&request, &mut current);
                    send.send_response(respond(status, &body));
                    seen.push(request);
                }
            }
        }
    }

    /// Mirrors the example escrow and project, both watched; returns the project as served.
    async fn owner_and_project(&mut self) -> Value {
        let escrow = resource(ESCROW, "uid-escrow");
        let project = resource(PROJECT, "uid-project");
        self.watched(Kind::Escrow, &escrow);
        self.watched(Kind::Project, &project);
        self.reconcile(Kind::Escrow, &escrow).await;
        self.reconcile(Kind::Project, &project).await.1
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

/// What the API server would answer: merge patches of the finalizers, applies of the status or
/// of the owner references, created events.
fn answer(request: &Seen, current: &mut Value) -> (StatusCode, Value) {
    match (&request.method, request.content_type.as_str()) {
        (&Method::PATCH, "application/merge-patch+json") => {
            current["metadata"]["finalizers"] = request.body["metadata"]["finalizers"].clone();
            (StatusCode::OK, current.clone())
        }
        (&Method::PATCH, "application/apply-patch+yaml") if request.path.ends_with("/status") => {
            current["status"] = request.body["status"].clone();
            (StatusCode::OK, current.clone())
        }
        (&Method::PATCH, "application/apply-patch+yaml") => {
            current["metadata"]["ownerReferences"] =
                request.body["metadata"]["ownerReferences"].clone();
            (StatusCode::OK, current.clone())
        }
        (&Method::POST, _) => (StatusCode::CREATED, request.body.clone()),
        other => panic!("unexpected request {other:?}: {request:?}"),
    }
}

fn owner_applies(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| {
            s.content_type == "application/apply-patch+yaml" && !s.path.ends_with("/status")
        })
        .collect()
}

fn events(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|s| s.method == Method::POST).collect()
}

/// The owner reference to the example project, as the adapter applies it.
fn project_reference() -> Value {
    json!({
        "apiVersion": "deeploy.ratio1.ai/v1alpha1",
        "kind": "DeeployProject",
        "name": "hello",
        "uid": "uid-project",
        "blockOwnerDeletion": true,
        "controller": false,
    })
}

#[tokio::test]
async fn a_job_is_tied_to_its_project_by_server_side_apply_once() {
    let mut f = Fixture::new(KubeSettings::default());
    f.owner_and_project().await;
    let (seen, job) = f.reconcile(Kind::Job, &resource(JOB, "uid-job")).await;
    let applies = owner_applies(&seen);
    assert_eq!(applies.len(), 1, "{seen:#?}");
    let apply = applies[0];
    assert_eq!(apply.method, Method::PATCH);
    assert_eq!(
        apply.path,
        "/apis/deeploy.ratio1.ai/v1alpha1/namespaces/shop/deeployjobs/hello-web"
    );
    assert_eq!(apply.query, "&fieldManager=r1-oracle");
    assert_eq!(
        apply.body,
        json!({
            "apiVersion": "deeploy.ratio1.ai/v1alpha1",
            "kind": "DeeployJob",
            "metadata": {
                "name": "hello-web",
                "ownerReferences": [project_reference()],
            },
        })
    );
    // After the status, so a failing status write is not hidden behind it.
    assert!(
        seen.last()
            .unwrap()
            .path
            .ends_with("/deeployjobs/hello-web")
    );
    assert_eq!(
        job["metadata"]["ownerReferences"],
        json!([project_reference()])
    );

    // The reference is there: nothing is written again.
    let (seen, _) = f.reconcile(Kind::Job, &job).await;
    assert!(seen.is_empty(), "{seen:#?}");
}

#[tokio::test]
async fn no_reference_to_a_project_the_cluster_does_not_show() {
    let mut f = Fixture::new(KubeSettings::default());
    f.owner_and_project().await;
    // The job names a project that exists nowhere (it waits for it, and is refused meanwhile).
    let mut job = resource(JOB, "uid-job");
    job["spec"]["projectRef"]["name"] = "elsewhere".into();
    let (seen, _) = f.reconcile(Kind::Job, &job).await;
    assert!(owner_applies(&seen).is_empty(), "{seen:#?}");

    // A project without a uid yet (not from the API server) is not referenced either.
    let mut unknown = resource(PROJECT, "");
    unknown["metadata"]["name"] = "elsewhere".into();
    f.watched(Kind::Project, &unknown);
    let (seen, _) = f.reconcile(Kind::Job, &job).await;
    assert!(owner_applies(&seen).is_empty(), "{seen:#?}");
}

#[tokio::test]
async fn owner_references_can_be_turned_off() {
    let mut f = Fixture::new(KubeSettings {
        owner_references: false,
        ..KubeSettings::default()
    });
    f.owner_and_project().await;
    let (seen, job) = f.reconcile(Kind::Job, &resource(JOB, "uid-job")).await;
    assert!(owner_applies(&seen).is_empty(), "{seen:#?}");
    assert!(job["metadata"]["ownerReferences"].is_null());
}

#[tokio::test]
async fn a_tunnel_is_tied_to_the_projects_of_the_jobs_using_it() {
    let mut f = Fixture::new(KubeSettings::default());
    f.owner_and_project().await;
    let tunnel = resource(TUNNEL, "uid-tunnel");
    let (seen, tunnel) = f.reconcile(Kind::Tunnel, &tunnel).await;
    assert!(
        owner_applies(&seen).is_empty(),
        "no job uses it yet: {seen:#?}"
    );
    assert!(
        f.store
            .get(&ObjectKey::new(Kind::Tunnel, NS, "hello-web"))
            .unwrap()
            .is_some(),
        "the tunnel is mirrored"
    );

    let mut job = resource(JOB, "uid-job");
    job["spec"]["tunnelRef"] = json!({"name": "hello-web"});
    let (_, job) = f.reconcile(Kind::Job, &job).await;
    assert!(
        f.store
            .get(&ObjectKey::new(Kind::Job, NS, "hello-web"))
            .unwrap()
            .is_some(),
        "the job is mirrored: {job:#?}"
    );

    let (seen, tunnel) = f.reconcile(Kind::Tunnel, &tunnel).await;
    let applies = owner_applies(&seen);
    assert_eq!(applies.len(), 1, "{seen:#?}");
    assert_eq!(
        applies[0].path,
        "/apis/deeploy.ratio1.ai/v1alpha1/namespaces/shop/tunnels/hello-web"
    );
    assert_eq!(applies[0].query, "&fieldManager=r1-oracle");
    assert_eq!(
        applies[0].body,
        json!({
            "apiVersion": "deeploy.ratio1.ai/v1alpha1",
            "kind": "Tunnel",
            "metadata": {
                "name": "hello-web",
                "ownerReferences": [project_reference()],
            },
        })
    );
    let (seen, _) = f.reconcile(Kind::Tunnel, &tunnel).await;
    assert!(seen.is_empty(), "{seen:#?}");
}

#[tokio::test]
async fn a_refused_owner_reference_does_not_fail_the_reconcile() {
    let mut f = Fixture::new(KubeSettings::default());
    f.owner_and_project().await;
    let reconciler = Arc::clone(&f.reconciler);
    let job = dynamic(&resource(JOB, "uid-job"));
    let task = tokio::spawn(async move { reconciler.reconcile(Kind::Job, &job).await });
    tokio::pin!(task);
    let mut current = resource(JOB, "uid-job");
    let mut refused = 0;
    loop {
        tokio::select! {
            result = &mut task => {
                assert!(result.unwrap().is_ok());
                break;
            }
            request = f.handle.next_request() => {
                let (request, send) = request.unwrap();
                let request = read(request).await;
                if owner_applies(std::slice::from_ref(&request)).is_empty() {
                    let (status, body) = answer(&request, &mut current);
                    send.send_response(respond(status, &body));
                } else {
                    refused += 1;
                    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": "cannot set blockOwnerDeletion", "reason": "Forbidden", "code": 403});
                    send.send_response(respond(StatusCode::FORBIDDEN, &forbidden));
                }
            }
        }
    }
    assert_eq!(refused, 1);
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1})
}

#[tokio::test]
async fn a_jobs_story_is_told_once_as_events() {
    let mut f = Fixture::new(KubeSettings::default());
    f.owner_and_project().await;
    let (_, job) = f.reconcile(Kind::Job, &resource(JOB, "uid-job")).await;
    let key = ObjectKey::new(Kind::Job, NS, "hello-web");

    let funded = json!({
        "phase": "Funded",
        "chainJobId": "4",
        "budgetLeft": "22.50",
        "pricePerEpoch": "0.75",
        "currentEpoch": 10,
        "observedGeneration": 1,
        "conditions": [
            condition("Funded", "True", "BudgetLocked", "chain job 4 pays 2 nodes until epoch 40"),
            condition("Scheduled", "False", "NoEligibleNode", "waiting for eligible nodes"),
        ],
    });
    f.store.update_status(&key, None, &funded).unwrap();
    let (seen, shown) = f.reconcile(Kind::Job, &job).await;
    let told = events(&seen);
    assert_eq!(told.len(), 1, "{seen:#?}");
    let event = &told[0].body;
    assert_eq!(
        told[0].path,
        "/apis/events.k8s.io/v1/namespaces/shop/events"
    );
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["reason"], "Funded");
    assert_eq!(event["action"], "Fund");
    assert_eq!(
        event["note"],
        "chain job 4 pays 2 nodes until epoch 40; 22.50 USDC locked, 0.75 USDC per epoch"
    );
    assert_eq!(event["regarding"]["kind"], "DeeployJob");
    assert_eq!(event["regarding"]["name"], "hello-web");
    assert_eq!(event["regarding"]["uid"], "uid-job");
    assert_eq!(event["reportingController"], "deeploy.ratio1.ai/r1-oracle");
    assert_eq!(shown["status"]["phase"], "Funded");

    // A stale copy of the resource (the watch has not caught up): the status is written again,
    // the story is not told again.
    let (seen, _) = f.reconcile(Kind::Job, &job).await;
    assert_eq!(seen.len(), 1, "only the status: {seen:#?}");
    assert!(seen[0].path.ends_with("/status"));

    // Closed: told once, with the refund.
    let closed = json!({
        "phase": "Closed",
        "chainJobId": "4",
        "budgetLeft": "0.00",
        "observedGeneration": 1,
        "conditions": [
            condition("Closed", "True", "JobClosed", "chain job 4 is closed; its workloads are removed"),
        ],
    });
    f.store.update_status(&key, None, &closed).unwrap();
    let (seen, shown) = f.reconcile(Kind::Job, &shown).await;
    let told = events(&seen);
    assert_eq!(told.len(), 1, "{seen:#?}");
    assert_eq!(told[0].body["reason"], "Closed");
    assert!(
        told[0].body["note"]
            .as_str()
            .unwrap()
            .ends_with("(last seen: 22.50 USDC) is refunded to the CSP")
    );
    let (seen, _) = f.reconcile(Kind::Job, &shown).await;
    assert!(seen.is_empty(), "{seen:#?}");
}

#[tokio::test]
async fn a_rollback_is_a_warning_event() {
    let mut f = Fixture::new(KubeSettings::default());
    f.owner_and_project().await;
    let (_, job) = f.reconcile(Kind::Job, &resource(JOB, "uid-job")).await;
    let key = ObjectKey::new(Kind::Job, NS, "hello-web");
    let status = |rolled_out: Value| {
        json!({
            "phase": "Running",
            "observedGeneration": 1,
            "conditions": [
                condition("Running", "True", "AllReplicasHealthy", "2/2 replicas healthy"),
                rolled_out,
            ],
        })
    };
    f.store
        .update_status(
            &key,
            None,
            &status(condition(
                "RolledOut",
                "True",
                "RolloutComplete",
                "every replica runs revision 1a2b",
            )),
        )
        .unwrap();
    let (seen, job) = f.reconcile(Kind::Job, &job).await;
    let reasons: Vec<&Value> = events(&seen).iter().map(|e| &e.body["reason"]).collect();
    assert_eq!(reasons, [&json!("Deployed"), &json!("RolledOut")]);

    f.store
        .update_status(
            &key,
            None,
            &status(condition(
                "RolledOut",
                "False",
                ROLLOUT_FAILED,
                "replica 0 of revision 8c1f crash-looped; rolling back to revision 1a2b",
            )),
        )
        .unwrap();
    let (seen, _) = f.reconcile(Kind::Job, &job).await;
    let told = events(&seen);
    assert_eq!(told.len(), 1, "{seen:#?}");
    assert_eq!(told[0].body["type"], "Warning");
    assert_eq!(told[0].body["reason"], "RolledBack");
    assert_eq!(told[0].body["action"], "RollBack");
}
