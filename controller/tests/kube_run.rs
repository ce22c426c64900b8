//! The whole Kubernetes adapter (`r1_controller::kube::run`) against a small in-memory API
//! server behind kube's mock service: lists, long-polled watches, merge patches, status applies
//! and events, enough for the adapter's four controllers to run as they would on a cluster.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions, where the usual exemption does not reach

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use r1_controller::intake::store::ResourceStore;
use r1_controller::kube::resource::FINALIZER;
use r1_controller::kube::signed::Network;
use r1_controller::kube::{KubeMetrics, KubeSettings, run_with_metrics};
use r1_crds::api::object::ObjectKey;
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

const NS: &str = "shop";

/// `(plural, namespace, name)`.
type Key = (String, String, String);

/// A watch request waiting for changes newer than `since`.
struct PendingWatch {
    plural: String,
    since: u64,
    send: SendResponse<Response<Body>>,
}

/// The fake API server's state.
#[derive(Default)]
struct Cluster {
    version: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change: version, plural, watch event type, object.
    changes: Vec<(u64, String, &'static str, Value)>,
    watches: Vec<PendingWatch>,
    events: Vec<Value>,
    /// While set, every request fails as if the API server were unreachable.
    down: bool,
}

impl Cluster {
    /// The API server becomes unreachable: open watches break, new requests fail.
    fn go_down(&mut self) {
        self.down = true;
        for watch in std::mem::take(&mut self.watches) {
            watch.send.send_error("connection reset");
        }
    }

    fn record(&mut self, plural: &str, kind: &'static str, object: Value) {
        self.changes
            .push((self.version, plural.to_owned(), kind, object));
        let pending = std::mem::take(&mut self.watches);
        for watch in pending {
            self.answer_watch(watch);
        }
    }

    /// Creates or replaces an object as a client would; deletion-marked objects without
    /// finalizers disappear.
    fn put(&mut self, plural: &str, mut object: Value) {
        self.version += 1;
        object["metadata"]["resourceVersion"] = self.version.to_string().into();
        let key = key_of(plural, &object);
        let gone = !object["metadata"]["deletionTimestamp"].is_null()
            && object["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if gone {
            self.objects.remove(&key);
            self.record(plural, "DELETED", object);
        } else {
            let kind = if self.objects.contains_key(&key) {
                "MODIFIED"
            } else {
                "ADDED"
            };
            self.objects.insert(key, object.clone());
            self.record(plural, kind, object);
        }
    }

    fn get(&self, plural: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(plural.to_owned(), NS.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Answers a watch now if there is something newer than it has seen, else keeps it.
    fn answer_watch(&mut self, watch: PendingWatch) {
        let lines: Vec<String> = self
            .changes
            .iter()
            .filter(|(version, plural, ..)| *version > watch.since && *plural == watch.plural)
            .map(|(_, _, kind, object)| json!({"type": kind, "object": object}).to_string())
            .collect();
        if lines.is_empty() {
            self.watches.push(watch);
        } else {
            let body = lines.join("\n") + "\n";
            watch.send.send_response(
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Body::from(body.into_bytes()))
                    .unwrap(),
            );
        }
    }

    fn list(&self, plural: &str) -> Value {
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|((p, ..), _)| p == plural)
            .map(|(_, object)| object)
            .collect();
        json!({
            "apiVersion": "deeploy.ratio1.ai/v1alpha1",
            "kind": "List",
            "metadata": {"resourceVersion": self.version.to_string()},
            "items": items,
        })
    }

    /// A merge patch from the adapter, with the resource version as a precondition.
    fn patch(&mut self, key: &Key, patch: &Value) -> (StatusCode, Value) {
        let Some(mut object) = self.objects.get(key).cloned() else {
            return (
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "code": 404}),
            );
        };
        let expected = &patch["metadata"]["resourceVersion"];
        if !expected.is_null() && *expected != object["metadata"]["resourceVersion"] {
            return (StatusCode::CONFLICT, json!({"kind": "Status", "code": 409}));
        }
        let mut patch = patch.clone();
        if let Some(metadata) = patch["metadata"].as_object_mut() {
            metadata.remove("resourceVersion");
        }
        merge(&mut object, &patch);
        self.put(&key.0, object);
        let now = self.objects.get(key).cloned();
        (StatusCode::OK, now.unwrap_or_else(|| json!({})))
    }

    /// A server-side apply of the status from the adapter.
    fn apply_status(&mut self, key: &Key, status: &Value) -> (StatusCode, Value) {
        let Some(mut object) = self.objects.get(key).cloned() else {
            return (
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "code": 404}),
            );
        };
        object["status"] = status.clone();
        self.put(&key.0, object);
        (StatusCode::OK, self.objects[key].clone())
    }
}

fn key_of(plural: &str, object: &Value) -> Key {
    (
        plural.to_owned(),
        object["metadata"]["namespace"].as_str().unwrap().to_owned(),
        object["metadata"]["name"].as_str().unwrap().to_owned(),
    )
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

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// Plays the API server until the client is gone.
async fn serve(cluster: Arc<Mutex<Cluster>>, mut handle: Handle<Request<Body>, Response<Body>>) {
    while let Some((request, send)) = handle.next_request().await {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        let params: BTreeMap<&str, &str> = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let segments: Vec<&str> = parts
            .uri
            .path()
            .trim_start_matches('/')
            .split('/')
            .collect();
        let mut cluster = cluster.lock().unwrap();
        if cluster.down {
            send.send_error("connection refused");
            continue;
        }
        let answer = match (&parts.method, segments.as_slice()) {
            (&Method::GET, ["apis", "deeploy.ratio1.ai", "v1alpha1", plural]) => {
                if params.get("watch") == Some(&"true") {
                    let since = params
                        .get("resourceVersion")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    cluster.answer_watch(PendingWatch {
                        plural: (*plural).to_owned(),
                        since,
                        send,
                    });
                    continue;
                }
                (StatusCode::OK, cluster.list(plural))
            }
            (
                &Method::PATCH,
                [
                    "apis",
                    "deeploy.ratio1.ai",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    plural,
                    name,
                ],
            ) => {
                let key = ((*plural).to_owned(), (*ns).to_owned(), (*name).to_owned());
                cluster.patch(&key, &body)
            }
            (
                &Method::PATCH,
                [
                    "apis",
                    "deeploy.ratio1.ai",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    plural,
                    name,
                    "status",
                ],
            ) => {
                let key = ((*plural).to_owned(), (*ns).to_owned(), (*name).to_owned());
                cluster.apply_status(&key, &body["status"])
            }
            (&Method::POST, ["apis", "events.k8s.io", "v1", "namespaces", _, "events"]) => {
                cluster.events.push(body.clone());
                (StatusCode::CREATED, body)
            }
            (method, path) => panic!("unexpected request {method} {path:?}"),
        };
        send.send_response(respond(answer.0, &answer.1));
    }
}

/// An example manifest as `kubectl apply` leaves it.
fn resource(yaml: &str, uid: &str) -> Value {
    let mut value: Value = serde_yaml::from_str(yaml).unwrap();
    let metadata = value["metadata"].as_object_mut().unwrap();
    metadata.insert("namespace".into(), NS.into());
    metadata.insert("uid".into(), uid.into());
    metadata.insert("generation".into(), 1.into());
    metadata.insert("creationTimestamp".into(), "2026-01-01T00:00:00Z".into());
    value
}

/// Waits up to ten seconds for `check` to hold.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_adapter_mirrors_shows_status_and_finalizes_through_watches() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ResourceStore::open(dir.path()).unwrap());
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    {
        let mut cluster = cluster.lock().unwrap();
        cluster.put(
            "deeployjobs",
            resource(include_str!("../../crds/examples/job-http.yaml"), "uid-job"),
        );
        cluster.put(
            "escrows",
            resource(
                include_str!("../../crds/examples/escrow.yaml"),
                "uid-escrow",
            ),
        );
        cluster.put(
            "deeployprojects",
            resource(
                include_str!("../../crds/examples/project.yaml"),
                "uid-project",
            ),
        );
    }
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(serve(Arc::clone(&cluster), handle));
    let client = kube::Client::new(service, "default");
    let metrics = KubeMetrics::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let adapter = tokio::spawn(run_with_metrics(
        client,
        KubeSettings {
            retry_initial_ms: 20,
            retry_max_ms: 200,
            ..KubeSettings::default()
        },
        Arc::clone(&store),
        Catalogue::builtin().unwrap(),
        Network::default(),
        metrics.clone(),
        async {
            let _ = stopped.await;
        },
    ));

    let job = ObjectKey::new(Kind::Job, NS, "hello-web");
    eventually("the job in the store", || {
        store.get(&job).unwrap().is_some()
    })
    .await;
    let view = |plural: &str, name: &str| cluster.lock().unwrap().get(plural, name);
    eventually("the job's Valid condition", || {
        view("deeployjobs", "hello-web").is_some_and(|job| {
            job["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Valid" && c["status"] == "True")
            })
        })
    })
    .await;
    let shown = view("deeployjobs", "hello-web").unwrap();
    assert_eq!(shown["metadata"]["finalizers"], json!([FINALIZER]));

    // The oracle writes status into the store; the adapter shows it on the resource.
    store
        .update_status(&job, None, &json!({"phase": "Running", "ready": "2/2"}))
        .unwrap();
    eventually("the store's status on the resource", || {
        view("deeployjobs", "hello-web").is_some_and(|job| job["status"]["phase"] == "Running")
    })
    .await;

    // The API server goes away for a while: nothing changes in the store, the adapter retries,
    // and what the oracle wrote meanwhile arrives once the API server is back.
    let before = store.list_all(None).unwrap();
    let errors = metrics.errors(Kind::Job);
    cluster.lock().unwrap().go_down();
    store
        .update_status(&job, None, &json!({"phase": "Degraded", "ready": "1/2"}))
        .unwrap();
    eventually("failed reconciles", || metrics.errors(Kind::Job) > errors).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = store.list_all(None).unwrap();
    assert_eq!(during.len(), before.len());
    for (before, during) in before.iter().zip(&during) {
        assert_eq!(before.metadata.generation, during.metadata.generation);
        assert_eq!(before.spec, during.spec);
        assert!(!during.metadata.deletion_requested);
        if during.key() != job {
            assert_eq!(before, during);
        }
    }
    assert_eq!(
        store.get(&job).unwrap().unwrap().status["phase"],
        "Degraded",
        "the oracle's status is kept"
    );
    cluster.lock().unwrap().down = false;
    eventually("the status written during the outage", || {
        view("deeployjobs", "hello-web").is_some_and(|job| job["status"]["phase"] == "Degraded")
    })
    .await;

    // kubectl delete: the store is asked to delete, the resource waits for the oracle (checked
    // once the reconcile that handled the deletion has returned, not after a guessed delay).
    let reconciled = metrics.reconciles(Kind::Job);
    {
        let mut cluster = cluster.lock().unwrap();
        let mut object = cluster.get("deeployjobs", "hello-web").unwrap();
        object["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z".into();
        cluster.put("deeployjobs", object);
    }
    eventually("the deletion requested in the store", || {
        store
            .get(&job)
            .unwrap()
            .is_some_and(|o| o.metadata.deletion_requested)
    })
    .await;
    eventually("the deletion's reconcile returned", || {
        metrics.reconciles(Kind::Job) > reconciled
    })
    .await;
    assert!(
        view("deeployjobs", "hello-web").is_some(),
        "held by the finalizer"
    );

    // The oracle closes the job on chain and finalizes; the resource goes.
    store.finalize_delete(&job, None).unwrap();
    eventually("the resource gone", || {
        view("deeployjobs", "hello-web").is_none()
    })
    .await;
    assert!(
        cluster.lock().unwrap().events.is_empty(),
        "no warnings on the way"
    );
    assert!(metrics.reconciles(Kind::Job) >= 3);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), adapter)
        .await
        .expect("the adapter stops")
        .unwrap()
        .unwrap();
    server.abort();
    assert!(started.elapsed() < Duration::from_secs(20));
}
