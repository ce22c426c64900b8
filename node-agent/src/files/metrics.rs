//! R1FS's Prometheus metrics (prefix `r1_node_r1fs`): the store's fill, adds, fetches, the
//! block requests this node sends and answers, and the providers it dropped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use r1_r1fs::blocks::Usage;

/// An outcome label (`ok`, `failed`; `answered`, `failed` for requests).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// The outcome.
    pub outcome: String,
}

/// Every R1FS metric of a node.
#[derive(Debug, Default)]
pub struct FilesMetrics {
    /// Bytes of blocks stored.
    pub store_bytes: Gauge,
    /// Blocks stored.
    pub store_blocks: Gauge,
    /// Roots pinned.
    pub pins: Gauge,
    /// Adds (operator and workloads), by outcome.
    pub adds: Family<Outcome, Counter>,
    /// Fetches from peers, by outcome.
    pub fetches: Family<Outcome, Counter>,
    /// Blocks received from peers and stored.
    pub blocks_fetched: Counter,
    /// Block requests this node sent, by outcome.
    pub block_requests: Family<Outcome, Counter>,
    /// Block requests from peers this node answered.
    pub requests_answered: Counter,
    /// Providers dropped for sending blocks that do not match their CIDs.
    pub providers_penalised: Counter,
}

impl FilesMetrics {
    /// Creates the metrics and registers them in `registry` under `r1fs`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("r1fs");
        sub.register(
            "store_bytes",
            "Bytes of R1FS blocks stored",
            metrics.store_bytes.clone(),
        );
        sub.register(
            "store_blocks",
            "R1FS blocks stored",
            metrics.store_blocks.clone(),
        );
        sub.register("pins", "R1FS roots pinned", metrics.pins.clone());
        sub.register("adds", "R1FS adds, by outcome", metrics.adds.clone());
        sub.register(
            "fetches",
            "Fetches from peers, by outcome",
            metrics.fetches.clone(),
        );
        sub.register(
            "blocks_fetched",
            "Blocks received from peers and stored",
            metrics.blocks_fetched.clone(),
        );
        sub.register(
            "block_requests",
            "Block requests sent to peers, by outcome",
            metrics.block_requests.clone(),
        );
        sub.register(
            "requests_answered",
            "Block requests from peers answered",
            metrics.requests_answered.clone(),
        );
        sub.register(
            "providers_penalised",
            "Providers dropped for blocks that do not match their CIDs",
            metrics.providers_penalised.clone(),
        );
        metrics
    }

    /// Counts one outcome in `family`.
    pub fn count(family: &Family<Outcome, Counter>, outcome: &str) {
        family
            .get_or_create(&Outcome {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Sets the store gauges.
    pub fn set_usage(&self, usage: &Usage) {
        self.store_bytes.set(gauge(usage.bytes));
        self.store_blocks.set(gauge(usage.blocks));
        self.pins.set(gauge(usage.pins));
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
