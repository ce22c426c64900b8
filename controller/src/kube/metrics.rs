//! Counters of the Kubernetes adapter, for the oracle's Prometheus endpoint.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use r1_crds::manifest::Kind;

/// Labels of the adapter's counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The resource kind, e.g. `DeeployJob`.
    pub kind: String,
}

/// Reconciles and their failures, by kind. Cloning shares the counters.
#[derive(Clone, Debug, Default)]
pub struct KubeMetrics {
    reconciles: Family<KindLabel, Counter>,
    errors: Family<KindLabel, Counter>,
}

impl KubeMetrics {
    /// Registers the counters as `kube_reconciles_total` and `kube_reconcile_errors_total`
    /// (under the registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kube_reconciles",
            "Reconciles of r1 custom resources, by kind",
            self.reconciles.clone(),
        );
        registry.register(
            "kube_reconcile_errors",
            "Failed reconciles of r1 custom resources (retried with backoff), by kind",
            self.errors.clone(),
        );
    }

    /// Counts a reconcile of a `kind` resource, once it has returned.
    pub fn reconciled(&self, kind: Kind) {
        self.reconciles.get_or_create(&label(kind)).inc();
    }

    /// Counts a failed reconcile of a `kind` resource.
    pub fn failed(&self, kind: Kind) {
        self.errors.get_or_create(&label(kind)).inc();
    }

    /// Reconciles of `kind` so far.
    pub fn reconciles(&self, kind: Kind) -> u64 {
        self.reconciles.get_or_create(&label(kind)).get()
    }

    /// Failed reconciles of `kind` so far.
    pub fn errors(&self, kind: Kind) -> u64 {
        self.errors.get_or_create(&label(kind)).get()
    }
}

fn label(kind: Kind) -> KindLabel {
    KindLabel {
        kind: kind.as_str().to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_encodes_for_prometheus() {
        let metrics = KubeMetrics::default();
        let mut registry = Registry::with_prefix("r1_oracle");
        metrics.register(&mut registry);
        metrics.reconciled(Kind::Job);
        metrics.reconciled(Kind::Job);
        metrics.failed(Kind::Escrow);
        assert_eq!(metrics.reconciles(Kind::Job), 2);
        assert_eq!(metrics.errors(Kind::Escrow), 1);
        assert_eq!(metrics.errors(Kind::Job), 0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"r1_oracle_kube_reconciles_total{kind="DeeployJob"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"r1_oracle_kube_reconcile_errors_total{kind="Escrow"} 1"#),
            "{text}"
        );
    }
}
