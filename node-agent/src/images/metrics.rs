//! The images' Prometheus metrics (prefix `r1_node_images`): pulls by outcome and how long
//! they took, blob bytes by where they came from (the registry or peers), bytes served to
//! peers, and images removed by the collection.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A pull's outcome: `pulled` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// The outcome.
    pub outcome: &'static str,
}

/// Where blob bytes came from: `registry` or `peers`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Source {
    /// The source.
    pub source: &'static str,
}

/// Every image metric of a node.
#[derive(Debug)]
pub struct ImageMetrics {
    /// Pulls by outcome.
    pub pulls: Family<Outcome, Counter>,
    /// Seconds per successful pull.
    pub pull_seconds: Histogram,
    /// Blob bytes downloaded, by source.
    pub blob_bytes: Family<Source, Counter>,
    /// Blob bytes served to peers.
    pub served_bytes: Counter,
    /// Pulled images removed (unused past their horizon, or to make room under the quota).
    pub removed: Counter,
}

impl ImageMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            pulls: Family::default(),
            pull_seconds: Histogram::new([0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0]),
            blob_bytes: Family::default(),
            served_bytes: Counter::default(),
            removed: Counter::default(),
        };
        let sub = registry.sub_registry_with_prefix("images");
        sub.register("pulls", "Image pulls, by outcome", metrics.pulls.clone());
        sub.register(
            "pull_seconds",
            "Seconds per successful image pull",
            metrics.pull_seconds.clone(),
        );
        sub.register(
            "blob_bytes",
            "Image blob bytes downloaded, by source (registry or peers)",
            metrics.blob_bytes.clone(),
        );
        sub.register(
            "served_bytes",
            "Image blob bytes served to peers",
            metrics.served_bytes.clone(),
        );
        sub.register(
            "removed",
            "Pulled images removed by the collection",
            metrics.removed.clone(),
        );
        metrics
    }

    /// Counts `bytes` of blobs from `source`.
    pub fn downloaded(&self, source: &'static str, bytes: u64) {
        self.blob_bytes
            .get_or_create(&Source { source })
            .inc_by(bytes);
    }
}
