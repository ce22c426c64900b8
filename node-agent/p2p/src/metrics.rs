//! The peer-to-peer layer's Prometheus metrics, registered under `p2p_` in the registry the
//! node agent passes in.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the byte counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrafficLabels {
    /// The request protocol (`r1fs`, `cstore`, …) or `gossip/<topic>`.
    pub protocol: String,
    /// `in` or `out`.
    pub direction: &'static str,
}

/// Labels of the refusal counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why: `not_on_roster`, `not_secp256k1`, `older`, `unknown_sender`, …
    pub reason: &'static str,
}

/// Every metric of the peer-to-peer layer. Cloning shares the same series.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Peers with at least one open connection.
    pub connected_peers: Gauge,
    /// Payload bytes of requests, responses and gossip, by protocol and direction.
    pub bytes: Family<TrafficLabels, Counter>,
    /// Connections refused or closed, by reason: `no_roster`, `not_secp256k1`,
    /// `not_on_roster`, `self` (the gate), `dropped_from_roster` (closed when a roster dropped
    /// the peer), `connection_limit` (too many handshakes or connections to one peer).
    pub refused_connections: Family<ReasonLabel, Counter>,
    /// Roster envelopes accepted.
    pub rosters_accepted: Counter,
    /// Roster envelopes refused, by reason.
    pub rosters_refused: Family<ReasonLabel, Counter>,
    /// Roster multiaddrs dropped because they do not parse or name another peer.
    pub roster_addrs_dropped: Counter,
    /// Gossip messages refused, by reason (`not_on_roster`, `not_secp256k1`, `unsigned`).
    pub gossip_refused: Family<ReasonLabel, Counter>,
    /// Inbound requests refused before the application saw them, by reason
    /// (`unknown_protocol`, `event_buffer_full`).
    pub requests_refused: Family<ReasonLabel, Counter>,
    /// Events dropped because the application's event buffer was full or closed.
    pub events_dropped: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under the `p2p` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("p2p");
        sub.register(
            "connected_peers",
            "Peers with at least one open connection",
            metrics.connected_peers.clone(),
        );
        sub.register(
            "bytes",
            "Payload bytes of requests, responses and gossip by protocol and direction",
            metrics.bytes.clone(),
        );
        sub.register(
            "refused_connections",
            "Connections refused or closed (roster gate, connection limits), by reason",
            metrics.refused_connections.clone(),
        );
        sub.register(
            "rosters_accepted",
            "Roster envelopes accepted",
            metrics.rosters_accepted.clone(),
        );
        sub.register(
            "rosters_refused",
            "Roster envelopes refused, by reason",
            metrics.rosters_refused.clone(),
        );
        sub.register(
            "roster_addrs_dropped",
            "Roster multiaddrs dropped: unparsable or naming another peer",
            metrics.roster_addrs_dropped.clone(),
        );
        sub.register(
            "gossip_refused",
            "Gossip messages refused, by reason",
            metrics.gossip_refused.clone(),
        );
        sub.register(
            "requests_refused",
            "Inbound requests refused before the application saw them, by reason",
            metrics.requests_refused.clone(),
        );
        sub.register(
            "events_dropped",
            "Events dropped because the application's event buffer was full or closed",
            metrics.events_dropped.clone(),
        );
        metrics
    }

    /// Counts `n` payload bytes of `protocol` going `direction` (`in` or `out`).
    pub(crate) fn traffic(&self, protocol: &str, direction: &'static str, n: usize) {
        self.bytes
            .get_or_create(&TrafficLabels {
                protocol: protocol.to_owned(),
                direction,
            })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts one refused connection.
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused_connections
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}
