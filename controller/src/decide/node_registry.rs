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
//!
//! Strangers cannot grow it without bound or hide work from it: a node's reports count only
//! while the chain has not said it is unlicensed ([`Registry::reports_of`]); a node unheard for
//! [`NODE_EXPIRY_MS`] is forgotten; the registry holds at most [`MAX_NODES`] nodes, evicting the
//! longest-silent node without a licence to admit a new one; a heartbeat or status report
//! listing more than [`MAX_WORKLOADS_PER_NODE`] workloads is refused; and a node the chain says
//! is unlicensed is heard at most once per [`UNLICENSED_HEARTBEAT_MS`], refused before its
//! signature is even checked.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use alloy_primitives::Address;
use r1_protocol::Message;
use r1_protocol::envelope::MessageKind;
use r1_protocol::messages::{Heartbeat, JobStatusReport, WorkloadId, WorkloadReport};
use r1_protocol::verify::{Freshness, Verified, Verifier, VerifyError};

use crate::decide::liveness::{
    BrokerLink, LivenessConfig, LivenessView, NodeLiveness, after_probe, liveness,
};
use crate::decide::placement::{Candidate, Candidates};

/// Arrival times kept per node: enough for two epochs of heartbeats at one per second.
const MAX_ARRIVALS: usize = 8192;

/// Nodes remembered at once: far more than a network's licences, few enough to bound memory.
pub const MAX_NODES: usize = 10_000;

/// Workloads one node may report: more than any node can run.
pub const MAX_WORKLOADS_PER_NODE: usize = 512;

/// A node unheard for this long is forgotten (its replicas were moved long before).
pub const NODE_EXPIRY_MS: u64 = 15 * 60_000;

/// How often a node the chain says is unlicensed is heard: enough to say why it gets no work
/// and to notice a new licence, little enough that its traffic costs nothing.
pub const UNLICENSED_HEARTBEAT_MS: u64 = 30_000;

/// How long a reading that a node is unlicensed stays good: a stranger's node costs one chain
/// call per this period, a newly licensed node waits at most this long for work.
pub const UNLICENSED_RECHECK_MS: u64 = 5 * 60_000;

/// How long a reading that a node is idle (suspended) stays good: a suspension ends at an epoch
/// boundary without an event, so an idle node is read again this often.
pub const IDLE_RECHECK_MS: u64 = 30_000;

/// Licence readings refreshed in one pass, nodes never read first: a flood of new nodes costs a
/// bounded number of chain calls per pass (readings go a page of a few hundred a call).
pub const STANDINGS_PER_PASS: usize = 1_000;

/// How long after this oracle (re)connects to the broker a node it has not heard from since gets
/// to come back before its silence counts. Node agents retry the broker at most every 10 s
/// (their longest reconnection delay) and heartbeat as soon as they are back, so after a broker
/// outage a healthy node may reach the broker up to that long after this oracle did.
pub const NODE_RECONNECT_ALLOWANCE_MS: u64 = 10_000;

/// The link as the liveness rules see it for a node last heard at `last_ms`: when that was
/// before the connection started (or never), its silence is watched only from
/// [`NODE_RECONNECT_ALLOWANCE_MS`] after the start.
/// The liveness of a node this oracle never heard from (or forgot): Lost once it has watched
/// long enough, else Unknown.
fn unheard(link: BrokerLink, now_ms: u64, config: &LivenessConfig) -> NodeLiveness {
    liveness(None, watched(link, None), now_ms, config)
}

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
    /// It may take no work: governance suspended it for the epoch in progress, or its licence
    /// is a Master or Genesis Node Deed (they mine PoA and serve no jobs). Still a member
    /// (heard, measured, on the roster), but what it runs counts for no node set.
    pub idle: bool,
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
    /// The node's compressed public key, recovered from its heartbeat's signature: what a
    /// workload's secrets are sealed to.
    pub public_key: [u8; r1_protocol::sealed::PUBLIC_KEY_LEN],
    /// When the node's last will arrived (the broker saw its session end), if no heartbeat
    /// came since: it is to be probed.
    pub suspected_ms: Option<u64>,
    /// When this oracle probed it, if no heartbeat came since.
    pub probed_ms: Option<u64>,
    /// The nonce of the status report each workload's entry came from, while no later
    /// heartbeat superseded it: status reports are read before heartbeats, so a heartbeat
    /// sealed before a report may be taken after it and must not undo it.
    pub status_nonces: BTreeMap<WorkloadId, u64>,
}

impl NodeRecord {
    /// Whether this node's reports count (see [`Registry::reports_count`]), for a caller that
    /// holds the record already: a pass walks 10,000 of them.
    pub fn reports_count(&self) -> bool {
        self.standing.is_none_or(|s| s.licensed && !s.idle)
    }

    /// This node's liveness as an oracle whose broker link is `link` sees it now, by the
    /// node's own pace when it announced a faster one ([`LivenessConfig::for_node`]).
    pub fn liveness(&self, link: BrokerLink, now_ms: u64, config: &LivenessConfig) -> NodeLiveness {
        let config = config.for_node(self.heartbeat.interval_ms);
        let link = watched(link, Some(self.last_ms));
        let judged = liveness(Some(self.last_ms), link, now_ms, &config);
        after_probe(judged, Some(self.last_ms), self.probed_ms, link, now_ms)
    }
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
    /// The chain says the node is unlicensed and it was heard recently enough.
    #[error("unlicensed node heard less than {UNLICENSED_HEARTBEAT_MS} ms ago")]
    Unlicensed,
    /// The message lists more workloads than any node runs.
    #[error("{0} workloads reported; at most {MAX_WORKLOADS_PER_NODE} are accepted")]
    TooManyWorkloads(usize),
    /// The registry is full of licensed or unread nodes.
    #[error("the registry holds {MAX_NODES} nodes already")]
    Full,
}

impl Refusal {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Verify(e) => e.label(),
            Self::TopicMismatch { .. } => "topic_mismatch",
            Self::Unlicensed => "unlicensed",
            Self::TooManyWorkloads(_) => "too_many_workloads",
            Self::Full => "registry_full",
        }
    }
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    nodes: BTreeMap<Address, NodeRecord>,
    /// The nodes listing a workload of each job, so a job's reports are found without going
    /// through every node (a pass asks once per job).
    by_job: HashMap<u64, BTreeSet<Address>>,
    heartbeats: Verifier<NodePolicy>,
    statuses: Verifier<NodePolicy>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            nodes: BTreeMap::new(),
            by_job: HashMap::new(),
            heartbeats: Verifier::new(node_kinds as NodePolicy, Freshness::STANDARD),
            statuses: Verifier::new(node_kinds as NodePolicy, Freshness::STANDARD),
        }
    }
}

impl Registry {
    /// Records a heartbeat published under `topic_node`'s topic; warns when the node announces
    /// a slower pace than `config`, the network's, judges it by.
    pub fn on_heartbeat(
        &mut self,
        topic_node: Address,
        bytes: &[u8],
        now_ms: u64,
        config: &LivenessConfig,
    ) -> Result<Address, Refusal> {
        self.refuse_unlicensed(&topic_node, now_ms)?;
        let verified = authenticate(bytes, now_ms)?;
        self.take_heartbeat(topic_node, verified, now_ms, config)
    }

    /// Whether a message `topic_node` published on `channel` at `now_ms` is worth checking:
    /// the registry's checks that come before the signature's (see [`Registry::on_heartbeat`]
    /// and [`Registry::on_status`]), for a receiver that checks signatures outside the lock
    /// guarding the registry ([`authenticate`]) and then calls [`Registry::take_heartbeat`] or
    /// [`Registry::take_status`].
    pub fn wants(
        &self,
        channel: NodeChannel,
        topic_node: &Address,
        now_ms: u64,
    ) -> Result<bool, Refusal> {
        match channel {
            NodeChannel::Heartbeat => self.refuse_unlicensed(topic_node, now_ms).map(|()| true),
            NodeChannel::Status => Ok(self.nodes.contains_key(topic_node)),
        }
    }

    /// Records a heartbeat [`authenticate`] checked, published under `topic_node`'s topic (see
    /// [`Registry::on_heartbeat`]).
    pub fn take_heartbeat(
        &mut self,
        topic_node: Address,
        verified: Verified<Heartbeat>,
        now_ms: u64,
        config: &LivenessConfig,
    ) -> Result<Address, Refusal> {
        self.refuse_unlicensed(&topic_node, now_ms)?;
        if verified.sender != topic_node {
            return Err(Refusal::TopicMismatch {
                signer: verified.sender,
                topic: topic_node,
            });
        }
        let count = verified.message.workloads.len();
        if count > MAX_WORKLOADS_PER_NODE {
            return Err(Refusal::TooManyWorkloads(count));
        }
        let mut verified = self.heartbeats.admit(verified, now_ms)?;
        let node = verified.sender;
        let announced = verified.message.interval_ms;
        let previous = self.nodes.get(&node).map(|r| r.heartbeat.interval_ms);
        if config.too_slow(announced) && previous != Some(announced) {
            tracing::warn!(
                %node,
                announced_ms = announced,
                network_ms = config.heartbeat_interval_ms(),
                "node heartbeats more slowly than the network judges liveness and availability by; \
                 it will be seen Suspect between beats and paid for fewer heartbeats"
            );
        }
        if let Some(record) = self.nodes.get_mut(&node) {
            keep_newer_reports(
                &mut verified.message.workloads,
                &record.heartbeat.workloads,
                &mut record.status_nonces,
                verified.nonce,
            );
        }
        let listed = jobs_of(&verified.message);
        let was_listed = self.nodes.get(&node).map(|r| jobs_of(&r.heartbeat));
        match self.nodes.get_mut(&node) {
            Some(record) => {
                record.heartbeat = verified.message;
                record.public_key = verified.public_key;
                record.last_ms = now_ms;
                record.suspected_ms = None;
                record.probed_ms = None;
                record.arrivals.push_back(now_ms);
                if record.arrivals.len() > MAX_ARRIVALS {
                    record.arrivals.pop_front();
                }
            }
            None => {
                self.make_room()?;
                tracing::info!(%node, alias = verified.message.alias, "first heartbeat");
                self.nodes.insert(
                    node,
                    NodeRecord {
                        heartbeat: verified.message,
                        last_ms: now_ms,
                        arrivals: VecDeque::from([now_ms]),
                        standing: None,
                        public_key: verified.public_key,
                        suspected_ms: None,
                        probed_ms: None,
                        status_nonces: BTreeMap::new(),
                    },
                );
            }
        }
        if let Some(jobs) = was_listed {
            self.unindex(node, &jobs);
        }
        self.index(node, &listed);
        Ok(node)
    }

    fn index(&mut self, node: Address, jobs: &BTreeSet<u64>) {
        for job in jobs {
            self.by_job.entry(*job).or_default().insert(node);
        }
    }

    fn unindex(&mut self, node: Address, jobs: &BTreeSet<u64>) {
        for job in jobs {
            if let Some(nodes) = self.by_job.get_mut(job) {
                nodes.remove(&node);
                if nodes.is_empty() {
                    self.by_job.remove(job);
                }
            }
        }
    }

    /// Forgets `node` and its place in the job index.
    fn remove_node(&mut self, node: &Address) {
        if let Some(record) = self.nodes.remove(node) {
            self.unindex(*node, &jobs_of(&record.heartbeat));
        }
    }

    /// Takes the last will the broker published for `topic_node` (see
    /// [`r1_protocol::messages::NodeGone`]) as a suspicion that the node is gone: it is probed
    /// next pass. Only the signature is checked (a will is sealed when the node connects, so
    /// it is old, and a replay costs one probe); a node never heard from is not tracked.
    pub fn on_gone(
        &mut self,
        topic_node: Address,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Address, Refusal> {
        let envelope = r1_protocol::Envelope::from_bytes(bytes)
            .map_err(|e| Refusal::Verify(VerifyError::Malformed(e)))?;
        let signer = envelope.recover_signer();
        if envelope.kind != MessageKind::Gone || signer != Some(topic_node) {
            return Err(Refusal::TopicMismatch {
                signer: signer.unwrap_or(Address::ZERO),
                topic: topic_node,
            });
        }
        if let Some(record) = self.nodes.get_mut(&topic_node) {
            record.suspected_ms = Some(now_ms);
        }
        Ok(topic_node)
    }

    /// Nodes suspected gone and not probed since: the oracle sends each a liveness probe and
    /// records it with [`Registry::probed`].
    pub fn probes_due(&self) -> Vec<Address> {
        self.nodes
            .iter()
            .filter(|(_, r)| {
                r.suspected_ms
                    .is_some_and(|suspected| r.probed_ms.is_none_or(|probed| probed < suspected))
            })
            .map(|(node, _)| *node)
            .collect()
    }

    /// Records that `node` was probed at `now_ms`.
    pub fn probed(&mut self, node: &Address, now_ms: u64) {
        if let Some(record) = self.nodes.get_mut(node) {
            record.probed_ms = Some(now_ms);
        }
    }

    /// Refuses, before any signature is checked, a node the chain says is unlicensed that was
    /// heard less than [`UNLICENSED_HEARTBEAT_MS`] ago.
    fn refuse_unlicensed(&self, node: &Address, now_ms: u64) -> Result<(), Refusal> {
        match self.nodes.get(node) {
            Some(record)
                if record.standing.is_some_and(|s| !s.licensed)
                    && now_ms.saturating_sub(record.last_ms) < UNLICENSED_HEARTBEAT_MS =>
            {
                Err(Refusal::Unlicensed)
            }
            _ => Ok(()),
        }
    }

    /// Makes room for one more node: evicts the longest-silent node the chain has not licensed
    /// when the registry is full, or refuses when every node in it is licensed.
    fn make_room(&mut self) -> Result<(), Refusal> {
        if self.nodes.len() < MAX_NODES {
            return Ok(());
        }
        let evict = self
            .nodes
            .iter()
            .filter(|(_, r)| !r.standing.is_some_and(|s| s.licensed))
            .min_by_key(|(_, r)| r.last_ms)
            .map(|(node, _)| *node)
            .ok_or(Refusal::Full)?;
        self.remove_node(&evict);
        Ok(())
    }

    /// Forgets nodes unheard for [`NODE_EXPIRY_MS`].
    pub fn expire(&mut self, now_ms: u64) {
        let silent: Vec<Address> = self
            .nodes
            .iter()
            .filter(|(_, record)| now_ms.saturating_sub(record.last_ms) >= NODE_EXPIRY_MS)
            .map(|(node, _)| *node)
            .collect();
        for node in silent {
            tracing::info!(%node, "forgetting a node unheard for {NODE_EXPIRY_MS} ms");
            self.remove_node(&node);
        }
    }

    /// Applies a status report published under `topic_node`'s topic to the node's workloads.
    pub fn on_status(
        &mut self,
        topic_node: Address,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Address, Refusal> {
        if !self.wants(NodeChannel::Status, &topic_node, now_ms)? {
            // Status reports only update a node heard from; nothing to verify.
            return Ok(topic_node);
        }
        let verified = authenticate(bytes, now_ms)?;
        self.take_status(topic_node, verified, now_ms)
    }

    /// Applies a status report [`authenticate`] checked, published under `topic_node`'s topic
    /// (see [`Registry::on_status`]).
    pub fn take_status(
        &mut self,
        topic_node: Address,
        verified: Verified<JobStatusReport>,
        now_ms: u64,
    ) -> Result<Address, Refusal> {
        if verified.sender != topic_node {
            return Err(Refusal::TopicMismatch {
                signer: verified.sender,
                topic: topic_node,
            });
        }
        if self
            .nodes
            .get(&topic_node)
            .is_some_and(|r| r.standing.is_some_and(|s| !s.licensed))
        {
            return Err(Refusal::Unlicensed);
        }
        let verified = self.statuses.admit(verified, now_ms)?;
        if let Some(record) = self.nodes.get_mut(&verified.sender) {
            let report = verified.message.workload;
            let id = report.id;
            let workloads = &mut record.heartbeat.workloads;
            let count = workloads.len();
            match workloads.iter_mut().find(|w| w.id == id) {
                Some(existing) => *existing = report,
                None if count >= MAX_WORKLOADS_PER_NODE => {
                    return Err(Refusal::TooManyWorkloads(count + 1));
                }
                None => {
                    workloads.push(report);
                    self.by_job
                        .entry(id.job)
                        .or_default()
                        .insert(verified.sender);
                }
            }
            record.status_nonces.insert(id, verified.nonce);
        }
        Ok(verified.sender)
    }

    /// Records what the chain says about `node`.
    pub fn set_standing(&mut self, node: Address, standing: Standing) {
        if let Some(record) = self.nodes.get_mut(&node) {
            if !standing.licensed && record.standing.is_none_or(|s| s.licensed) {
                tracing::warn!(%node, "node has no valid licence: it gets no work");
            }
            if standing.idle && record.standing.is_none_or(|s| !s.idle) {
                tracing::warn!(%node, "node may take no work: suspended by governance, or licensed by a Master or Genesis Node Deed");
            }
            record.standing = Some(standing);
        }
    }

    /// Forgets what the chain said about `node`, so that it is read again first (the chain
    /// changed it: a link, an unlink, a blacklisting, a suspension).
    pub fn forget_standing(&mut self, node: &Address) {
        if let Some(record) = self.nodes.get_mut(node) {
            record.standing = None;
        }
    }

    /// Up to [`STANDINGS_PER_PASS`] nodes whose standing is unknown or older than
    /// `max_age_ms` (at most [`IDLE_RECHECK_MS`] for idle nodes, at least
    /// [`UNLICENSED_RECHECK_MS`] for unlicensed ones), nodes never read first, then the oldest
    /// readings.
    pub fn stale_standings(&self, now_ms: u64, max_age_ms: u64) -> Vec<Address> {
        let mut stale: Vec<(Option<u64>, Address)> = self
            .nodes
            .iter()
            .filter(|(_, r)| {
                r.standing.is_none_or(|s| {
                    let max_age = match (s.licensed, s.idle) {
                        (true, false) => max_age_ms,
                        (true, true) => IDLE_RECHECK_MS.min(max_age_ms),
                        (false, _) => UNLICENSED_RECHECK_MS.max(max_age_ms),
                    };
                    now_ms.saturating_sub(s.checked_ms) > max_age
                })
            })
            .map(|(node, r)| (r.standing.map(|s| s.checked_ms), *node))
            .collect();
        stale.sort();
        stale
            .into_iter()
            .take(STANDINGS_PER_PASS)
            .map(|(_, node)| node)
            .collect()
    }

    /// The nodes the chain last said are licensed.
    pub fn licensed(&self) -> std::collections::HashSet<Address> {
        self.nodes
            .iter()
            .filter(|(_, r)| r.standing.is_some_and(|s| s.licensed))
            .map(|(node, _)| *node)
            .collect()
    }

    /// Whether `node`'s reports count: the chain has not said it is unlicensed or idle.
    /// (A node not read yet counts, so an oracle that restarts sees what runs before its first
    /// readings.)
    pub fn reports_count(&self, node: &Address) -> bool {
        self.nodes.get(node).is_some_and(NodeRecord::reports_count)
    }

    /// One node's record.
    pub fn get(&self, node: &Address) -> Option<&NodeRecord> {
        self.nodes.get(node)
    }

    /// The roster entries of every licensed node heard from, with the listen addresses of its
    /// latest heartbeat.
    pub fn roster_entries(&self) -> Vec<r1_protocol::messages::RosterEntry> {
        self.nodes
            .iter()
            .filter(|(_, record)| record.standing.is_some_and(|s| s.licensed))
            .map(|(node, record)| super::roster::entry(*node, &record.heartbeat.p2p_addrs))
            .collect()
    }

    /// Every node record.
    pub fn nodes(&self) -> impl Iterator<Item = (&Address, &NodeRecord)> {
        self.nodes.iter()
    }

    /// A node's liveness as this oracle, whose broker link is `link`, sees it now, by the
    /// node's own pace when it announced a faster one ([`LivenessConfig::for_node`]).
    pub fn liveness(
        &self,
        node: &Address,
        link: BrokerLink,
        now_ms: u64,
        config: &LivenessConfig,
    ) -> NodeLiveness {
        match self.nodes.get(node) {
            Some(record) => record.liveness(link, now_ms, config),
            None => unheard(link, now_ms, config),
        }
    }

    /// What a pass reads from every node record, in one walk with no lookups (three walks
    /// and their lookups were a third of a pass at 10,000 nodes): each node's liveness as this
    /// oracle, whose broker link is `link`, sees it now; every node that may take work
    /// (licensed and heard from) with its liveness and free resources; and `visit` called with
    /// each node, its record and its liveness, in address order.
    pub fn survey(
        &self,
        link: BrokerLink,
        now_ms: u64,
        config: &LivenessConfig,
        mut visit: impl FnMut(&Address, &NodeRecord, NodeLiveness),
    ) -> (LivenessView, Candidates) {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        let mut candidates = Vec::with_capacity(self.nodes.len());
        for (node, record) in &self.nodes {
            let node_liveness = record.liveness(link, now_ms, config);
            visit(node, record, node_liveness);
            nodes.push((*node, node_liveness));
            let Some(standing) = record.standing else {
                continue;
            };
            let resources = &record.heartbeat.resources;
            candidates.push(Candidate {
                node: *node,
                operator: standing.operator,
                licensed: standing.licensed && !standing.idle,
                liveness: node_liveness,
                labels: record.heartbeat.labels.clone(),
                free: resources.free,
                gpu_model: resources.gpu_model.clone(),
            });
        }
        let view = LivenessView {
            nodes: nodes.into_iter().collect(),
            unheard: unheard(link, now_ms, config),
        };
        (view, candidates.into())
    }

    /// Every replica of `job` that no longer runs but whose logs a node whose reports count
    /// keeps, with that node.
    pub fn retired_logs_of(&self, job: u64) -> Vec<(Address, WorkloadId)> {
        self.nodes
            .iter()
            .filter(|(_, record)| record.reports_count())
            .flat_map(|(node, record)| {
                record
                    .heartbeat
                    .retired_logs
                    .iter()
                    .take(Heartbeat::MAX_RETIRED_LOGS)
                    .filter(move |w| w.job == job)
                    .map(move |w| (*node, *w))
            })
            .collect()
    }

    /// Every replica of `job` some node whose reports count reports, with that node.
    pub fn reports_of(&self, job: u64) -> Vec<(Address, &WorkloadReport)> {
        let Some(nodes) = self.by_job.get(&job) else {
            return Vec::new();
        };
        nodes
            .iter()
            .filter(|node| self.reports_count(node))
            .filter_map(|node| Some((*node, self.nodes.get(node)?)))
            .flat_map(|(node, record)| {
                record
                    .heartbeat
                    .workloads
                    .iter()
                    .filter(move |w| w.id.job == job)
                    .map(move |w| (node, w))
            })
            .collect()
    }
}

/// The channels a node publishes on that the registry takes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChannel {
    /// Heartbeats.
    Heartbeat,
    /// Status reports.
    Status,
}

/// Checks a node's message as far as needs no registry (envelope, freshness, signature,
/// payload): the costly part of taking it in, which a receiver runs before taking the lock
/// guarding the registry.
pub fn authenticate<M: Message>(bytes: &[u8], now_ms: u64) -> Result<Verified<M>, Refusal> {
    Ok(r1_protocol::verify::authenticate(
        bytes,
        now_ms,
        &Freshness::STANDARD,
    )?)
}

/// Keeps, in the `incoming` workloads of a heartbeat sealed with `nonce`, the `held` reports
/// that status reports sealed after it set (by `status_nonces`): for those workloads the
/// heartbeat is older news. The status nonces it supersedes are forgotten.
fn keep_newer_reports(
    incoming: &mut Vec<WorkloadReport>,
    held: &[WorkloadReport],
    status_nonces: &mut BTreeMap<WorkloadId, u64>,
    nonce: u64,
) {
    status_nonces.retain(|_, status_nonce| *status_nonce > nonce);
    for id in status_nonces.keys() {
        let Some(newer) = held.iter().find(|w| w.id == *id) else {
            continue;
        };
        if let Some(older) = incoming.iter_mut().find(|w| w.id == *id) {
            *older = newer.clone();
        } else if incoming.len() < MAX_WORKLOADS_PER_NODE {
            incoming.push(newer.clone());
        }
    }
}

/// The jobs a heartbeat lists workloads of.
fn jobs_of(heartbeat: &Heartbeat) -> BTreeSet<u64> {
    heartbeat.workloads.iter().map(|w| w.id.job).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::liveness::PROBE_PATIENCE_MS;
    use r1_protocol::Identity;
    use r1_protocol::envelope::Sealer;
    use r1_protocol::messages::{NodeResources, WorkloadState};

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
            interval_ms: S,
            p2p_addrs: Vec::new(),
            resources: NodeResources::default(),
            labels: BTreeMap::new(),
            workloads: vec![],
            retired_logs: vec![],
        }
    }

    /// A registry that heard `node` (licensed) at `at_ms`.
    fn heard(node: &Sealer, at_ms: u64) -> Registry {
        let mut registry = Registry::default();
        let bytes = node.seal(&heartbeat(), at_ms).expect("seal").to_bytes();
        registry
            .on_heartbeat(node.address(), &bytes, at_ms, &config())
            .expect("heartbeat");
        registry.set_standing(
            node.address(),
            Standing {
                licensed: true,
                idle: false,
                operator: Address::ZERO,
                checked_ms: at_ms,
            },
        );
        registry
    }

    #[test]
    fn a_standing_the_chain_changed_is_read_again_first() {
        let node = Sealer::new(Identity::generate());
        let mut registry = heard(&node, T0);
        let unlicensed = Standing {
            licensed: false,
            idle: false,
            operator: Address::ZERO,
            checked_ms: T0,
        };
        registry.set_standing(node.address(), unlicensed);
        assert!(registry.licensed().is_empty());
        assert!(registry.stale_standings(T0 + 1, 30_000).is_empty());
        registry.forget_standing(&node.address());
        assert_eq!(
            registry.stale_standings(T0 + 1, 30_000),
            vec![node.address()]
        );
    }

    #[test]
    fn a_suspended_node_stays_a_member_but_its_replicas_count_for_no_set() {
        let node = Sealer::new(Identity::generate());
        let mut registry = heard(&node, T0);
        assert!(registry.reports_count(&node.address()));
        let suspended = Standing {
            licensed: true,
            idle: true,
            operator: Address::ZERO,
            checked_ms: T0,
        };
        registry.set_standing(node.address(), suspended);
        assert!(registry.licensed().contains(&node.address()));
        assert!(!registry.reports_count(&node.address()));
        // Its suspension ends with an epoch, unannounced: it is read again sooner than a
        // working node.
        let later = T0 + IDLE_RECHECK_MS + 1;
        assert_eq!(
            registry.stale_standings(later, 600_000),
            vec![node.address()]
        );
        registry.set_standing(
            node.address(),
            Standing {
                idle: false,
                ..suspended
            },
        );
        assert!(registry.stale_standings(later, 600_000).is_empty());
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
            let (view, candidates) = registry.survey(back, now, &config(), |_, _, _| {});
            assert_eq!(view.of(&node.address()), NodeLiveness::Unknown);
            assert_eq!(
                candidates.iter().next().map(|c| c.liveness),
                Some(NodeLiveness::Unknown)
            );
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
            .on_heartbeat(node.address(), &bytes, again, &config())
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
            registry
                .survey(fresh, T0 + 3 * S, &config(), |_, _, _| {})
                .1
                .iter()
                .next()
                .map(|c| c.liveness),
            Some(NodeLiveness::Lost)
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

    fn workload(job: u64) -> WorkloadReport {
        serde_json::from_value(serde_json::json!({
            "id": {"job": job, "replica": 0},
            "state": {"state": "running"},
            "image_digest": "sha256:00",
            "revision": "r",
        }))
        .expect("a workload report")
    }

    #[test]
    fn a_jobs_reports_follow_heartbeats_status_reports_and_expiry() {
        let a = Sealer::new(Identity::generate());
        let b = Sealer::new(Identity::generate());
        let mut registry = Registry::default();
        let beat = |registry: &mut Registry, node: &Sealer, jobs: &[u64], at: u64| {
            let message = Heartbeat {
                workloads: jobs.iter().map(|j| workload(*j)).collect(),
                ..heartbeat()
            };
            let bytes = node.seal(&message, at).expect("seal").to_bytes();
            registry
                .on_heartbeat(node.address(), &bytes, at, &config())
                .expect("heartbeat");
        };
        let nodes_of = |registry: &Registry, job: u64| -> Vec<Address> {
            registry
                .reports_of(job)
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        let mut both = vec![a.address(), b.address()];
        both.sort();

        beat(&mut registry, &a, &[1, 2], T0);
        beat(&mut registry, &b, &[2], T0);
        assert_eq!(nodes_of(&registry, 1), vec![a.address()]);
        assert_eq!(nodes_of(&registry, 2), both);

        // A heartbeat replaces the node's list: job 1 left it, job 3 came.
        beat(&mut registry, &a, &[2, 3], T0 + S);
        assert!(nodes_of(&registry, 1).is_empty());
        assert_eq!(nodes_of(&registry, 3), vec![a.address()]);

        // A status report of a new workload lists it before the next heartbeat.
        let report = JobStatusReport {
            workload: workload(4),
            message: String::new(),
        };
        let bytes = b.seal(&report, T0 + S).expect("seal").to_bytes();
        registry
            .on_status(b.address(), &bytes, T0 + S)
            .expect("status");
        assert_eq!(nodes_of(&registry, 4), vec![b.address()]);

        // A node forgotten takes its reports along; the other's stay.
        beat(&mut registry, &b, &[2, 4], T0 + S + NODE_EXPIRY_MS);
        registry.expire(T0 + S + NODE_EXPIRY_MS);
        assert!(nodes_of(&registry, 3).is_empty());
        assert_eq!(nodes_of(&registry, 2), vec![b.address()]);
        assert_eq!(nodes_of(&registry, 4), vec![b.address()]);
    }

    #[test]
    fn a_heartbeat_sealed_before_a_status_report_but_taken_after_it_does_not_undo_it() {
        let node = Sealer::new(Identity::generate());
        let mut registry = Registry::default();
        let beat_of = |jobs: &[(u64, WorkloadState)], at: u64| {
            let message = Heartbeat {
                workloads: jobs
                    .iter()
                    .map(|(job, state)| WorkloadReport {
                        state: state.clone(),
                        ..workload(*job)
                    })
                    .collect(),
                ..heartbeat()
            };
            node.seal(&message, at).expect("seal").to_bytes()
        };
        let take = |registry: &mut Registry, bytes: &[u8], at: u64| {
            registry
                .on_heartbeat(node.address(), bytes, at, &config())
                .expect("heartbeat");
        };
        let state_of = |registry: &Registry, job: u64| {
            registry
                .reports_of(job)
                .first()
                .map(|(_, report)| report.state.clone())
        };
        let starting = WorkloadState::Starting;
        let running = WorkloadState::Running;
        take(&mut registry, &beat_of(&[(1, starting.clone())], T0), T0);

        // Sealed in this order: a heartbeat, then two status reports (job 1 now running, job
        // 2 new); taken in the other, as the status lane is read first.
        let late_beat = beat_of(&[(1, starting.clone())], T0 + S);
        let status = |job: u64| JobStatusReport {
            workload: WorkloadReport {
                state: running.clone(),
                ..workload(job)
            },
            message: String::new(),
        };
        for job in [1, 2] {
            let bytes = node.seal(&status(job), T0 + S).expect("seal").to_bytes();
            registry
                .on_status(node.address(), &bytes, T0 + S)
                .expect("status");
        }
        take(&mut registry, &late_beat, T0 + S);
        assert_eq!(state_of(&registry, 1), Some(running.clone()));
        assert_eq!(state_of(&registry, 2), Some(running.clone()));

        // A heartbeat sealed after the reports is the node's word again: job 2 is gone.
        take(
            &mut registry,
            &beat_of(&[(1, starting.clone())], T0 + 2 * S),
            T0 + 2 * S,
        );
        assert_eq!(state_of(&registry, 1), Some(starting));
        assert_eq!(state_of(&registry, 2), None);
        let record = registry.get(&node.address()).expect("record");
        assert!(
            record.status_nonces.is_empty(),
            "superseded nonces forgotten"
        );
    }

    #[test]
    fn an_unlicensed_node_reports_nothing_and_is_heard_rarely() {
        let stranger = Sealer::new(Identity::generate());
        let mut registry = Registry::default();
        let claim = Heartbeat {
            workloads: vec![workload(2)],
            ..heartbeat()
        };
        let bytes = stranger.seal(&claim, T0).expect("seal").to_bytes();
        registry
            .on_heartbeat(stranger.address(), &bytes, T0, &config())
            .expect("first heartbeat");
        // Until the chain has answered, its reports count (a restarted oracle sees what runs).
        assert_eq!(registry.reports_of(2).len(), 1);
        registry.set_standing(
            stranger.address(),
            Standing {
                licensed: false,
                idle: false,
                operator: Address::ZERO,
                checked_ms: T0,
            },
        );
        assert!(
            registry.reports_of(2).is_empty(),
            "a stranger's claim counts for nothing"
        );
        assert!(registry.licensed().is_empty());
        // Its next heartbeats are refused unread until UNLICENSED_HEARTBEAT_MS has passed.
        let again = stranger.seal(&claim, T0 + S).expect("seal").to_bytes();
        assert!(matches!(
            registry.on_heartbeat(stranger.address(), &again, T0 + S, &config()),
            Err(Refusal::Unlicensed)
        ));
        let later = T0 + UNLICENSED_HEARTBEAT_MS;
        let bytes = stranger.seal(&claim, later).expect("seal").to_bytes();
        assert!(
            registry
                .on_heartbeat(stranger.address(), &bytes, later, &config())
                .is_ok()
        );
    }

    #[test]
    fn a_nodes_will_gets_it_probed_and_an_unanswered_probe_makes_it_lost_before_the_grace() {
        // Production pace: 10 s heartbeats, lost after 30 s of silence.
        let config = LivenessConfig::new(10 * S, 3).expect("config");
        let beat = Heartbeat {
            interval_ms: 10 * S,
            ..heartbeat()
        };
        let node = Sealer::new(Identity::generate());
        let mut registry = Registry::default();
        let first = node.seal(&beat, T0).expect("seal").to_bytes();
        registry
            .on_heartbeat(node.address(), &first, T0, &config)
            .expect("heartbeat");
        let up = BrokerLink::Connected {
            since_ms: T0 - 60 * S,
        };
        let will = node
            .seal(&r1_protocol::messages::NodeGone {}, T0 - 30 * S)
            .expect("seal")
            .to_bytes();
        // Published under another node's topic, or not a will: refused, nothing suspected.
        let other = Sealer::new(Identity::generate()).address();
        assert!(registry.on_gone(other, &will, T0 + S).is_err());
        assert!(registry.on_gone(node.address(), &first, T0 + S).is_err());
        assert!(registry.probes_due().is_empty());
        // The node's own will, however old: probed once.
        registry
            .on_gone(node.address(), &will, T0 + S)
            .expect("will");
        assert_eq!(registry.probes_due(), vec![node.address()]);
        registry.probed(&node.address(), T0 + S);
        assert!(registry.probes_due().is_empty());
        let at = |registry: &Registry, ms| registry.liveness(&node.address(), up, ms, &config);
        assert_eq!(
            at(&registry, T0 + S + PROBE_PATIENCE_MS - 1),
            NodeLiveness::Alive
        );
        // Lost 3 s after its last heartbeat, not 30 s.
        assert_eq!(
            at(&registry, T0 + S + PROBE_PATIENCE_MS),
            NodeLiveness::Lost
        );
        // A heartbeat answers: alive, nothing pending.
        let answer = node.seal(&beat, T0 + 2 * S).expect("seal").to_bytes();
        registry
            .on_heartbeat(node.address(), &answer, T0 + 2 * S, &config)
            .expect("heartbeat");
        assert_eq!(at(&registry, T0 + 5 * S), NodeLiveness::Alive);
        assert!(registry.probes_due().is_empty());
    }

    #[test]
    fn heartbeats_listing_too_many_workloads_are_refused() {
        let node = Sealer::new(Identity::generate());
        let mut registry = Registry::default();
        let flood = Heartbeat {
            workloads: (0..=MAX_WORKLOADS_PER_NODE as u64).map(workload).collect(),
            ..heartbeat()
        };
        let bytes = node.seal(&flood, T0).expect("seal").to_bytes();
        assert!(matches!(
            registry.on_heartbeat(node.address(), &bytes, T0, &config()),
            Err(Refusal::TooManyWorkloads(_))
        ));
        assert!(registry.get(&node.address()).is_none());
    }

    #[test]
    fn silent_nodes_are_forgotten_and_strangers_make_room() {
        let node = Sealer::new(Identity::generate());
        let mut registry = heard(&node, T0);
        registry.expire(T0 + NODE_EXPIRY_MS - 1);
        assert!(registry.get(&node.address()).is_some());
        registry.expire(T0 + NODE_EXPIRY_MS);
        assert!(registry.get(&node.address()).is_none());

        // A full registry evicts the longest-silent unlicensed node, never a licensed one.
        let mut registry = heard(&node, T0);
        for i in 1..MAX_NODES as u64 {
            let stranger = Address::from_word(alloy_primitives::B256::from(
                alloy_primitives::U256::from(i),
            ));
            registry.nodes.insert(
                stranger,
                NodeRecord {
                    heartbeat: heartbeat(),
                    last_ms: T0 + i,
                    arrivals: VecDeque::new(),
                    standing: None,
                    public_key: [2; r1_protocol::sealed::PUBLIC_KEY_LEN],
                    suspected_ms: None,
                    probed_ms: None,
                    status_nonces: BTreeMap::new(),
                },
            );
        }
        let newcomer = Sealer::new(Identity::generate());
        let bytes = newcomer.seal(&heartbeat(), T0).expect("seal").to_bytes();
        registry
            .on_heartbeat(newcomer.address(), &bytes, T0 + MAX_NODES as u64, &config())
            .expect("room is made");
        assert_eq!(registry.nodes.len(), MAX_NODES);
        assert!(
            registry.get(&node.address()).is_some(),
            "the licensed node stays"
        );
    }
}
