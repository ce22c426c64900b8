//! CSTORE's Prometheus metrics (prefix `r1_node_cstore`): what the replica holds, what this
//! node gossips and merges, how far behind the writers it is, and the anti-entropy rounds.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How an entry arrived and what merging it did (`new`, `stale`, or the refusal's reason).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Merge {
    /// `gossip`, `anti_entropy` or `oracle` (the rules over MQTT).
    pub via: String,
    /// `new`, `stale`, `forged`, `unsealed`, `clock`, `not_oracle` or `invalid`.
    pub outcome: String,
}

/// An outcome label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `done` or `failed`.
    pub outcome: String,
}

/// A command label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Command {
    /// The Redis command, upper case (`unknown` for commands CSTORE does not know).
    pub command: String,
}

/// A namespace label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Namespace {
    /// The namespace.
    pub namespace: String,
}

/// Every CSTORE metric of a node.
#[derive(Debug)]
pub struct KvMetrics {
    /// Entries held, tombstones included.
    pub entries: Gauge,
    /// Local writes not sealed yet.
    pub pending: Gauge,
    /// Entries by namespace (tombstones included).
    pub namespace_entries: Family<Namespace, Gauge>,
    /// Local entries sealed and gossiped.
    pub published: Counter,
    /// Remote entries received, by how and what merging them did.
    pub merged: Family<Merge, Counter>,
    /// Seconds from a remote write's stamp to its merge here.
    pub lag_seconds: Histogram,
    /// Anti-entropy pulls from a peer, by outcome.
    pub pulls: Family<Outcome, Counter>,
    /// Request-answer rounds of those pulls.
    pub pull_rounds: Counter,
    /// Anti-entropy requests from peers answered.
    pub answered: Counter,
    /// Tombstones collected past the horizon.
    pub tombstones_collected: Counter,
    /// Redis commands run, by command (workloads' and the operator's).
    pub ops: Family<Command, Counter>,
    /// Workload commands refused for want of access (another project's namespace, the
    /// system namespace, no namespace assigned yet).
    pub denied: Counter,
}

impl KvMetrics {
    /// Creates the metrics and registers them in `registry` under `cstore`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            entries: Gauge::default(),
            pending: Gauge::default(),
            namespace_entries: Family::default(),
            published: Counter::default(),
            merged: Family::default(),
            lag_seconds: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
            ]),
            pulls: Family::default(),
            pull_rounds: Counter::default(),
            answered: Counter::default(),
            tombstones_collected: Counter::default(),
            denied: Counter::default(),
            ops: Family::default(),
        };
        let sub = registry.sub_registry_with_prefix("cstore");
        sub.register(
            "entries",
            "CSTORE entries held, tombstones included",
            metrics.entries.clone(),
        );
        sub.register(
            "pending",
            "Local CSTORE writes not sealed yet",
            metrics.pending.clone(),
        );
        sub.register(
            "namespace_entries",
            "CSTORE entries by namespace",
            metrics.namespace_entries.clone(),
        );
        sub.register(
            "published",
            "Local entries sealed and gossiped",
            metrics.published.clone(),
        );
        sub.register(
            "merged",
            "Remote entries received, by how and what merging them did",
            metrics.merged.clone(),
        );
        sub.register(
            "replication_lag_seconds",
            "Seconds from a remote write's stamp to its merge here",
            metrics.lag_seconds.clone(),
        );
        sub.register(
            "pulls",
            "Anti-entropy pulls from a peer, by outcome",
            metrics.pulls.clone(),
        );
        sub.register(
            "pull_rounds",
            "Request-answer rounds of anti-entropy pulls",
            metrics.pull_rounds.clone(),
        );
        sub.register(
            "answered",
            "Anti-entropy requests from peers answered",
            metrics.answered.clone(),
        );
        sub.register(
            "tombstones_collected",
            "Tombstones collected past the horizon",
            metrics.tombstones_collected.clone(),
        );
        sub.register("ops", "Redis commands run, by command", metrics.ops.clone());
        sub.register(
            "denied",
            "Workload commands refused for want of access",
            metrics.denied.clone(),
        );
        metrics
    }

    /// Counts `n` entries received via `via` with `outcome`.
    pub fn count_merged(&self, via: &str, outcome: &str, n: u64) {
        if n > 0 {
            self.merged
                .get_or_create(&Merge {
                    via: via.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .inc_by(n);
        }
    }

    /// Counts one pull with `outcome`.
    pub fn count_pull(&self, outcome: &str) {
        self.pulls
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}
