//! The running adapter: one kube-runtime `Controller` per kind over dynamic objects, all sharing
//! one [`Reconciler`]. A resource is reconciled when it changes in the cluster, when anything
//! changes in the store (its status may have), every resync interval, and after failures with
//! backoff. Watches that lose the API server retry with kube-runtime's backoff; nothing in the
//! store depends on them.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::join_all;
use futures_util::{Stream, StreamExt, stream};
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::{Controller, Error as ControllerError};
use kube::runtime::watcher;
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use tokio::sync::watch;

use crate::intake::store::ResourceStore;
use crate::kube::error::KubeError;
use crate::kube::metrics::KubeMetrics;
use crate::kube::owner::ClusterView;
use crate::kube::reconcile::Reconciler;
use crate::kube::resource::api_resource;
use crate::kube::settings::KubeSettings;
use crate::kube::signed::Network;

/// Runs the adapter until `shutdown` resolves, then lets running reconciles finish.
pub async fn run(
    client: Client,
    settings: KubeSettings,
    store: Arc<ResourceStore>,
    catalogue: Catalogue,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KubeError> {
    run_with_metrics(
        client,
        settings,
        store,
        catalogue,
        Network::default(),
        KubeMetrics::default(),
        shutdown,
    )
    .await
}

/// [`run`], writing and funding through `network` (see [`crate::kube::signed`]) and counting
/// reconciles and failures in `metrics` (register them with the oracle's Prometheus registry
/// first).
pub async fn run_with_metrics(
    client: Client,
    settings: KubeSettings,
    store: Arc<ResourceStore>,
    catalogue: Catalogue,
    network: Network,
    metrics: KubeMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KubeError> {
    let controllers: Vec<(Kind, Controller<DynamicObject>)> = Kind::ALL
        .into_iter()
        .map(|kind| {
            let resource = api_resource(kind);
            let api = match &settings.namespace {
                Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let controller = Controller::new_with(api, watcher::Config::default(), resource);
            (kind, controller)
        })
        .collect();
    // The escrows' and projects' caches tell the owners of namespaces to every controller.
    let (escrows, projects) = {
        let reader = |wanted: Kind| {
            controllers
                .iter()
                .find(|(kind, _)| *kind == wanted)
                .map(|(_, controller)| controller.store())
        };
        (reader(Kind::Escrow), reader(Kind::Project))
    };
    let (Some(escrows), Some(projects)) = (escrows, projects) else {
        return Err(KubeError::Object(
            "no controller for escrows or projects".into(),
        ));
    };
    let cluster = ClusterView { escrows, projects };
    tracing::info!(
        namespace = settings.namespace.as_deref().unwrap_or("<all>"),
        writes = ?network.writes,
        funds_jobs = network.funding.is_some(),
        "kubernetes adapter starting"
    );
    let reconciler = Arc::new(
        Reconciler::new(
            client,
            Arc::clone(&store),
            catalogue,
            cluster,
            settings,
            metrics,
        )
        .with_network(network),
    );
    let (stop, stopped) = watch::channel(false);
    let runs = controllers.into_iter().map(|(kind, controller)| {
        controller
            .reconcile_all_on(store_changes(store.subscribe()))
            .graceful_shutdown_on(wait_for_stop(stopped.clone()))
            .run(
                move |object, reconciler: Arc<Reconciler>| async move {
                    reconciler.reconcile(kind, &object).await
                },
                move |object, error, reconciler| reconciler.error_policy(kind, &object, error),
                Arc::clone(&reconciler),
            )
            .for_each(move |result| {
                log_result(kind, result);
                std::future::ready(())
            })
    });
    let all = join_all(runs);
    tokio::pin!(all, shutdown);
    tokio::select! {
        _ = &mut all => {}
        () = &mut shutdown => {
            tracing::info!("kubernetes adapter stopping");
            stop.send_replace(true);
            all.await;
        }
    }
    tracing::info!("kubernetes adapter stopped");
    Ok(())
}

/// One item per committed store write (writes in quick succession may come as one).
fn store_changes(mut changes: watch::Receiver<u64>) -> impl Stream<Item = ()> + Send + 'static {
    changes.mark_unchanged();
    stream::unfold(changes, |mut changes| async move {
        changes.changed().await.ok().map(|()| ((), changes))
    })
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn wait_for_stop(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

type RunResult = Result<
    (
        kube::runtime::reflector::ObjectRef<DynamicObject>,
        kube::runtime::controller::Action,
    ),
    ControllerError<KubeError, watcher::Error>,
>;

/// Logs what a controller reports; failed reconciles were logged by the error policy.
fn log_result(kind: Kind, result: RunResult) {
    match result {
        Ok((object, action)) => tracing::debug!(%kind, %object, ?action, "reconciled"),
        Err(ControllerError::ReconcilerFailed(_, object)) => {
            tracing::debug!(%kind, %object, "reconcile failed")
        }
        Err(ControllerError::QueueError(error)) => {
            tracing::warn!(%kind, %error, "watching the cluster failed; retrying")
        }
        Err(error) => tracing::debug!(%kind, %error, "controller"),
    }
}
