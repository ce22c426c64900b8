//! CSTORE on this node: the replica under `<dataDir>/cstore`, kept in step with every roster
//! peer, and the Redis port inside every container.
//!
//! * [`grpc`]: the `r1ctl cstore` service on the node's local API socket.
//! * [`replication`]: sealing and gossiping fresh writes, merging peers' deltas, anti-entropy
//!   pulls and answers, tombstone collection.
//! * [`confirm`]: confirmed writes (Redis's `WAIT`): asking peers whether they hold them.
//! * [`metrics`]: entries held, merges by outcome, replication lag, anti-entropy, for
//!   Prometheus.

pub mod confirm;
pub mod grpc;
pub mod metrics;
pub mod replication;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use r1_cstore::access::Principal;
use r1_cstore::engine::{Engine, EngineError};
use r1_cstore::server::Caller;
use r1_p2p::{Client, Event};
use r1_protocol::{Identity, now_ms};
use tokio::sync::mpsc;

use crate::config::NodeConfig;
use crate::state::NodeState;
use metrics::KvMetrics;
use replication::Replication;

/// Room left in a gossip message for gossipsub's own framing and signature.
const GOSSIP_FRAMING: usize = 1024;

/// How often the engine's counts are copied into the metrics.
const METRICS_EVERY: Duration = Duration::from_secs(5);

/// Why CSTORE could not start.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The replica cannot be opened.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The gossip topic cannot be joined.
    #[error(transparent)]
    P2p(#[from] r1_p2p::Error),
}

/// CSTORE running on this node.
pub struct Kv {
    /// The replica.
    pub engine: Arc<Engine>,
    /// Its replication, which also takes the oracles' rules from MQTT.
    pub replication: Replication,
    /// The environment variables workloads get (`CSTORE_REDIS_URL`).
    pub env: Vec<(String, String)>,
}

/// Opens the replica and starts replicating it over `client`, taking CSTORE's peer events
/// from `events`; when the config gives a workload port, serves it in every container (each
/// job in the namespace its oracles assign).
pub async fn start(
    config: &NodeConfig,
    identity: Identity,
    client: Client,
    events: mpsc::Receiver<Event>,
    state: &NodeState,
    registry: &mut Registry,
) -> Result<Kv, KvError> {
    let engine = Arc::new(Engine::open(
        &config.data_dir.join("cstore"),
        identity,
        config.cstore.max_ahead_ms,
        config.oracles.iter().copied().collect(),
    )?);
    tracing::info!(
        entries = engine.len(),
        pending = engine.pending(),
        "CSTORE open"
    );
    let metrics = Arc::new(KvMetrics::register(registry));
    client.subscribe(replication::TOPIC).await?;
    let replication = Replication::new(
        engine.clone(),
        client,
        metrics,
        r1_p2p::Limits::default().max_gossip_bytes - GOSSIP_FRAMING,
    );
    tokio::spawn(replication.clone().publish_writes());
    tokio::spawn(replication.clone().serve(events));
    tokio::spawn(replication.clone().run_metrics(METRICS_EVERY));
    tokio::spawn(replication.clone().run_rounds(
        Duration::from_secs(config.cstore.anti_entropy_seconds),
        Duration::from_secs(config.cstore.tombstone_horizon_seconds),
    ));

    let mut env = Vec::new();
    let port = config.cstore.workload_port;
    if port != 0 {
        env.push((
            "CSTORE_REDIS_URL".to_owned(),
            format!("redis://127.0.0.1:{port}"),
        ));
        let served = engine.clone();
        let confirmer: Arc<dyn r1_cstore::replicas::Replicas> =
            Arc::new(confirm::Confirmer::new(replication.client()));
        tokio::spawn(crate::in_container::serve_each(
            state.pids.clone(),
            port,
            "CSTORE Redis port",
            move |id, listener| {
                let caller = Caller {
                    who: Principal::Job(id.job),
                    namespace: None,
                };
                r1_cstore::server::serve(
                    listener,
                    served.clone(),
                    caller,
                    confirmer.clone(),
                    now_ms,
                )
            },
        ));
    }
    Ok(Kv {
        engine,
        replication,
        env,
    })
}
