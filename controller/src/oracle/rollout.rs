//! Safe rollouts in the oracle: a job whose node-facing spec changed (image, command, env,
//! ports, resources, health check) is rolled replica by replica with
//! [`crate::decide::rollout`], and rolled back when the new revision never becomes healthy.
//!
//! # One workload id per generation
//!
//! A node keeps one workload per [`WorkloadId`] and replaces it in place when a deploy names
//! the same id with another revision (node agent, `commands.rs`). A rollout needs the old and
//! the new replica side by side, so each generation of a replica gets its own id:
//! `replica = tag × 10 000 + index` (see [`workload_replica`]), where the tag (1..=429 495)
//! comes from the revision hash. Like the revision, the tag is a function of the spec alone,
//! so every oracle — whatever sequence of specs it happened to see — sends the same id for the
//! same replica and revision, and a rollout started by one oracle is recognised by the others.
//! When a new revision's tag equals one the job already uses, it is hashed again with that
//! tag until it differs, which every oracle that saw the same running revision repeats.
//! `r1ctl node ps` shows such an id as e.g. `12/4710001`: job 12, tag 471, replica 1.
//!
//! # Restart-safe state
//!
//! Each oracle keeps a [`JobRollout`] per job in its state database: the [`RolloutState`] and
//! the generations it names (revision, tag and the workload to deploy, since the stored spec
//! only describes the newest), so a restarted oracle carries a rollout or a rollback on and can
//! restore a revision the spec no longer describes. Generation numbers are this oracle's own;
//! only tags and revisions reach the nodes.
//!
//! # Each pass
//!
//! 1. A new revision in the spec begins a rollout (with no replica healthy to protect, the new
//!    generation simply replaces the old); a revision that failed is not retried, a newer one
//!    may be rolled out, and a rollout under way finishes or rolls back before the next.
//! 2. [`crate::decide::rollout::step`] runs on what the nodes report. Its starts go to the
//!    node holding the replica, so old and new share a node and the validated node set never
//!    changes during a rollout; its stops go to every node reporting that generation.
//! 3. Availability (deploys, moves, repeats) works on the generation that serves each replica
//!    ([`RolloutState::serving`]).
//! 4. Workloads of the job under a tag this oracle knows but no longer wants are stopped; a tag
//!    it never knew belongs to a rollout another oracle began first and is left alone.
//!
//! An oracle with no record for a job (new, or its state lost) adopts the spec as running when
//! the nodes of the job's validated set report nothing else of it; while they report other
//! tags it keeps its hands off the job, since it could not restore a revision it never saw.
//! Only the validated set counts here: any node can claim to run anything, and a stranger's
//! claim must not take a job away from every oracle.
//!
//! New replicas need room beside the old ones on the same node. A fixed `hostPort` is shared
//! by the generations of a job: the node keeps the port open and hands it to the new replica
//! when the old one stops (see the node agent's `ports` module).

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, keccak256};
use r1_protocol::messages::{DeployCommand, StopCommand, WorkloadId, WorkloadReport, WorkloadSpec};
use serde::{Deserialize, Serialize};

use crate::decide::availability_plan::{DEFAULT_CRASH_LOOP_RESTARTS, ReplicaHealth};
use crate::decide::liveness::{BrokerLink, NodeLiveness};
use crate::decide::rollout::{
    self, RolloutAction, RolloutError, RolloutFailure, RolloutObservations, RolloutState,
};
use crate::oracle::runtime::{Oracle, Pass};
use crate::oracle::state::Placement;
use crate::oracle::status::RolloutView;
use crate::oracle::workload::WorkloadTemplate;

/// Node-facing replica ids of one generation are `tag × SLOT_STRIDE + replica index`.
pub const SLOT_STRIDE: u32 = 10_000;

/// The largest tag whose ids all fit in a `u32`.
const MAX_TAG: u32 = (u32::MAX - (SLOT_STRIDE - 1)) / SLOT_STRIDE;

/// How many retired tags a job remembers, to stop what is left of them.
const RETIRED_KEPT: usize = 8;

/// The node-facing replica id of replica `index` of the generation tagged `tag`.
pub const fn workload_replica(tag: u32, index: u32) -> u32 {
    tag * SLOT_STRIDE + index
}

/// The tag and replica index of a node-facing replica id.
pub const fn split(replica: u32) -> (u32, u32) {
    (replica / SLOT_STRIDE, replica % SLOT_STRIDE)
}

/// The tag of `revision`, hashed again while it is one of `taken`.
fn tag_of(revision: &str, taken: &[u32]) -> u32 {
    let mut input = revision.as_bytes().to_vec();
    loop {
        let hash = keccak256(&input);
        let word = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
        let tag = word % MAX_TAG + 1;
        if !taken.contains(&tag) {
            return tag;
        }
        input.extend_from_slice(&tag.to_be_bytes());
    }
}

/// One generation of a job: a revision, its tag and what its replicas run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// The revision (see [`WorkloadTemplate::revision`]).
    pub revision: String,
    /// Its tag in node-facing replica ids.
    pub tag: u32,
    /// What each replica runs; the id is filled in by [`Generation::workload`].
    pub workload: WorkloadSpec,
}

impl Generation {
    fn new(template: &WorkloadTemplate, taken: &[u32]) -> Self {
        Self {
            revision: template.revision().to_owned(),
            tag: tag_of(template.revision(), taken),
            workload: template.spec().clone(),
        }
    }

    /// The node-facing id of replica `index` of on-chain job `job`.
    pub const fn id(&self, job: u64, index: u32) -> WorkloadId {
        WorkloadId {
            job,
            replica: workload_replica(self.tag, index),
        }
    }

    /// The deploy of replica `index` of on-chain job `job`.
    pub fn workload(&self, job: u64, index: u32) -> WorkloadSpec {
        WorkloadSpec {
            id: self.id(job, index),
            ..self.workload.clone()
        }
    }

    /// Whether nodes probe this generation's health (HTTP, TCP or exec).
    fn probed(&self) -> bool {
        self.workload.health.is_some()
    }

    /// The health of a replica of this generation as its node reports it: healthy only when
    /// running at this revision and, when probed, passing the probe.
    pub fn health(&self, report: &WorkloadReport) -> ReplicaHealth {
        let health = ReplicaHealth::from_report(Some(&report.state), DEFAULT_CRASH_LOOP_RESTARTS);
        let passing = match report.healthy {
            Some(healthy) => healthy,
            None => !self.probed(),
        };
        if health == ReplicaHealth::Healthy && (report.revision != self.revision || !passing) {
            ReplicaHealth::Starting
        } else {
            health
        }
    }
}

/// A start or stop of the rollout with the generation it names, resolved before the record
/// drops that generation (the last stop of a rollout names one the finished state no longer
/// keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutCommand {
    /// What to do.
    pub action: RolloutAction,
    /// The generation it starts or stops.
    pub generation: Generation,
}

/// What a reported workload of the job is to this oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The generation serving its replica, which availability keeps.
    Serving,
    /// A generation the rollout itself starts or stops on this replica.
    InFlight,
    /// A generation this oracle knew and no longer wants: to be stopped.
    Unwanted,
    /// A tag this oracle never knew: left to the oracle that started it.
    Foreign,
}

/// A job's rollout as this oracle keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRollout {
    /// Where the rollout stands.
    pub state: RolloutState,
    /// Every generation the state names.
    pub generations: BTreeMap<u64, Generation>,
    /// Tags of generations no longer named, newest last.
    #[serde(default)]
    pub retired: Vec<u32>,
}

impl JobRollout {
    /// A job running `template` as its first generation.
    pub fn adopt(template: &WorkloadTemplate) -> Self {
        Self {
            state: RolloutState::Stable { generation: 1 },
            generations: BTreeMap::from([(1, Generation::new(template, &[]))]),
            retired: Vec::new(),
        }
    }

    /// Generation `generation`, if the state names it.
    pub fn generation(&self, generation: u64) -> Option<&Generation> {
        self.generations.get(&generation)
    }

    /// The generation serving replica `index`.
    pub fn serving(&self, index: u32) -> Option<&Generation> {
        self.generation(self.state.serving(index))
    }

    fn tags_in_use(&self) -> Vec<u32> {
        self.generations.values().map(|g| g.tag).collect()
    }

    /// Asks for `template` to run on `replicas` replicas; `replicas` is 0 when nothing healthy
    /// needs protecting, and the template then replaces the running generation at once.
    pub fn target(
        &mut self,
        template: &WorkloadTemplate,
        replicas: u32,
        now_ms: u64,
    ) -> Result<Vec<RolloutCommand>, RolloutError> {
        let known = self.state.generations().into_iter().find(|g| {
            self.generation(*g).map(|x| x.revision.as_str()) == Some(template.revision())
        });
        let (target, new) = match known {
            Some(generation) => (generation, None),
            None => {
                let next = self.generations.keys().max().copied().unwrap_or(0) + 1;
                (next, Some(Generation::new(template, &self.tags_in_use())))
            }
        };
        let (state, actions) = rollout::begin(&self.state, target, replicas, now_ms)?;
        if let Some(generation) = new {
            self.generations.insert(target, generation);
        }
        self.state = state;
        let commands = self.resolve(actions);
        self.prune();
        Ok(commands)
    }

    /// Advances the rollout on what the nodes report (see [`rollout::step`]).
    pub fn step(
        &mut self,
        observed: &RolloutObservations,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Vec<RolloutCommand> {
        let (state, actions) = rollout::step(&self.state, observed, now_ms, deadline_ms);
        self.state = state;
        let commands = self.resolve(actions);
        self.prune();
        commands
    }

    fn resolve(&self, actions: Vec<RolloutAction>) -> Vec<RolloutCommand> {
        actions
            .into_iter()
            .filter_map(|action| {
                let (RolloutAction::Start { generation, .. }
                | RolloutAction::Stop { generation, .. }) = action;
                Some(RolloutCommand {
                    action,
                    generation: self.generation(generation)?.clone(),
                })
            })
            .collect()
    }

    /// Drops the generations the state no longer names, remembering their tags.
    fn prune(&mut self) {
        let named = self.state.generations();
        let (kept, dropped): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut self.generations)
                .into_iter()
                .partition(|(g, _)| named.contains(g));
        self.generations = kept;
        let in_use = self.tags_in_use();
        for generation in dropped.values() {
            self.retired.retain(|t| *t != generation.tag);
            self.retired.push(generation.tag);
        }
        self.retired.retain(|t| !in_use.contains(t));
        let excess = self.retired.len().saturating_sub(RETIRED_KEPT);
        self.retired.drain(..excess);
    }

    /// The health of each (replica, generation) in `reports` (node-facing replica id and report).
    pub fn observations<'a>(
        &self,
        reports: impl IntoIterator<Item = &'a WorkloadReport>,
    ) -> RolloutObservations {
        let mut observed = RolloutObservations::default();
        for report in reports {
            let (tag, index) = split(report.id.replica);
            for (number, generation) in &self.generations {
                if generation.tag != tag || generation.revision != report.revision {
                    continue;
                }
                let health = generation.health(report);
                observed
                    .0
                    .entry((index, *number))
                    .and_modify(|h| *h = (*h).min(health))
                    .or_insert(health);
            }
        }
        observed
    }

    /// What the workload with node-facing replica id `replica` is to this oracle.
    pub fn role(&self, replica: u32) -> Role {
        let (tag, index) = split(replica);
        let tag_of = |generation: u64| self.generation(generation).map(|g| g.tag);
        if tag_of(self.state.serving(index)) == Some(tag) {
            Role::Serving
        } else if self.state.in_flight(index).and_then(tag_of) == Some(tag) {
            Role::InFlight
        } else if self.tags_in_use().contains(&tag) || self.retired.contains(&tag) {
            Role::Unwanted
        } else {
            Role::Foreign
        }
    }

    /// The rollout for the job's status.
    pub fn view(&self) -> RolloutView {
        let revision = |generation: u64| {
            self.generation(generation)
                .map_or_else(|| "unknown".to_owned(), |g| g.revision.clone())
        };
        match self.state {
            RolloutState::Stable { generation } => RolloutView::Complete {
                revision: revision(generation),
            },
            RolloutState::Progressing {
                from,
                to,
                replicas,
                replica,
                ..
            } => RolloutView::Progressing {
                replica,
                replicas,
                from: revision(from),
                to: revision(to),
            },
            RolloutState::RollingBack { from, failure, .. } => RolloutView::Failed {
                message: format!(
                    "{}; rolling back to revision {}",
                    self.failure_text(&failure),
                    revision(from)
                ),
            },
            RolloutState::RolledBack {
                generation,
                failure,
            } => RolloutView::Failed {
                message: format!(
                    "{}; running revision {} again",
                    self.failure_text(&failure),
                    revision(generation)
                ),
            },
        }
    }

    fn failure_text(&self, failure: &RolloutFailure) -> String {
        let revision = self
            .generation(failure.generation)
            .map_or("unknown", |g| g.revision.as_str());
        format!(
            "replica {} of revision {revision} {}",
            failure.replica, failure.cause
        )
    }
}

/// One workload of a job as a node reports it, with this oracle's view of the node.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The node.
    pub node: Address,
    /// What it reports.
    pub report: WorkloadReport,
    /// This oracle's view of the node.
    pub liveness: NodeLiveness,
}

impl Seen {
    /// Whether the report is current enough to act on.
    pub fn current(&self) -> bool {
        self.liveness.may_keep_workloads() && self.liveness != NodeLiveness::Unknown
    }
}

impl Oracle {
    /// The rollout record of `job`, adopting `template` when there is none and nothing else
    /// of the job runs; `None` keeps this oracle's hands off the job this pass.
    pub(crate) fn rollout_record(
        &self,
        job: u64,
        template: &WorkloadTemplate,
        seen: &[Seen],
        roster: &BTreeSet<Address>,
    ) -> Option<JobRollout> {
        match self.state.rollout(job) {
            Ok(Some(record)) => Some(record),
            Ok(None) => {
                let adopted = JobRollout::adopt(template);
                let foreign = seen.iter().any(|s| {
                    roster.contains(&s.node) && adopted.role(s.report.id.replica) == Role::Foreign
                });
                if foreign {
                    tracing::info!(
                        job,
                        "nodes run revisions this oracle never saw; leaving the job to the others"
                    );
                    return None;
                }
                if let Err(e) = self.state.record_rollout(job, &adopted) {
                    tracing::warn!(job, error = %e, "cannot record the job's rollout");
                    return None;
                }
                Some(adopted)
            }
            Err(e) => {
                tracing::warn!(job, error = %e, "cannot read the job's rollout");
                None
            }
        }
    }

    /// Begins a rollout to `template` when it is new and advances the one under way; records
    /// the result and returns the starts and stops to send. Nothing moves while this oracle's
    /// broker link is down (the reports are then stale).
    pub(crate) fn advance_rollout(
        &self,
        job: u64,
        record: &mut JobRollout,
        template: &WorkloadTemplate,
        replicas: u32,
        seen: &[Seen],
        pass: &Pass,
    ) -> Vec<RolloutCommand> {
        if !matches!(pass.link, BrokerLink::Connected { .. }) {
            return Vec::new();
        }
        let before = record.clone();
        let current: Vec<&WorkloadReport> = seen
            .iter()
            .filter(|s| s.current())
            .map(|s| &s.report)
            .collect();
        let observed = record.observations(current.iter().copied());
        let protect = (0..replicas).any(|index| {
            observed.health(index, record.state.serving(index)) == ReplicaHealth::Healthy
        });
        let mut commands =
            match record.target(template, if protect { replicas } else { 0 }, pass.now_ms) {
                Ok(commands) => commands,
                Err(e) => {
                    tracing::debug!(job, error = %e, "the new revision waits");
                    Vec::new()
                }
            };
        // A new generation is observed too, in case another oracle started it already.
        let observed = record.observations(current.iter().copied());
        let deadline_ms = self.config.loops.rollout_deadline_seconds * 1000;
        for command in record.step(&observed, pass.now_ms, deadline_ms) {
            if !commands.contains(&command) {
                commands.push(command);
            }
        }
        if *record != before {
            tracing::info!(job, from = ?before.state, to = ?record.state, "rollout moved");
            if let Some(failure) = record.state.failure() {
                tracing::warn!(job, %failure, "rollout failed; rolling back");
            }
            if let Err(e) = self.state.record_rollout(job, record) {
                tracing::warn!(job, error = %e, "cannot record the job's rollout");
            }
        }
        commands
    }

    /// Sends the rollout's starts (to `holders[index]`, the node holding the replica) and
    /// stops (to every node reporting that generation of the replica, and its holder).
    pub(crate) fn send_rollout(
        &self,
        job: u64,
        record: &JobRollout,
        commands: &[RolloutCommand],
        holders: &BTreeMap<u32, Address>,
        seen: &[Seen],
        now_ms: u64,
    ) {
        for RolloutCommand { action, generation } in commands {
            match *action {
                RolloutAction::Start {
                    replica,
                    generation: number,
                } => {
                    let Some(node) = holders.get(&replica) else {
                        tracing::debug!(job, replica, "no live node holds the replica yet");
                        continue;
                    };
                    if record.state.serving(replica) == number {
                        // A rollback restarts the old replica: its start grace runs again.
                        let placement = Placement {
                            job,
                            replica,
                            node: *node,
                            since_ms: now_ms,
                        };
                        if let Err(e) = self.state.replace(&placement) {
                            tracing::warn!(job, replica, error = %e, "cannot record placement");
                        }
                    }
                    tracing::debug!(job, replica, %node, revision = generation.revision, "rollout starts a replica");
                    self.send_deploy(*node, generation.workload(job, replica));
                }
                RolloutAction::Stop { replica, .. } => {
                    let id = generation.id(job, replica);
                    let mut nodes: Vec<Address> = seen
                        .iter()
                        .filter(|s| s.report.id == id)
                        .map(|s| s.node)
                        .collect();
                    nodes.extend(holders.get(&replica));
                    nodes.sort();
                    nodes.dedup();
                    for node in nodes {
                        tracing::debug!(job, replica, %node, revision = generation.revision, "rollout stops a replica");
                        self.send_stop(node, id, "rollout");
                    }
                }
            }
        }
    }

    /// Signs and sends the deploy of `workload` to `node`.
    pub(crate) fn send_deploy(&self, node: Address, workload: WorkloadSpec) {
        let command = DeployCommand {
            target: node,
            workload,
        };
        if self.send(node, &command) {
            self.metrics.command("deploy");
        }
    }

    /// Signs and sends the stop of workload `id` to `node`.
    pub(crate) fn send_stop(&self, node: Address, id: WorkloadId, reason: &str) {
        let command = StopCommand {
            target: node,
            workload: id,
            reason: reason.into(),
        };
        if self.send(node, &command) {
            self.metrics.command("stop");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;
    use r1_crds::manifest::{Manifest, parse_value};
    use r1_protocol::messages::WorkloadState;

    use crate::decide::rollout::Cause;
    use crate::oracle::state::OracleState;

    fn template(image: &str) -> WorkloadTemplate {
        let text = format!(
            "apiVersion: deeploy.ratio1.ai/v1alpha1\nkind: DeeployJob\nmetadata: {{name: j}}\nspec:\n  projectRef: {{name: p}}\n  escrowRef: {{name: e}}\n  image: {image}\n  resources: {{cpu: 250m, memory: 128Mi}}\n  ports: [{{containerPort: 8080}}]\n  durationEpochs: 30\n  healthCheck: {{tcp: {{port: 8080}}}}\n"
        );
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        match parse_value(value).unwrap() {
            Manifest::Job(job) => WorkloadTemplate::of(&job.spec).unwrap(),
            other => panic!("not a job: {other:?}"),
        }
    }

    fn report(g: &Generation, index: u32, healthy: Option<bool>) -> WorkloadReport {
        WorkloadReport {
            id: g.id(7, index),
            revision: g.revision.clone(),
            state: WorkloadState::Running,
            image_digest: None,
            ports: vec![],
            healthy,
        }
    }

    fn actions_of(commands: Vec<RolloutCommand>) -> Vec<RolloutAction> {
        commands.into_iter().map(|c| c.action).collect()
    }

    #[test]
    fn ids_keep_tag_and_index_apart() {
        assert_eq!(workload_replica(471, 1), 4_710_001);
        assert_eq!(split(4_710_001), (471, 1));
        assert_eq!(
            split(workload_replica(MAX_TAG, SLOT_STRIDE - 1)),
            (MAX_TAG, 9_999)
        );
        let tag = tag_of("abc", &[]);
        assert!((1..=MAX_TAG).contains(&tag));
        assert_eq!(tag, tag_of("abc", &[]), "a function of the revision");
        let other = tag_of("abc", &[tag]);
        assert_ne!(other, tag);
        assert_eq!(other, tag_of("abc", &[tag]));
    }

    #[test]
    fn health_needs_the_probe_to_pass() {
        let g = Generation::new(&template("localhost/x:1"), &[]);
        assert_eq!(g.health(&report(&g, 0, None)), ReplicaHealth::Starting);
        assert_eq!(
            g.health(&report(&g, 0, Some(false))),
            ReplicaHealth::Starting
        );
        assert_eq!(g.health(&report(&g, 0, Some(true))), ReplicaHealth::Healthy);
        let mut stale = report(&g, 0, Some(true));
        stale.revision = "0000".into();
        assert_eq!(g.health(&stale), ReplicaHealth::Starting);
    }

    #[test]
    fn a_new_revision_gets_its_own_ids_and_the_old_one_is_retired() {
        let old = template("localhost/x:1");
        let new = template("localhost/x:2");
        let mut record = JobRollout::adopt(&old);
        let first = record.generation(1).unwrap().clone();
        assert_eq!(record.target(&old, 2, 0), Ok(vec![]));
        let actions = actions_of(record.target(&new, 2, 10).unwrap());
        assert_eq!(
            actions,
            vec![RolloutAction::Start {
                replica: 0,
                generation: 2
            }]
        );
        let second = record.generation(2).unwrap().clone();
        assert_ne!(first.tag, second.tag);
        assert_eq!(
            record.role(first.id(7, 0).replica),
            Role::Serving,
            "the old replica serves while the new one starts"
        );
        assert_eq!(record.role(second.id(7, 0).replica), Role::InFlight);
        assert_eq!(record.role(second.id(7, 1).replica), Role::Unwanted);
        assert_eq!(
            record.role(workload_replica(first.tag + 1, 0)),
            Role::Foreign
        );

        let reports = [
            report(&first, 0, Some(true)),
            report(&first, 1, Some(true)),
            report(&second, 0, Some(true)),
        ];
        let actions = actions_of(record.step(&record.observations(&reports), 20, 1000));
        assert_eq!(
            actions,
            vec![
                RolloutAction::Stop {
                    replica: 0,
                    generation: 1
                },
                RolloutAction::Start {
                    replica: 1,
                    generation: 2
                }
            ]
        );
        assert_eq!(record.role(first.id(7, 0).replica), Role::Unwanted);
        let reports = [
            report(&second, 0, Some(true)),
            report(&second, 1, Some(true)),
        ];
        let last = record.step(&record.observations(&reports), 30, 1000);
        assert_eq!(record.state, RolloutState::Stable { generation: 2 });
        assert_eq!(
            last,
            vec![RolloutCommand {
                action: RolloutAction::Stop {
                    replica: 1,
                    generation: 1
                },
                generation: first.clone(),
            }],
            "the last stop names the old generation, which the record no longer keeps"
        );
        assert_eq!(record.generations.len(), 1);
        assert_eq!(record.retired, vec![first.tag]);
        assert_eq!(record.role(first.id(7, 1).replica), Role::Unwanted);
        assert_eq!(
            record.view(),
            RolloutView::Complete {
                revision: second.revision.clone()
            }
        );
        // Back to the first spec: a new generation under the first tag again.
        record.target(&old, 2, 40).unwrap();
        assert_eq!(record.generation(3).map(|g| g.tag), Some(first.tag));
        assert!(record.retired.is_empty(), "a tag in use is not retired");
    }

    #[test]
    fn a_failed_revision_is_described_and_not_retried() {
        let old = template("localhost/x:1");
        let bad = template("localhost/x:bad");
        let mut record = JobRollout::adopt(&old);
        record.target(&bad, 1, 0).unwrap();
        let first = record.generation(1).unwrap().clone();
        let reports = [report(&first, 0, Some(true))];
        let actions = actions_of(record.step(&record.observations(&reports), 5_001, 5_000));
        assert_eq!(
            actions,
            vec![RolloutAction::Stop {
                replica: 0,
                generation: 2
            }]
        );
        record.step(&record.observations(&reports), 5_500, 5_000);
        assert!(matches!(record.state, RolloutState::RolledBack { .. }));
        let failure = record.state.failure().unwrap();
        assert_eq!(failure.cause, Cause::NeverHealthy { deadline_s: 5 });
        let RolloutView::Failed { message } = record.view() else {
            panic!("not failed: {:?}", record.view());
        };
        assert_eq!(
            message,
            format!(
                "replica 0 of revision {} never became healthy within 5 s; running revision {} again",
                bad.revision(),
                old.revision()
            )
        );
        assert_eq!(record.target(&bad, 1, 6_000), Ok(vec![]), "not retried");
        assert!(matches!(record.state, RolloutState::RolledBack { .. }));
    }

    #[test]
    fn the_record_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = JobRollout::adopt(&template("localhost/x:1"));
        record.target(&template("localhost/x:2"), 2, 9).unwrap();
        {
            let state = OracleState::open(dir.path()).unwrap();
            assert_eq!(state.rollout(4).unwrap(), None);
            state.record_rollout(4, &record).unwrap();
        }
        let state = OracleState::open(dir.path()).unwrap();
        assert_eq!(state.rollout(4).unwrap(), Some(record));
    }
}
