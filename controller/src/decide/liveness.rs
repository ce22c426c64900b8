//! Node liveness from heartbeats, and the per-epoch availability byte of Proof of Availability.
//!
//! Losing the oracle's own view never counts against a node: a node is [`NodeLiveness::Lost`]
//! only after the oracle, connected to the broker the whole time, saw no heartbeat for the grace
//! period. Whenever the oracle's link was down during that period the answer is
//! [`NodeLiveness::Unknown`], and nothing is stopped or moved on an Unknown.

use std::collections::BTreeMap;

use alloy_primitives::Address;

/// What one oracle concludes about one node right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeLiveness {
    /// A heartbeat arrived within the last interval and a half.
    Alive,
    /// Late, but not yet for the whole grace period; the oracle watched the whole silence.
    Suspect,
    /// Confirmed absence: no heartbeat for the grace period while the oracle was connected.
    Lost,
    /// The oracle cannot tell: its own broker link was down (or only recently came back).
    Unknown,
}

impl NodeLiveness {
    /// Whether a workload on the node may be left where it is (everything but confirmed loss).
    pub const fn may_keep_workloads(self) -> bool {
        !matches!(self, Self::Lost)
    }
}

/// The oracle's own broker connection, which decides whether silence means anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrokerLink {
    /// Connected without interruption since this unix millisecond.
    Connected {
        /// Start of the current uninterrupted connection.
        since_ms: u64,
    },
    /// Not connected now.
    Disconnected,
}

/// A configuration that cannot tell Suspect from Lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LivenessConfigError {
    /// A zero heartbeat interval.
    #[error("heartbeat interval must be positive")]
    ZeroInterval,
    /// A grace of fewer than 2 intervals would declare a merely late node lost.
    #[error("grace must be at least 2 missed heartbeats, got {0}")]
    GraceTooShort(u32),
}

/// Heartbeat interval and grace, shared by liveness and availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessConfig {
    heartbeat_interval_ms: u64,
    grace_missed: u32,
}

impl LivenessConfig {
    /// Nodes heartbeat every 10 s unless configured otherwise.
    pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 10_000;
    /// A node is lost after 3 missed heartbeats unless configured otherwise.
    pub const DEFAULT_GRACE_MISSED: u32 = 3;

    /// Nodes heartbeat every `heartbeat_interval_ms`; lost after `grace_missed` intervals.
    pub const fn new(
        heartbeat_interval_ms: u64,
        grace_missed: u32,
    ) -> Result<Self, LivenessConfigError> {
        if heartbeat_interval_ms == 0 {
            return Err(LivenessConfigError::ZeroInterval);
        }
        if grace_missed < 2 {
            return Err(LivenessConfigError::GraceTooShort(grace_missed));
        }
        Ok(Self {
            heartbeat_interval_ms,
            grace_missed,
        })
    }

    /// Interval between two heartbeats of a node, milliseconds.
    pub const fn heartbeat_interval_ms(&self) -> u64 {
        self.heartbeat_interval_ms
    }

    /// Silence (ms) after which a node is Suspect: one interval plus half an interval of jitter.
    pub const fn suspect_after_ms(&self) -> u64 {
        self.heartbeat_interval_ms + self.heartbeat_interval_ms / 2
    }

    /// Watched silence (ms) after which a node is Lost: the grace period.
    pub const fn lost_after_ms(&self) -> u64 {
        self.heartbeat_interval_ms
            .saturating_mul(self.grace_missed as u64)
    }
}

impl LivenessConfig {
    /// Shortest heartbeat interval a node may announce and be judged by: below it, a node's
    /// own claim would make ordinary broker latency look like silence.
    pub const MIN_ANNOUNCED_INTERVAL_MS: u64 = 1_000;

    /// The rules for a node that announces it heartbeats every `announced_ms` (0: not
    /// announced): its own pace when faster than the network's (so its silence is noticed
    /// sooner), never slower (a node cannot buy itself more grace).
    pub fn for_node(&self, announced_ms: u64) -> Self {
        if announced_ms == 0 {
            return *self;
        }
        Self {
            heartbeat_interval_ms: announced_ms
                .clamp(Self::MIN_ANNOUNCED_INTERVAL_MS, self.heartbeat_interval_ms),
            grace_missed: self.grace_missed,
        }
    }

    /// Whether a node announcing `announced_ms` heartbeats more slowly than the network judges:
    /// it is seen Suspect between beats and loses availability, so operators are told.
    pub const fn too_slow(&self, announced_ms: u64) -> bool {
        announced_ms > self.heartbeat_interval_ms
    }
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: Self::DEFAULT_HEARTBEAT_INTERVAL_MS,
            grace_missed: Self::DEFAULT_GRACE_MISSED,
        }
    }
}

/// Liveness of a node whose last heartbeat (if any ever reached this oracle) arrived at
/// `last_heartbeat_ms`, judged at `now_ms` by an oracle whose broker link is `link`.
///
/// Only silence the oracle watched counts: it runs from the later of the last heartbeat and the
/// start of the current connection. A node never heard from is Lost once the oracle has been
/// connected for the grace period.
pub fn liveness(
    last_heartbeat_ms: Option<u64>,
    link: BrokerLink,
    now_ms: u64,
    config: &LivenessConfig,
) -> NodeLiveness {
    if let Some(last) = last_heartbeat_ms
        && now_ms.saturating_sub(last) < config.suspect_after_ms()
    {
        return NodeLiveness::Alive;
    }
    let BrokerLink::Connected { since_ms } = link else {
        return NodeLiveness::Unknown;
    };
    let watched_from = last_heartbeat_ms.map_or(since_ms, |last| last.max(since_ms));
    if now_ms.saturating_sub(watched_from) >= config.lost_after_ms() {
        return NodeLiveness::Lost;
    }
    match last_heartbeat_ms {
        Some(last) if last >= since_ms => NodeLiveness::Suspect,
        _ => NodeLiveness::Unknown,
    }
}

/// How long a node suspected gone (its last will arrived) has to answer a liveness probe with a
/// heartbeat before it is Lost: long enough for a live node's reconnection and reply, far
/// shorter than the heartbeat grace.
pub const PROBE_PATIENCE_MS: u64 = 2_000;

/// The liveness of a node this oracle probed at `probed_ms`, first judged `judged` by its
/// heartbeats: Lost once the node let [`PROBE_PATIENCE_MS`] pass without a heartbeat while this
/// oracle's link stayed up from before the probe (the suspicion is confirmed by the node's own
/// silence, not by whoever raised it), else `judged` unchanged. A link that was down meanwhile
/// proves nothing.
pub fn after_probe(
    judged: NodeLiveness,
    last_heartbeat_ms: Option<u64>,
    probed_ms: Option<u64>,
    link: BrokerLink,
    now_ms: u64,
) -> NodeLiveness {
    let Some(probed) = probed_ms else {
        return judged;
    };
    let answered = last_heartbeat_ms.is_some_and(|last| last >= probed);
    let watched = matches!(link, BrokerLink::Connected { since_ms } if since_ms <= probed);
    if !answered && watched && now_ms.saturating_sub(probed) >= PROBE_PATIENCE_MS {
        NodeLiveness::Lost
    } else {
        judged
    }
}

/// Every node's liveness as one pass sees it, worked out once at the start of the pass so the
/// placement candidates, the job loops and the metrics agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivenessView {
    /// Each node heard from.
    pub nodes: BTreeMap<Address, NodeLiveness>,
    /// A node never heard from (or forgotten): Lost once the oracle has watched long enough,
    /// else Unknown.
    pub unheard: NodeLiveness,
}

impl LivenessView {
    /// The liveness of `node`.
    pub fn of(&self, node: &Address) -> NodeLiveness {
        self.nodes.get(node).copied().unwrap_or(self.unheard)
    }
}

/// Heartbeats a perfectly available node sends in one epoch (at least 1).
pub const fn expected_heartbeats(epoch_length_s: u64, config: &LivenessConfig) -> u64 {
    let expected = epoch_length_s.saturating_mul(1000) / config.heartbeat_interval_ms;
    if expected == 0 { 1 } else { expected }
}

/// Heartbeats received during the epoch `[start_ms, end_ms)`, counted as distinct heartbeat
/// slots (one per interval since the epoch start), so a node cannot make up for downtime by
/// sending many heartbeats at once and a duplicate delivery counts once. A heartbeat may fill
/// the slot next to its own when it arrived within a quarter interval of their border: a
/// node beating steadily on a phase near the slots' borders would otherwise lose a slot to
/// every few milliseconds of jitter (one beat just before a border, the next just after the
/// following one).
pub fn received_heartbeats(
    arrivals_ms: &[u64],
    start_ms: u64,
    end_ms: u64,
    config: &LivenessConfig,
) -> u64 {
    let interval = config.heartbeat_interval_ms;
    let tolerance = interval / 4;
    let last_slot = end_ms
        .saturating_sub(start_ms)
        .div_ceil(interval)
        .saturating_sub(1);
    let mut offsets: Vec<u64> = arrivals_ms
        .iter()
        .filter(|&&t| t >= start_ms && t < end_ms)
        .map(|&t| t - start_ms)
        .collect();
    offsets.sort_unstable();
    // Each arrival reaches the slots from (offset − tolerance) to (offset + tolerance); taking
    // the earliest free one it reaches, in arrival order, fills the most slots (later arrivals
    // never reach further back).
    let mut next_free = 0;
    let mut filled = 0;
    for offset in offsets {
        let earliest = offset.saturating_sub(tolerance) / interval;
        let latest = ((offset + tolerance) / interval).min(last_slot);
        let slot = earliest.max(next_free);
        if slot <= latest {
            filled += 1;
            next_free = slot + 1;
        }
    }
    filled
}

/// The availability byte `H = floor(received / expected × 255)`, capped at 255 (0 when nothing
/// was expected).
pub fn availability_byte(received: u64, expected: u64) -> u8 {
    if expected == 0 {
        return 0;
    }
    let value = u128::from(received) * 255 / u128::from(expected);
    u8::try_from(value.min(255)).unwrap_or(u8::MAX)
}

/// Minimum self-availability, percent, for an oracle to vote on availability.
pub const SELF_AVAILABILITY_MIN_PERCENT: u64 = 98;

/// Whether an oracle that received `received` of its own `expected` heartbeats (echoed back by
/// the broker, counted like any node's) is available enough — at least 98 % — for its
/// availability table to count. Compared on the counts, not the rounded byte.
pub fn may_vote_on_availability(received: u64, expected: u64) -> bool {
    expected > 0
        && u128::from(received) * 100
            >= u128::from(expected) * u128::from(SELF_AVAILABILITY_MIN_PERCENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unanswered_probe_confirms_a_suspicion_only_while_the_link_held() {
        let up = BrokerLink::Connected { since_ms: 0 };
        let alive = NodeLiveness::Alive;
        // Not probed: the heartbeats decide.
        assert_eq!(after_probe(alive, Some(10_000), None, up, 60_000), alive);
        // Probed at 20 s, no heartbeat since: Lost after the patience, not before.
        let probed = Some(20_000);
        assert_eq!(after_probe(alive, Some(15_000), probed, up, 21_999), alive);
        assert_eq!(
            after_probe(alive, Some(15_000), probed, up, 20_000 + PROBE_PATIENCE_MS),
            NodeLiveness::Lost
        );
        // A heartbeat at or after the probe answers it.
        assert_eq!(after_probe(alive, Some(20_000), probed, up, 30_000), alive);
        assert_eq!(after_probe(alive, Some(20_500), probed, up, 30_000), alive);
        // The oracle's own link came up after the probe, or is down: the silence proves nothing.
        let late = BrokerLink::Connected { since_ms: 20_001 };
        assert_eq!(
            after_probe(alive, Some(15_000), probed, late, 30_000),
            alive
        );
        let down = BrokerLink::Disconnected;
        let unknown = NodeLiveness::Unknown;
        assert_eq!(
            after_probe(unknown, Some(15_000), probed, down, 30_000),
            unknown
        );
        // Never heard and probed (a will for a node not yet seen): the same rule.
        assert_eq!(
            after_probe(unknown, None, probed, up, 25_000),
            NodeLiveness::Lost
        );
    }
    use proptest::prelude::*;

    const S: u64 = 1000;

    fn cfg() -> LivenessConfig {
        LivenessConfig::default()
    }

    fn connected(since_ms: u64) -> BrokerLink {
        BrokerLink::Connected { since_ms }
    }

    #[test]
    fn config_validation() {
        assert_eq!(
            LivenessConfig::new(0, 3),
            Err(LivenessConfigError::ZeroInterval)
        );
        assert_eq!(
            LivenessConfig::new(10, 1),
            Err(LivenessConfigError::GraceTooShort(1))
        );
        let c = LivenessConfig::new(10 * S, 3).expect("valid");
        assert_eq!(c, LivenessConfig::default());
        assert_eq!(c.suspect_after_ms(), 15 * S);
        assert_eq!(c.lost_after_ms(), 30 * S);
    }

    #[test]
    fn a_node_is_judged_by_its_own_pace_but_never_given_more_grace() {
        let network = cfg();
        assert_eq!(network.for_node(0), network, "not announced");
        let fast = network.for_node(2 * S);
        assert_eq!(fast.lost_after_ms(), 6 * S);
        assert_eq!(network.for_node(1).heartbeat_interval_ms(), S, "floor");
        assert_eq!(
            network.for_node(60 * S),
            network,
            "a slow node gets no extra grace"
        );
        assert!(network.too_slow(11 * S) && !network.too_slow(10 * S) && !network.too_slow(0));
        // A node announcing 2 s is lost after 6 s of watched silence; the network's default
        // would still see it Suspect then.
        let heard = Some(100 * S);
        assert_eq!(
            liveness(heard, connected(0), 106 * S, &fast),
            NodeLiveness::Lost
        );
        assert_eq!(
            liveness(heard, connected(0), 106 * S, &network),
            NodeLiveness::Alive
        );
    }

    #[test]
    fn fresh_heartbeat_is_alive_even_while_disconnected() {
        assert_eq!(
            liveness(Some(100 * S), connected(0), 114 * S, &cfg()),
            NodeLiveness::Alive
        );
        assert_eq!(
            liveness(Some(100 * S), BrokerLink::Disconnected, 114 * S, &cfg()),
            NodeLiveness::Alive
        );
        // A heartbeat stamped slightly in the future (clock skew) is fresh.
        assert_eq!(
            liveness(Some(200 * S), connected(0), 100 * S, &cfg()),
            NodeLiveness::Alive
        );
    }

    #[test]
    fn watched_silence_goes_suspect_then_lost() {
        let c = cfg();
        assert_eq!(
            liveness(Some(100 * S), connected(0), 115 * S, &c),
            NodeLiveness::Suspect
        );
        assert_eq!(
            liveness(Some(100 * S), connected(0), 130 * S - 1, &c),
            NodeLiveness::Suspect
        );
        assert_eq!(
            liveness(Some(100 * S), connected(0), 130 * S, &c),
            NodeLiveness::Lost
        );
    }

    #[test]
    fn a_disconnected_oracle_never_declares_loss() {
        assert_eq!(
            liveness(Some(100 * S), BrokerLink::Disconnected, 1000 * S, &cfg()),
            NodeLiveness::Unknown
        );
        assert_eq!(
            liveness(None, BrokerLink::Disconnected, 1000 * S, &cfg()),
            NodeLiveness::Unknown
        );
    }

    #[test]
    fn a_recent_reconnection_restarts_the_watch() {
        let c = cfg();
        // Silent since 100 s, but the oracle only reconnected at 500 s: Unknown until 530 s.
        assert_eq!(
            liveness(Some(100 * S), connected(500 * S), 510 * S, &c),
            NodeLiveness::Unknown
        );
        assert_eq!(
            liveness(Some(100 * S), connected(500 * S), 529 * S, &c),
            NodeLiveness::Unknown
        );
        assert_eq!(
            liveness(Some(100 * S), connected(500 * S), 530 * S, &c),
            NodeLiveness::Lost
        );
    }

    #[test]
    fn a_node_never_heard_from() {
        let c = cfg();
        assert_eq!(
            liveness(None, connected(500 * S), 510 * S, &c),
            NodeLiveness::Unknown
        );
        assert_eq!(
            liveness(None, connected(500 * S), 530 * S, &c),
            NodeLiveness::Lost
        );
    }

    #[test]
    fn only_lost_loses_workloads() {
        assert!(NodeLiveness::Alive.may_keep_workloads());
        assert!(NodeLiveness::Suspect.may_keep_workloads());
        assert!(NodeLiveness::Unknown.may_keep_workloads());
        assert!(!NodeLiveness::Lost.may_keep_workloads());
    }

    #[test]
    fn availability_bytes() {
        assert_eq!(availability_byte(0, 8640), 0);
        assert_eq!(availability_byte(8640, 8640), 255);
        assert_eq!(availability_byte(9000, 8640), 255);
        assert_eq!(availability_byte(4320, 8640), 127);
        assert_eq!(availability_byte(1, 0), 0);
        assert_eq!(availability_byte(u64::MAX, 1), 255);
        assert_eq!(expected_heartbeats(86_400, &cfg()), 8640);
        assert_eq!(expected_heartbeats(5, &cfg()), 1);
    }

    #[test]
    fn heartbeats_count_once_per_slot_inside_the_epoch() {
        let c = cfg();
        let arrivals = [999, 1000, 1001, 5000, 10_999, 11_000, 25_000, 31_000];
        // Epoch [1000, 31000): slots 0 (1000, 1001, 5000, 10999), 1 (11000), 2 (25000).
        assert_eq!(received_heartbeats(&arrivals, 1000, 31_000, &c), 3);
        assert_eq!(received_heartbeats(&[], 1000, 31_000, &c), 0);
    }

    #[test]
    fn a_steady_node_beating_on_the_slots_borders_keeps_every_slot() {
        let c = cfg();
        // Every 10 s give or take 2 ms, on the slots' borders: slots 0, 2, 2 by position.
        let arrivals = [1_000 + 9_999, 1_000 + 20_001, 1_000 + 29_999];
        assert_eq!(received_heartbeats(&arrivals, 1000, 31_000, &c), 3);
        // A burst after downtime fills its own slot and at most the one beside it.
        let burst = [
            1_000 + 17_600,
            1_000 + 17_700,
            1_000 + 17_800,
            1_000 + 17_900,
        ];
        assert_eq!(received_heartbeats(&burst, 1000, 31_000, &c), 2);
        let mid_slot = [1_000 + 25_000, 1_000 + 25_100, 1_000 + 25_200];
        assert_eq!(received_heartbeats(&mid_slot, 1000, 31_000, &c), 1);
    }

    #[test]
    fn the_98_percent_rule_is_exact() {
        assert!(may_vote_on_availability(98, 100));
        assert!(!may_vote_on_availability(97, 100));
        assert!(may_vote_on_availability(8468, 8640)); // 98.01 %
        assert!(!may_vote_on_availability(8467, 8640)); // 97.997 %
        assert!(!may_vote_on_availability(0, 0));
    }

    proptest! {
        #[test]
        fn the_byte_is_monotone_and_capped(received in 0u64..20_000, expected in 1u64..20_000) {
            let byte = availability_byte(received, expected);
            prop_assert!(byte <= availability_byte(received + 1, expected));
            prop_assert_eq!(byte == 255, received >= expected);
        }

        #[test]
        fn liveness_is_never_lost_without_a_full_watched_grace(
            last in proptest::option::of(0u64..1_000_000),
            since in proptest::option::of(0u64..1_000_000),
            now in 0u64..2_000_000,
        ) {
            let c = cfg();
            let link = since.map_or(BrokerLink::Disconnected, |since_ms| BrokerLink::Connected { since_ms });
            let state = liveness(last, link, now, &c);
            if state == NodeLiveness::Lost {
                let since = since.expect("lost needs a connection");
                prop_assert!(now >= since + c.lost_after_ms());
                if let Some(last) = last {
                    prop_assert!(now >= last + c.lost_after_ms());
                }
            }
            if state == NodeLiveness::Alive {
                prop_assert!(last.is_some_and(|l| now < l + c.suspect_after_ms()));
            }
            // More silence never revives a node.
            let later = liveness(last, link, now + c.heartbeat_interval_ms(), &c);
            prop_assert!(!(state != NodeLiveness::Alive && later == NodeLiveness::Alive));
        }

        #[test]
        fn received_never_exceeds_slots(arrivals in proptest::collection::vec(0u64..200_000, 0..200)) {
            let c = cfg();
            let received = received_heartbeats(&arrivals, 50_000, 150_000, &c);
            prop_assert!(received <= 10);
        }

        #[test]
        fn a_steady_beat_with_jitter_fills_every_slot(
            phase in 0u64..10_000,
            jitter in proptest::collection::vec(-2_000i64..2_000, 12),
        ) {
            let c = cfg();
            let arrivals: Vec<u64> = jitter
                .iter()
                .enumerate()
                .map(|(i, j)| (40_000 + phase + i as u64 * 10_000).saturating_add_signed(*j))
                .collect();
            let inside = arrivals.iter().filter(|&&t| (50_000..150_000).contains(&t)).count() as u64;
            let received = received_heartbeats(&arrivals, 50_000, 150_000, &c);
            prop_assert!(received <= 10);
            prop_assert!(received + 1 >= inside.min(10), "{received} of {inside} inside");
        }
    }
}
