//! A small in-memory Kubernetes API server on 127.0.0.1, enough for a real `r1-oracle` in kube
//! mode (`KUBECONFIG` set to [`FakeApiServer::kubeconfig_path`]) and for kube's client and
//! watcher: r1's four custom resources (`deeploy.ratio1.ai`, namespaced, with a status
//! subresource), core `v1` Secrets and `events.k8s.io/v1` Events.
//!
//! Served: list (in a namespace or across all, with equality label selectors and
//! `metadata.name`/`metadata.namespace` field selectors), watch (see the `watch` module), get,
//! create, replace, JSON merge patch, JSON patch and server-side apply (approximated: see the
//! `patch` module) on objects and their `/status`, and delete with finalizers, preconditions and
//! the three propagation policies (see the `store` and `store::gc` modules). Requests need the kubeconfig's bearer token; bodies are
//! read up to 4 MiB; refusals are `Status` objects.
//!
//! Not served: discovery, namespaces (every namespace exists), other kinds, strategic merge
//! patch (415, as for custom resources), dry runs, `limit`/`continue` paging (every list is one
//! page), metadata-only (`PartialObjectMetadata`) responses, protobuf, field ownership
//! conflicts, and admission (objects are not checked against the CRD schemas).
//!
//! The server runs on its own thread with its own Tokio runtime, so sync tests can use it; the
//! test's handle reads and writes the same store directly.

mod error;
mod http;
mod kubeconfig;
mod object;
mod patch;
mod resources;
mod selector;
mod shared;
mod store;
mod watch;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use error::ApiError;
pub use shared::RequestRecord;
pub use store::Propagation;

use crate::ports::{PortError, try_free_port};
use shared::Shared;
use store::{DeleteOptions, Deleted, Key, Part, Patch};

/// The bearer token the kubeconfig carries and the server requires.
pub const TOKEN: &str = "r1-fake-token";
/// The field manager of [`FakeApiServer::apply`].
pub const TEST_MANAGER: &str = "r1-e2e";
/// How many ports are tried when another process takes the one found free.
const BIND_ATTEMPTS: usize = 5;

/// Why the fake API server could not start, or refused a test's request.
#[derive(Debug, thiserror::Error)]
pub enum FakeApiError {
    /// No free port was found.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The listening socket could not be set up.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        /// The port.
        port: u16,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server's runtime or thread could not be started.
    #[error("cannot start the fake API server: {0}")]
    Start(std::io::Error),
    /// The kubeconfig could not be written.
    #[error("cannot write the kubeconfig: {0}")]
    Kubeconfig(std::io::Error),
    /// The server refused the request, as it would over HTTP.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The fake Kubernetes API server; stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    port: u16,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts an empty server on a free port and writes its kubeconfig.
    pub fn start() -> Result<Self, FakeApiError> {
        let (port, listener) = bind()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FakeApiError::Start)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|source| FakeApiError::Listen { port, source })?
        };
        let dir = tempfile::Builder::new()
            .prefix("r1k")
            .tempdir()
            .map_err(FakeApiError::Kubeconfig)?;
        let kubeconfig =
            kubeconfig::write(dir.path(), port, TOKEN).map_err(FakeApiError::Kubeconfig)?;
        let shared = Arc::new(Shared::new(TOKEN));
        let router = http::router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-kube-api".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let serve = axum::serve(listener, router);
                    tokio::select! {
                        result = std::future::IntoFuture::into_future(serve) => {
                            if let Err(error) = result {
                                tracing::warn!(%error, "the fake API server stopped");
                            }
                        }
                        _ = stopped => {}
                    }
                });
            })
            .map_err(FakeApiError::Start)?;
        Ok(Self {
            shared,
            port,
            kubeconfig,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The kubeconfig pointing at this server (with [`TOKEN`]), for `KUBECONFIG`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Creates `object` (its `apiVersion` and `kind` say where; namespace `default` unless its
    /// metadata names one), as a POST would.
    pub fn create(&self, object: Value) -> Result<Value, FakeApiError> {
        let (resource, namespace) = locate(&object)?;
        Ok(self
            .shared
            .write(|store| store.create(resource, &namespace, object))?)
    }

    /// Server-side applies `object` as field manager [`TEST_MANAGER`] (creating it if missing),
    /// as `kubectl apply --server-side` would; `.status` of a custom resource is ignored.
    pub fn apply(&self, object: Value) -> Result<Value, FakeApiError> {
        let (resource, namespace) = locate(&object)?;
        let name = object::meta_str(&object, "name")
            .unwrap_or_default()
            .to_owned();
        let key = Key {
            resource,
            namespace,
            name,
        };
        let patch = Patch::Apply {
            config: object,
            manager: TEST_MANAGER.to_owned(),
        };
        Ok(self
            .shared
            .write(|store| store.patch(&key, Part::Main, patch))?)
    }

    /// Merge-patches `spec` into the `.spec` of object `namespace/name` of `plural` (e.g.
    /// `deeployjobs`).
    pub fn patch_spec(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        spec: Value,
    ) -> Result<Value, FakeApiError> {
        let key = key(plural, namespace, name)?;
        let patch = Patch::Merge(json!({ "spec": spec }));
        Ok(self
            .shared
            .write(|store| store.patch(&key, Part::Main, patch))?)
    }

    /// Merge-patches `status` into the `.status` of custom resource `namespace/name` of
    /// `plural`, through its status subresource.
    pub fn patch_status(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Result<Value, FakeApiError> {
        let key = key(plural, namespace, name)?;
        let patch = Patch::Merge(json!({ "status": status }));
        Ok(self
            .shared
            .write(|store| store.patch(&key, Part::Status, patch))?)
    }

    /// Deletes object `namespace/name` of `plural` in the background (as `kubectl delete`
    /// does); returns its state after the call (with `deletionTimestamp` while finalizers hold
    /// it).
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) -> Result<Value, FakeApiError> {
        self.delete_with(plural, namespace, name, Propagation::Background)
    }

    /// [`FakeApiServer::delete`] with a propagation policy.
    pub fn delete_with(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        propagation: Propagation,
    ) -> Result<Value, FakeApiError> {
        let key = key(plural, namespace, name)?;
        let options = DeleteOptions {
            propagation,
            ..DeleteOptions::default()
        };
        match self.shared.write(|store| store.delete(&key, &options))? {
            Deleted::Gone(object) | Deleted::Pending(object) => Ok(object),
        }
    }

    /// Object `namespace/name` of `plural`, if it exists.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = key(plural, namespace, name).ok()?;
        self.shared.read(|store| store.get(&key).ok())
    }

    /// The objects of `plural` in `namespace`, or in all namespaces.
    pub fn list(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        match resources::by_plural(plural) {
            Some(resource) => self.shared.read(|store| store.list(resource, namespace)),
            None => Vec::new(),
        }
    }

    /// The `events.k8s.io/v1` Events in `namespace`, oldest name first.
    pub fn events(&self, namespace: &str) -> Vec<Value> {
        self.list("events", Some(namespace))
    }

    /// Creates or replaces the Opaque Secret `namespace/name` holding `data` (plain text; the
    /// server stores it base64-encoded under `data`).
    pub fn put_secret(
        &self,
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<Value, FakeApiError> {
        let key = key("secrets", namespace, name)?;
        let body = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "stringData": data,
        });
        Ok(self.shared.write(|store| {
            if store.get(&key).is_ok() {
                store.replace(&key, Part::Main, body)
            } else {
                store.create(key.resource, namespace, body)
            }
        })?)
    }

    /// Every request answered so far (the most recent 10 000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    /// Forgets the change history, as an etcd compaction does: watches resuming from before
    /// now get 410 Expired and relist.
    pub fn compact(&self) {
        // A write that cannot fail; it only wakes the watches.
        let _ = self.shared.write(|store| {
            store.compact();
            Ok(())
        });
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A listener on a free port of 127.0.0.1, non-blocking for Tokio.
fn bind() -> Result<(u16, TcpListener), FakeApiError> {
    let mut attempt = 0;
    loop {
        let port = try_free_port()?;
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(listener) => {
                listener
                    .set_nonblocking(true)
                    .map_err(|source| FakeApiError::Listen { port, source })?;
                return Ok((port, listener));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt + 1 < BIND_ATTEMPTS => {
                attempt += 1;
            }
            Err(source) => return Err(FakeApiError::Listen { port, source }),
        }
    }
}

/// The resource type and namespace of `object`, from its `apiVersion`, `kind` and metadata.
fn locate(object: &Value) -> Result<(&'static resources::Resource, String), ApiError> {
    let text = |field: &str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let resource = resources::by_type(text("apiVersion"), text("kind")).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no served resource has apiVersion {:?} and kind {:?}",
            text("apiVersion"),
            text("kind")
        ))
    })?;
    let namespace = object::meta_str(object, "namespace")
        .filter(|ns| !ns.is_empty())
        .unwrap_or("default")
        .to_owned();
    Ok((resource, namespace))
}

/// The key of object `namespace/name` of `plural`.
fn key(plural: &str, namespace: &str, name: &str) -> Result<Key, ApiError> {
    let resource = resources::by_plural(plural).ok_or_else(ApiError::no_route)?;
    Ok(Key {
        resource,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}
