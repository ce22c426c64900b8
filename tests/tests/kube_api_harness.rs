//! The harness's fake Kubernetes API server against kube's real client and watcher, built from
//! the kubeconfig the server writes, and against the oracle's own adapter calls (status by
//! server-side apply, the finalizer patch, owner references, events): objects are created,
//! listed, patched and replaced with the server's bookkeeping (uid, generation, resource
//! versions, conflicts), the watcher sees every change and a compacted history expires old
//! watches, finalizers hold deletions, deleting a project cascades to its jobs, events and
//! secrets are served, and refusals are Kubernetes `Status` objects. Finally the oracle's whole
//! Kubernetes adapter runs against it in-process: it adds its finalizer, writes statuses, ties
//! the job to its project and requests the deletion of a deleted job in its store.

#![allow(clippy::unwrap_used)] // test code

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config, Resource};
use r1_controller::intake::store::ResourceStore;
use r1_controller::kube::KubeSettings;
use r1_controller::kube::cascade::{apply_owners, owner_patch, project_reference};
use r1_controller::kube::finalizer::set_finalizers;
use r1_controller::kube::resource::{FINALIZER, api_resource};
use r1_controller::kube::status::apply_status;
use r1_crds::api::object::ObjectKey;
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use r1_e2e::kube_api::{FakeApiServer, TOKEN};
use serde_json::{Value, json};

const JOB: &str = include_str!("../../crds/examples/job-http.yaml");
const PROJECT: &str = include_str!("../../crds/examples/project.yaml");
const ESCROW: &str = include_str!("../../crds/examples/escrow.yaml");
const NAMESPACE: &str = "shop";
/// Longest wait for one watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for the adapter to act.
const ADAPTER_TIMEOUT: Duration = Duration::from_secs(4);

/// A kube client built from the server's kubeconfig, as `Client::try_default` would with
/// `KUBECONFIG` set. This test binary links rustls with both ring and aws-lc (the peer-to-peer
/// layer's QUIC), so ring, the oracle's provider, is chosen explicitly.
async fn client(server: &FakeApiServer) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// The example job as `name` in the test namespace, with a status the server must drop.
fn job(name: &str) -> DynamicObject {
    let mut value: Value = serde_yaml::from_str(JOB).unwrap();
    value["metadata"]["name"] = name.into();
    value["metadata"]["namespace"] = NAMESPACE.into();
    value["status"] = json!({"phase": "Forged"});
    serde_json::from_value(value).unwrap()
}

/// A project `name` in the test namespace.
fn project(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "deeploy.ratio1.ai/v1alpha1",
        "kind": "DeeployProject",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"},
    }))
    .unwrap()
}

fn api(client: &Client, kind: Kind) -> (Api<DynamicObject>, ApiResource) {
    let resource = api_resource(kind);
    (
        Api::namespaced_with(client.clone(), NAMESPACE, &resource),
        resource,
    )
}

/// The status of a refused call.
fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(EVENT_TIMEOUT, stream.next())
        .await
        .expect("a watch event in time")
        .expect("the watch goes on")
}

fn name_of(object: &DynamicObject) -> &str {
    object.metadata.name.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn objects_are_created_listed_patched_and_replaced() {
    let server = FakeApiServer::start().unwrap();
    let client = client(&server).await;
    let (jobs, resource) = api(&client, Kind::Job);

    let created = jobs
        .create(&PostParams::default(), &job("web"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    let again = jobs.create(&PostParams::default(), &job("web")).await;
    assert_eq!(refusal(again), (409, "AlreadyExists".into()));

    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let list = all.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());
    let selected = all.list(&ListParams::default().labels("tier=front")).await;
    assert!(selected.unwrap().items.is_empty());

    let spec = Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"phase": "Forged"}}));
    let patched = jobs
        .patch("web", &PatchParams::default(), &spec)
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    assert!(
        patched.data.get("status").is_none(),
        "the main resource never writes status"
    );

    // The adapter's status write: server-side apply on the status subresource.
    let first = json!({"phase": "Pending", "conditions": [{"type": "Valid", "status": "True"}]});
    apply_status(&jobs, &resource, "web", &first).await.unwrap();
    let shown = jobs.get("web").await.unwrap();
    assert_eq!(shown.data["status"], first);
    assert_eq!(
        shown.metadata.generation,
        Some(2),
        "status is no new generation"
    );
    apply_status(&jobs, &resource, "web", &json!({"phase": "Running"}))
        .await
        .unwrap();
    let shown = jobs.get("web").await.unwrap();
    assert_eq!(
        shown.data["status"],
        json!({"phase": "Running"}),
        "what the manager no longer applies goes"
    );
    let unchanged = shown.metadata.resource_version.clone();
    apply_status(&jobs, &resource, "web", &json!({"phase": "Running"}))
        .await
        .unwrap();
    let shown = jobs.get("web").await.unwrap();
    assert_eq!(shown.metadata.resource_version, unchanged, "a no-op write");

    let stale = jobs.replace("web", &PostParams::default(), &created).await;
    assert_eq!(refusal(stale), (409, "Conflict".into()));
    let mut fresh = shown.clone();
    fresh.data["spec"]["replicas"] = json!(1);
    let replaced = jobs
        .replace("web", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(3));
    assert_eq!(replaced.data["status"], json!({"phase": "Running"}));

    let applied = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH" && r.path.ends_with("/deeployjobs/web/status"))
        .unwrap();
    assert_eq!(
        applied.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(applied.param("fieldManager").as_deref(), Some("r1-oracle"));
    assert_eq!(applied.param("force").as_deref(), Some("true"));
    assert_eq!(applied.status, 200);
}

#[tokio::test]
async fn the_watcher_sees_every_change_and_old_watches_expire() {
    let server = FakeApiServer::start().unwrap();
    let client = client(&server).await;
    let (jobs, resource) = api(&client, Kind::Job);
    server
        .create(serde_json::to_value(job("first")).unwrap())
        .unwrap();

    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let mut events = watcher(all, watcher::Config::default()).boxed();
    assert!(matches!(
        next(&mut events).await.unwrap(),
        watcher::Event::Init
    ));
    match next(&mut events).await.unwrap() {
        watcher::Event::InitApply(object) => assert_eq!(name_of(&object), "first"),
        other => panic!("expected the listed job, got {other:?}"),
    }
    assert!(matches!(
        next(&mut events).await.unwrap(),
        watcher::Event::InitDone
    ));

    server
        .patch_spec("deeployjobs", NAMESPACE, "first", json!({"replicas": 5}))
        .unwrap();
    match next(&mut events).await.unwrap() {
        watcher::Event::Apply(object) => assert_eq!(object.data["spec"]["replicas"], 5),
        other => panic!("expected the modified job, got {other:?}"),
    }
    jobs.create(&PostParams::default(), &job("second"))
        .await
        .unwrap();
    match next(&mut events).await.unwrap() {
        watcher::Event::Apply(object) => assert_eq!(name_of(&object), "second"),
        other => panic!("expected the added job, got {other:?}"),
    }
    let before = server.get("deeployjobs", NAMESPACE, "second").unwrap();
    let before = before["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    server.delete("deeployjobs", NAMESPACE, "first").unwrap();
    match next(&mut events).await.unwrap() {
        watcher::Event::Delete(object) => assert_eq!(name_of(&object), "first"),
        other => panic!("expected the deleted job, got {other:?}"),
    }

    // A watch from an older version replays what followed it, until the history is compacted.
    let mut replay = jobs
        .watch(&WatchParams::default(), &before)
        .await
        .unwrap()
        .boxed();
    match next(&mut replay).await.unwrap() {
        WatchEvent::Deleted(object) => assert_eq!(name_of(&object), "first"),
        other => panic!("expected the replayed deletion, got {other:?}"),
    }
    server.compact();
    let mut expired = jobs
        .watch(&WatchParams::default(), &before)
        .await
        .unwrap()
        .boxed();
    match next(&mut expired).await.unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410 Expired, got {other:?}"),
    }
    // The running watcher goes on after the compaction.
    server
        .patch_spec("deeployjobs", NAMESPACE, "second", json!({"replicas": 4}))
        .unwrap();
    match next(&mut events).await.unwrap() {
        watcher::Event::Apply(object) => assert_eq!(object.data["spec"]["replicas"], 4),
        other => panic!("expected the modified job, got {other:?}"),
    }
}

#[tokio::test]
async fn finalizers_hold_a_deletion_until_released() {
    let server = FakeApiServer::start().unwrap();
    let client = client(&server).await;
    let (jobs, _) = api(&client, Kind::Job);
    let created = jobs
        .create(&PostParams::default(), &job("web"))
        .await
        .unwrap();

    // The adapter's finalizer patch carries the resource version as a precondition.
    let held = set_finalizers(&jobs, &created, vec![FINALIZER.to_owned()])
        .await
        .unwrap();
    assert_eq!(held.metadata.finalizers, Some(vec![FINALIZER.to_owned()]));
    let stale = set_finalizers(&jobs, &created, vec![]).await;
    assert_eq!(refusal(stale), (409, "Conflict".into()));
    let version = held.metadata.resource_version.clone().unwrap();

    jobs.delete("web", &DeleteParams::default()).await.unwrap();
    let deleting = jobs.get("web").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(
        deleting.metadata.generation,
        Some(2),
        "marking bumps the generation"
    );
    let more = Patch::Merge(json!({"metadata": {"finalizers": [FINALIZER, "example.com/more"]}}));
    let refused = jobs.patch("web", &PatchParams::default(), &more).await;
    assert_eq!(refusal(refused), (422, "Invalid".into()));

    set_finalizers(&jobs, &deleting, vec![]).await.unwrap();
    assert_eq!(refusal(jobs.get("web").await), (404, "NotFound".into()));

    let mut changes = jobs
        .watch(&WatchParams::default(), &version)
        .await
        .unwrap()
        .boxed();
    match next(&mut changes).await.unwrap() {
        WatchEvent::Modified(object) => assert!(object.metadata.deletion_timestamp.is_some()),
        other => panic!("expected the deletion mark, got {other:?}"),
    }
    assert!(matches!(
        next(&mut changes).await.unwrap(),
        WatchEvent::Deleted(_)
    ));
}

#[tokio::test]
async fn deleting_a_project_cascades_to_its_jobs() {
    let server = FakeApiServer::start().unwrap();
    let client = client(&server).await;
    let (jobs, job_resource) = api(&client, Kind::Job);
    let (projects, _) = api(&client, Kind::Project);

    // Foreground: every job goes first; a job with a finalizer holds the project.
    let hello = projects
        .create(&PostParams::default(), &project("hello"))
        .await
        .unwrap();
    let web = jobs
        .create(&PostParams::default(), &job("web"))
        .await
        .unwrap();
    let web = set_finalizers(&jobs, &web, vec![FINALIZER.to_owned()])
        .await
        .unwrap();
    let reference = project_reference(&hello).unwrap();
    let patch = owner_patch(&job_resource, &web, std::slice::from_ref(&reference)).unwrap();
    apply_owners(&jobs, "web", &patch).await.unwrap();
    let mut loose = job("loose");
    let mut weak = reference.clone();
    weak.block_owner_deletion = None;
    loose.metadata.owner_references = Some(vec![weak]);
    jobs.create(&PostParams::default(), &loose).await.unwrap();

    projects
        .delete("hello", &DeleteParams::foreground())
        .await
        .unwrap();
    let waiting = projects.get("hello").await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(
        waiting.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_owned()])
    );
    assert_eq!(refusal(jobs.get("loose").await).0, 404);
    let web = jobs.get("web").await.unwrap();
    assert!(web.metadata.deletion_timestamp.is_some());
    set_finalizers(&jobs, &web, vec![]).await.unwrap();
    assert_eq!(refusal(jobs.get("web").await).0, 404);
    assert_eq!(refusal(projects.get("hello").await).0, 404);

    // Background: the project goes, then its orphaned jobs.
    for (project_name, job_name, params) in [
        ("bg", "bg-job", DeleteParams::background()),
        ("orphaning", "kept", DeleteParams::orphan()),
    ] {
        let owner = projects
            .create(&PostParams::default(), &project(project_name))
            .await
            .unwrap();
        let mut dependent = job(job_name);
        dependent.metadata.owner_references = Some(vec![project_reference(&owner).unwrap()]);
        jobs.create(&PostParams::default(), &dependent)
            .await
            .unwrap();
        projects.delete(project_name, &params).await.unwrap();
        assert_eq!(refusal(projects.get(project_name).await).0, 404);
    }
    assert_eq!(refusal(jobs.get("bg-job").await).0, 404);
    let kept = jobs.get("kept").await.unwrap();
    assert_eq!(kept.metadata.owner_references, None, "orphaned");
}

#[tokio::test]
async fn events_and_secrets_are_served() {
    let server = FakeApiServer::start().unwrap();
    let client = client(&server).await;
    let (jobs, resource) = api(&client, Kind::Job);
    let web = jobs
        .create(&PostParams::default(), &job("web"))
        .await
        .unwrap();

    r1_controller::kube::events::warn(
        &client,
        web.object_ref(&resource),
        "oracle-1",
        "Mirror",
        "Invalid",
        "spec.replicas: too many",
    )
    .await
    .unwrap();
    let events = server.events(NAMESPACE);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "Invalid");
    assert_eq!(events[0]["regarding"]["name"], "web");
    let listed = Api::<Event>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    let secrets = Api::<Secret>::namespaced(client.clone(), NAMESPACE);
    for value in ["first", "second"] {
        let data = BTreeMap::from([("token".to_owned(), value.to_owned())]);
        server.put_secret(NAMESPACE, "tunnel", &data).unwrap();
        let secret = secrets.get("tunnel").await.unwrap();
        assert_eq!(secret.data.unwrap()["token"].0, value.as_bytes());
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    }
}

#[tokio::test]
async fn refusals_are_statuses() {
    let server = FakeApiServer::start().unwrap();
    let client = client(&server).await;
    let (jobs, _) = api(&client, Kind::Job);
    assert_eq!(refusal(jobs.get("missing").await), (404, "NotFound".into()));
    jobs.create(&PostParams::default(), &job("web"))
        .await
        .unwrap();
    let strategic = jobs
        .patch("web", &PatchParams::default(), &Patch::Strategic(json!({})))
        .await;
    assert_eq!(refusal(strategic), (415, "UnsupportedMediaType".into()));

    let http = reqwest::Client::new();
    let url = format!(
        "{}/apis/deeploy.ratio1.ai/v1alpha1/namespaces/{NAMESPACE}/deeployjobs",
        server.url()
    );
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let status: Value = anonymous.json().await.unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["code"].as_u64()),
        (Some("Status"), Some(401))
    );
    let huge = http
        .post(&url)
        .bearer_auth(TOKEN)
        .body(vec![b' '; 5 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let apply = http
        .patch(format!("{url}/web"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/apply-patch+yaml")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(apply.status(), 400, "apply needs a field manager");
    let unknown = http
        .get(format!("{}/apis/apps/v1/deployments", server.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// Waits until `done` holds, or fails the test saying `what` did not happen.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < ADAPTER_TIMEOUT, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_oracles_adapter_runs_against_it() {
    let server = FakeApiServer::start().unwrap();
    let client = client(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ResourceStore::open(dir.path()).unwrap());
    let settings = KubeSettings {
        retry_initial_ms: 20,
        retry_max_ms: 200,
        ..KubeSettings::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let adapter = tokio::spawn(r1_controller::kube::run(
        client,
        settings,
        Arc::clone(&store),
        Catalogue::builtin().unwrap(),
        async {
            let _ = stopped.await;
        },
    ));
    for text in [ESCROW, PROJECT, JOB] {
        let mut object: Value = serde_yaml::from_str(text).unwrap();
        object["metadata"]["namespace"] = NAMESPACE.into();
        server.apply(object).unwrap();
    }
    let shown = |plural: &str, name: &str| {
        server.get(plural, NAMESPACE, name).is_some_and(|object| {
            let held = object["metadata"]["finalizers"] == json!([FINALIZER]);
            let valid = object["status"]["conditions"]
                .as_array()
                .is_some_and(|list| list.iter().any(|c| c["type"] == "Valid"));
            held && valid
        })
    };
    eventually("the finalizer and status of every resource", || {
        shown("escrows", "acme-escrow")
            && shown("deeployprojects", "hello")
            && shown("deeployjobs", "hello-web")
    })
    .await;
    let project_uid =
        server.get("deeployprojects", NAMESPACE, "hello").unwrap()["metadata"]["uid"].clone();
    eventually("the job's owner reference to its project", || {
        server
            .get("deeployjobs", NAMESPACE, "hello-web")
            .is_some_and(|job| job["metadata"]["ownerReferences"][0]["uid"] == project_uid)
    })
    .await;

    let key = ObjectKey::new(Kind::Job, NAMESPACE, "hello-web");
    let mirrored = store.get(&key).unwrap().unwrap();
    assert!(!mirrored.metadata.deletion_requested);
    server
        .delete("deeployjobs", NAMESPACE, "hello-web")
        .unwrap();
    eventually("the deletion request in the store", || {
        store
            .get(&key)
            .unwrap()
            .is_some_and(|object| object.metadata.deletion_requested)
    })
    .await;
    // The finalizer holds the job until the oracle's loops finish the on-chain cleanup.
    let held = server.get("deeployjobs", NAMESPACE, "hello-web").unwrap();
    assert_eq!(held["metadata"]["finalizers"], json!([FINALIZER]));
    // Refused writes are only the finalizer patches raced by a newer resource version.
    let writes = server.requests().into_iter().filter(|r| r.method != "GET");
    assert!(
        writes.clone().all(|r| r.status < 300 || r.status == 409),
        "{:?}",
        writes.collect::<Vec<_>>()
    );
    stop.send(()).unwrap();
    adapter.await.unwrap().unwrap();
}
