//! The oracle's Prometheus metrics: loop durations, consensus submissions, jobs by phase, nodes
//! by liveness, commands sent and node messages refused.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::kube::KubeMetrics;

/// A single `name` label (loop, phase, state, reason, kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Name {
    /// The label value.
    pub name: String,
}

/// Labels of the consensus counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VoteLabels {
    /// `nodeset`, `close`, `availability`, `allocate`.
    pub kind: String,
    /// `pending`, `accepted`, `error`.
    pub outcome: String,
}

/// Every metric the oracle exports (prefix `r1_oracle_`).
#[derive(Debug)]
pub struct Metrics {
    /// Seconds per pass of each loop.
    pub loop_seconds: Family<Name, Histogram>,
    /// On-chain submissions by kind and outcome.
    pub votes: Family<VoteLabels, Counter>,
    /// Node-set vote transactions sent (each a batch of votes).
    pub vote_transactions: Counter,
    /// Node-set votes those transactions carried.
    pub votes_batched: Counter,
    /// Gas those transactions used.
    pub vote_gas: Counter,
    /// Passes asked for ahead of the loop period, by cause ("node", "chain", "vote").
    pub wakes: Family<Name, Counter>,
    /// Jobs by phase.
    pub jobs: Family<Name, Gauge>,
    /// Nodes by liveness.
    pub nodes: Family<Name, Gauge>,
    /// Commands sent to nodes by kind.
    pub commands: Family<Name, Counter>,
    /// Messages refused by reason.
    pub refused: Family<Name, Counter>,
    /// Node messages verified and taken in, by channel.
    pub accepted: Family<Name, Counter>,
    /// 1 while the last chain read succeeded.
    pub chain_reachable: Gauge,
    /// 1 while connected to the broker.
    pub broker_connected: Gauge,
    /// The Kubernetes adapter's reconciles and failures, when it runs.
    pub kube: KubeMetrics,
    registry: Registry,
}

fn loop_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("r1_oracle");
        let loop_seconds: Family<Name, Histogram> =
            Family::new_with_constructor(loop_histogram as fn() -> Histogram);
        registry.register(
            "loop_seconds",
            "Seconds per pass of each loop",
            loop_seconds.clone(),
        );
        let votes = Family::<VoteLabels, Counter>::default();
        registry.register(
            "votes",
            "On-chain submissions by kind and outcome",
            votes.clone(),
        );
        let vote_transactions = Counter::default();
        registry.register(
            "vote_transactions",
            "Node-set vote transactions sent (each a batch of votes)",
            vote_transactions.clone(),
        );
        let votes_batched = Counter::default();
        registry.register(
            "votes_batched",
            "Node-set votes carried by those transactions",
            votes_batched.clone(),
        );
        let vote_gas = Counter::default();
        registry.register(
            "vote_gas",
            "Gas used by node-set vote transactions",
            vote_gas.clone(),
        );
        let wakes = Family::<Name, Counter>::default();
        registry.register(
            "pass_wakes",
            "Passes asked for ahead of the loop period, by cause",
            wakes.clone(),
        );
        let jobs = Family::<Name, Gauge>::default();
        registry.register("jobs", "Jobs by phase", jobs.clone());
        let nodes = Family::<Name, Gauge>::default();
        registry.register("nodes", "Nodes by liveness", nodes.clone());
        let commands = Family::<Name, Counter>::default();
        registry.register(
            "commands",
            "Commands sent to nodes by kind",
            commands.clone(),
        );
        let refused = Family::<Name, Counter>::default();
        registry.register("refused", "Messages refused by reason", refused.clone());
        let accepted = Family::<Name, Counter>::default();
        registry.register(
            "accepted",
            "Node messages verified and taken in, by channel",
            accepted.clone(),
        );
        let chain_reachable = Gauge::default();
        registry.register(
            "chain_reachable",
            "1 while the last chain read succeeded",
            chain_reachable.clone(),
        );
        let broker_connected = Gauge::default();
        registry.register(
            "broker_connected",
            "1 while connected to the MQTT broker",
            broker_connected.clone(),
        );
        let kube = KubeMetrics::default();
        kube.register(&mut registry);
        Self {
            loop_seconds,
            votes,
            vote_transactions,
            votes_batched,
            vote_gas,
            wakes,
            jobs,
            nodes,
            commands,
            refused,
            accepted,
            chain_reachable,
            broker_connected,
            kube,
            registry,
        }
    }

    /// Counts one vote transaction carrying `votes` votes that used `gas`.
    pub fn vote_batch(&self, votes: usize, gas: u64) {
        self.vote_transactions.inc();
        self.votes_batched.inc_by(votes as u64);
        self.vote_gas.inc_by(gas);
    }

    /// Counts one pass asked for early because of `cause`.
    pub fn wake(&self, cause: &str) {
        self.wakes.get_or_create(&Name { name: cause.into() }).inc();
    }

    /// Counts one command of `kind` sent.
    pub fn command(&self, kind: &str) {
        self.commands
            .get_or_create(&Name { name: kind.into() })
            .inc();
    }

    /// Counts one message refused for `reason`.
    pub fn refuse(&self, reason: &str) {
        self.refused
            .get_or_create(&Name {
                name: reason.into(),
            })
            .inc();
    }

    /// Counts one node message of `channel` verified and taken in.
    pub fn accept(&self, channel: &str) {
        self.accepted
            .get_or_create(&Name {
                name: channel.into(),
            })
            .inc();
    }

    /// Records how long one pass of `loop_name` took.
    pub fn pass(&self, loop_name: &str, seconds: f64) {
        self.loop_seconds
            .get_or_create(&Name {
                name: loop_name.into(),
            })
            .observe(seconds);
    }

    /// Counts one on-chain submission.
    pub fn vote(&self, kind: &str, outcome: &str) {
        self.votes
            .get_or_create(&VoteLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// How long after a refusal reason was logged at warn level its repeats go to debug.
const REFUSAL_WARN_EVERY_MS: u64 = 60_000;

/// Keeps refusals from flooding the log: the first refusal of each reason in a minute is worth
/// a warning, its repeats only a debug line (the counter counts them all).
#[derive(Debug, Default)]
pub struct RefusalLog {
    last_warned: std::sync::Mutex<std::collections::HashMap<&'static str, u64>>,
}

impl RefusalLog {
    /// Whether a refusal for `label` at `now_ms` should be logged at warn level.
    pub fn should_warn(&self, label: &'static str, now_ms: u64) -> bool {
        let mut last = self
            .last_warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match last.get(label) {
            Some(&at) if now_ms.saturating_sub(at) < REFUSAL_WARN_EVERY_MS => false,
            _ => {
                last.insert(label, now_ms);
                true
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_reason_warns_once_a_minute() {
        let log = RefusalLog::default();
        assert!(log.should_warn("stale", 0));
        assert!(!log.should_warn("stale", 1_000));
        assert!(log.should_warn("replayed", 1_000));
        assert!(log.should_warn("stale", REFUSAL_WARN_EVERY_MS));
    }
}
