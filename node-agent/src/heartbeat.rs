//! Heartbeats and status reports: the node's signed proof of life, capacity and workload
//! states every interval (and at once after every reconnection), and a signed report after
//! every workload change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use r1_protocol::envelope::Sealer;
use r1_protocol::messages::{Heartbeat, JobStatusReport};
use r1_protocol::topics::{Channel, Topics};
use tokio::sync::{mpsc, watch};

use crate::link::Link;
use crate::logs::LogDir;
use crate::metrics::Metrics;
use crate::resources::{self, Capacity};
use crate::state::NodeState;
use r1_protocol::now_ms;

/// Static facts a heartbeat carries.
pub struct Identity {
    /// Node alias.
    pub alias: String,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// The node's capacity.
    pub capacity: Capacity,
    /// The data directory, whose filesystem's free space is reported.
    pub data_dir: PathBuf,
    /// When the agent started.
    pub started: Instant,
    /// Where peers reach the node's peer-to-peer layer.
    pub p2p_addrs: Vec<String>,
    /// Workload logs, whose retired ones the heartbeat names.
    pub logs: LogDir,
}

/// The heartbeat the node would send now.
pub fn build(identity: &Identity, state: &NodeState, interval: Duration) -> Heartbeat {
    let desired = state.desired();
    Heartbeat {
        alias: identity.alias.clone(),
        interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        p2p_addrs: identity.p2p_addrs.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_s: identity.started.elapsed().as_secs(),
        resources: resources::node_resources(
            &identity.capacity,
            resources::disk_free(&identity.data_dir),
            desired.values().map(|w| &w.spec),
        ),
        labels: identity.labels.clone(),
        workloads: state.reports().into_values().collect(),
        retired_logs: identity.logs.retired().workloads(),
    }
}

/// Sends a heartbeat every `interval`, right after each (re)connection, and when `asked` is
/// notified (an oracle's liveness probe).
#[allow(clippy::too_many_arguments)]
pub async fn run_heartbeats(
    identity: Identity,
    interval: Duration,
    state: Arc<NodeState>,
    link: Link,
    sealer: Arc<Sealer>,
    topics: Topics,
    mut connected: watch::Receiver<u64>,
    asked: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
) {
    let topic = topics.topic(Channel::Heartbeat, &sealer.address());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                ticker.reset();
            }
            () = asked.notified() => {}
        }
        let heartbeat = build(&identity, &state, interval);
        match sealer.seal(&heartbeat, now_ms()) {
            Ok(envelope) => {
                if link.publish(&topic, envelope.to_bytes()) {
                    metrics.heartbeats_sent.inc();
                }
            }
            Err(e) => tracing::error!("cannot seal heartbeat: {e}"),
        }
    }
}

/// Publishes each status report from `reports`.
pub async fn run_status_reports(
    mut reports: mpsc::Receiver<JobStatusReport>,
    link: Link,
    sealer: Arc<Sealer>,
    topics: Topics,
) {
    let topic = topics.topic(Channel::Status, &sealer.address());
    while let Some(report) = reports.recv().await {
        match sealer.seal(&report, now_ms()) {
            Ok(envelope) => {
                if !link.publish(&topic, envelope.to_bytes()) {
                    tracing::debug!("broker down; status report left to the next heartbeat");
                }
            }
            Err(e) => tracing::error!("cannot seal status report: {e}"),
        }
    }
}
