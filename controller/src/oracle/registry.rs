//! The node registry: what this oracle knows of every node from its signed heartbeats and status
//! reports, and whether the chain says the node may work (a licence linked, not blacklisted).
//!
//! A message counts only if its signature recovers to the node named in its topic; a node
//! without a valid licence is remembered (to say why it gets no work) but never a candidate.
//!
//! The silence of a node not heard from since this oracle's broker connection started counts
//! only from [`NODE_RECONNECT_ALLOWANCE_MS`] after that start: when the broker itself was down,
//! healthy nodes come back on their own reconnection schedule, and until they have had the time
//! to, their silence is Unknown. A node heard during the connection has come back already: its
//! silence counts as usual.

use std::collections::{BTreeMap, VecDeque};

use alloy_primitives::Address;
use r1_protocol::envelope::MessageKind;
use r1_protocol::messages::{Heartbeat, JobStatusReport, WorkloadReport};
use r1_protocol::verify::{Freshness, Verifier, VerifyError};

use crate::decide::liveness::{BrokerLink, LivenessConfig, NodeLiveness, liveness};
use crate::decide::placement::{Candidate, Capacity};

/// Arrival times kept per node: enough for two epochs of heartbeats at one per second.
const MAX_ARRIVALS: usize = 8192;

/// How long after this oracle (re)connects to the broker a node it has not heard from since gets
/// to come back before its silence counts. Node agents retry the broker at most every 10 s
/// (their longest reconnection delay) and heartbeat as soon as they are back, so after a broker
/// outage a healthy node may reach the broker up to that long after this oracle did.
pub const NODE_RECONNECT_ALLOWANCE_MS: u64 = 10_000;

/// The link as the liveness rules see it for a node last heard at `last_ms`: when that was
/// before the connection started (or never), its silence is watched only from
/// [`NODE_RECONNECT_ALLOWANCE_MS`] after the start.
fn watched(link: BrokerLink, last_ms: Option<u64>) -> BrokerLink {
    match link {
        BrokerLink::Connected { since_ms } if last_ms.is_none_or(|last| last < since_ms) => {
            BrokerLink::Connected {
                since_ms: since_ms.saturating_add(NODE_RECONNECT_ALLOWANCE_MS),
            }
        }
        other => other,
    }
}

/// Admits any node for heartbeats and status reports; licences are checked separately.
type NodePolicy = fn(MessageKind, &Address) -> bool;

fn node_kinds(kind: MessageKind, _: &Address) -> bool {
    matches!(kind, MessageKind::Heartbeat | MessageKind::JobStatus)
}

/// What the chain says about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Linked to a licence and not blacklisted.
    pub licensed: bool,
    /// The licence owner (the operator), zero when unlicensed.
    pub operator: Address,
    /// When this was read from the chain (unix ms).
    pub checked_ms: u64,
}

/// Everything known about one node.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    /// The latest heartbeat, with workloads updated by later status reports.
    pub heartbeat: Heartbeat,
    /// When the latest heartbeat arrived (unix ms).
    pub last_ms: u64,
    /// Arrival times of recent heartbeats, oldest first.
    pub arrivals: VecDeque<u64>,
    /// The chain's word on the node, once read.
    pub standing: Option<Standing>,
}

/// Why a node message was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The envelope failed verification.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Signed by another node than the one named in the topic.
    #[error("signed by {signer}, published under {topic}")]
    TopicMismatch {
        /// The signer.
        signer: Address,
        /// The topic's node.
        topic: Address,
    },
}

impl Refusal {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Verify(e) => e.label(),
            Self::TopicMismatch { .. } => "topic_mismatch",
        }
    }
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    nodes: BTreeMap<Address, NodeRecord>,
    heartbeats: Verifier<NodePolicy>,
    statuses: Verifier<NodePolicy>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            nodes: BTreeMap::new(),
            heartbeats: Verifier::new(node_kinds as NodePolicy, Freshness::default()),
            statuses: Verifier::new(node_kinds as NodePolicy, Freshness::default()),
        }
    }
}

impl Registry {
    /// Records a heartbeat published under `topic_node`'s topic.
    pub fn on_heartbeat(
        &mut self,
        topic_node: Address,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Address, Refusal> {
        let verified = self.heartbeats.verify::<Heartbeat>(bytes, now_ms)?;
        if verified.sender != topic_node {
            return Err(Refusal::TopicMismatch {
                signer: verified.sender,
                topic: topic_node,
            });
        }
        let node = verified.sender;
        match self.nodes.get_mut(&node) {
            Some(record) => {
                record.heartbeat = verified.message;
                record.last_ms = now_ms;
                record.arrivals.push_back(now_ms);
                if record.arrivals.len() > MAX_ARRIVALS {
                    record.arrivals.pop_front();
                }
            }
            None => {
                tracing::info!(%node, alias = verified.message.alias, "first heartbeat");
                self.nodes.insert(
                    node,
                    NodeRecord {
                        heartbeat: verified.message,
                        last_ms: now_ms,
                        arrivals: VecDeque::from([now_ms]),
                        standing: None,
                    },
                );
            }
        }
        Ok(node)
    }

    /// Applies a status report published under `topic_node`'s topic to the node's workloads.
    pub fn on_status(
        &mut self,
        topic_node: Address,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Address, Refusal> {
        let verified = self.statuses.verify::<JobStatusReport>(bytes, now_ms)?;
        if verified.sender != topic_node {
            return Err(Refusal::TopicMismatch {
                signer: verified.sender,
                topic: topic_node,
            });
        }
        if let Some(record) = self.nodes.get_mut(&verified.sender) {
            let report = verified.message.workload;
            let workloads = &mut record.heartbeat.workloads;
            match workloads.iter_mut().find(|w| w.id == report.id) {
                Some(existing) => *existing = report,
                None => workloads.push(report),
            }
        }
        Ok(verified.sender)
    }

    /// Records what the chain says about `node`.
    pub fn set_standing(&mut self, node: Address, standing: Standing) {
        if let Some(record) = self.nodes.get_mut(&node) {
            if !standing.licensed && record.standing.is_none_or(|s| s.licensed) {
                tracing::warn!(%node, "node has no valid licence: it gets no work");
            }
            record.standing = Some(standing);
        }
    }

    /// Nodes whose standing is unknown or older than `max_age_ms`.
    pub fn stale_standings(&self, now_ms: u64, max_age_ms: u64) -> Vec<Address> {
        self.nodes
            .iter()
            .filter(|(_, r)| {
                r.standing
                    .is_none_or(|s| now_ms.saturating_sub(s.checked_ms) > max_age_ms)
            })
            .map(|(node, _)| *node)
            .collect()
    }

    /// One node's record.
    pub fn get(&self, node: &Address) -> Option<&NodeRecord> {
        self.nodes.get(node)
    }

    /// Every node record.
    pub fn nodes(&self) -> impl Iterator<Item = (&Address, &NodeRecord)> {
        self.nodes.iter()
    }

    /// A node's liveness as this oracle, whose broker link is `link`, sees it now.
    pub fn liveness(
        &self,
        node: &Address,
        link: BrokerLink,
        now_ms: u64,
        config: &LivenessConfig,
    ) -> NodeLiveness {
        let last_ms = self.nodes.get(node).map(|r| r.last_ms);
        liveness(last_ms, watched(link, last_ms), now_ms, config)
    }

    /// Every node that may take work: licensed and heard from, with its liveness and free
    /// resources.
    pub fn candidates(
        &self,
        link: BrokerLink,
        now_ms: u64,
        config: &LivenessConfig,
    ) -> Vec<Candidate> {
        self.nodes
            .iter()
            .filter_map(|(node, record)| {
                let standing = record.standing?;
                let resources = &record.heartbeat.resources;
                Some(Candidate {
                    node: *node,
                    operator: standing.operator,
                    licensed: standing.licensed,
                    liveness: liveness(
                        Some(record.last_ms),
                        watched(link, Some(record.last_ms)),
                        now_ms,
                        config,
                    ),
                    labels: record.heartbeat.labels.clone(),
                    free: Capacity {
                        cpu_millis: resources.cpu_millis_free,
                        memory_bytes: resources.memory_free,
                        disk_bytes: resources.disk_free,
                        gpu: resources.gpu_free,
                    },
                    gpu_model: resources.gpu_model.clone(),
                })
            })
            .collect()
    }

    /// Every replica of `job` some node reports, with that node.
    pub fn reports_of(&self, job: u64) -> Vec<(Address, &WorkloadReport)> {
        self.nodes
            .iter()
            .flat_map(|(node, record)| {
                record
                    .heartbeat
                    .workloads
                    .iter()
                    .filter(move |w| w.id.job == job)
                    .map(move |w| (*node, w))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_protocol::Identity;
    use r1_protocol::envelope::Sealer;
    use r1_protocol::messages::NodeResources;

    const S: u64 = 1000;
    /// A plausible wall clock, so heartbeats sealed "now" are fresh.
    const T0: u64 = 1_790_000_000_000;

    fn config() -> LivenessConfig {
        LivenessConfig::new(S, 3).expect("config")
    }

    fn heartbeat() -> Heartbeat {
        Heartbeat {
            alias: "n".into(),
            version: "0".into(),
            uptime_s: 1,
            resources: NodeResources::default(),
            labels: BTreeMap::new(),
            workloads: vec![],
        }
    }

    /// A registry that heard `node` (licensed) at `at_ms`.
    fn heard(node: &Sealer, at_ms: u64) -> Registry {
        let mut registry = Registry::default();
        let bytes = node.seal(&heartbeat(), at_ms).expect("seal").to_bytes();
        registry
            .on_heartbeat(node.address(), &bytes, at_ms)
            .expect("heartbeat");
        registry.set_standing(
            node.address(),
            Standing {
                licensed: true,
                operator: Address::ZERO,
                checked_ms: at_ms,
            },
        );
        registry
    }

    #[test]
    fn a_node_silent_across_a_broker_outage_is_unknown_until_it_could_reconnect() {
        let node = Sealer::new(Identity::generate());
        let registry = heard(&node, T0);
        // The broker was down from T0 + 1 s; this oracle is connected again at T0 + 120 s.
        let back = BrokerLink::Connected {
            since_ms: T0 + 120 * S,
        };
        let lost_from = T0 + 120 * S + NODE_RECONNECT_ALLOWANCE_MS + config().lost_after_ms();
        for now in [T0 + 121 * S, T0 + 124 * S, lost_from - 1] {
            assert_eq!(
                registry.liveness(&node.address(), back, now, &config()),
                NodeLiveness::Unknown,
                "{} ms after the reconnection",
                now - (T0 + 120 * S)
            );
            let candidates = registry.candidates(back, now, &config());
            assert_eq!(candidates[0].liveness, NodeLiveness::Unknown);
        }
        assert_eq!(
            registry.liveness(&node.address(), back, lost_from, &config()),
            NodeLiveness::Lost
        );
    }

    #[test]
    fn a_node_back_after_the_outage_is_alive() {
        let node = Sealer::new(Identity::generate());
        let mut registry = heard(&node, T0);
        let back = BrokerLink::Connected {
            since_ms: T0 + 120 * S,
        };
        let again = T0 + 128 * S;
        let bytes = node.seal(&heartbeat(), again).expect("seal").to_bytes();
        registry
            .on_heartbeat(node.address(), &bytes, again)
            .expect("heartbeat");
        assert_eq!(
            registry.liveness(&node.address(), back, again + S, &config()),
            NodeLiveness::Alive
        );
    }

    #[test]
    fn a_node_heard_since_the_connection_started_is_lost_after_the_usual_grace() {
        let node = Sealer::new(Identity::generate());
        // Heard 2 s into a fresh connection, then silent: no reconnection allowance.
        let registry = heard(&node, T0);
        let fresh = BrokerLink::Connected {
            since_ms: T0 - 2 * S,
        };
        assert_eq!(
            registry.liveness(&node.address(), fresh, T0 + 2 * S, &config()),
            NodeLiveness::Suspect
        );
        assert_eq!(
            registry.liveness(&node.address(), fresh, T0 + 3 * S, &config()),
            NodeLiveness::Lost
        );
        assert_eq!(
            registry.candidates(fresh, T0 + 3 * S, &config())[0].liveness,
            NodeLiveness::Lost
        );
    }

    #[test]
    fn silence_watched_on_a_long_connection_still_loses_the_node() {
        let node = Sealer::new(Identity::generate());
        let registry = heard(&node, T0);
        let long = BrokerLink::Connected {
            since_ms: T0 - 600 * S,
        };
        assert_eq!(
            registry.liveness(&node.address(), long, T0 + 2 * S, &config()),
            NodeLiveness::Suspect
        );
        assert_eq!(
            registry.liveness(&node.address(), long, T0 + 3 * S, &config()),
            NodeLiveness::Lost
        );
        assert_eq!(
            registry.liveness(
                &node.address(),
                BrokerLink::Disconnected,
                T0 + 60 * S,
                &config()
            ),
            NodeLiveness::Unknown
        );
    }
}
