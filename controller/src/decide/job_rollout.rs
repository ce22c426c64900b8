//! A job's rollout record: the generations of its workload (revision, tag, what to run) tied to
//! the rollout state machine of [`crate::decide::rollout`], and what each reported workload
//! of the job is to this oracle.
//!
//! # One workload id per generation
//!
//! A node keeps one workload per [`WorkloadId`] and replaces it in place when a deploy names
//! the same id with another revision (node agent, `commands.rs`). A rollout needs the old and
//! the new replica side by side, so each generation of a replica gets its own id (see
//! [`WorkloadId::of`]), where the tag (1..=[`WorkloadId::MAX_TAG`]) comes from the revision
//! hash. Like the revision, the tag is a function of the spec alone, so every oracle —
//! whatever sequence of specs it happened to see — sends the same id for the same replica and
//! revision, and a rollout started by one oracle is recognised by the others. When a new
//! revision's tag equals one the job already uses, it is hashed again with that tag until it
//! differs, which every oracle that saw the same running revision repeats.
//!
//! # Restart-safe record
//!
//! Each oracle keeps a [`JobRollout`] per job in its state database: the [`RolloutState`] and
//! the generations it names (revision, tag and the workload to deploy, since the stored spec
//! only describes the newest), so a restarted oracle carries a rollout or a rollback on and can
//! restore a revision the spec no longer describes. Generation numbers are this oracle's own;
//! only tags and revisions reach the nodes.
//!
//! An oracle with no record for a job (new, or its state lost) adopts the spec as running when
//! the nodes of the job's validated set report nothing else of it ([`JobRollout::adopt_unless_foreign`]);
//! while they report other tags it keeps its hands off the job, since it could not restore a
//! revision it never saw. Only the validated set counts here: any node can claim to run
//! anything, and a stranger's claim must not take a job away from every oracle.
//!
//! New replicas need room beside the old ones on the same node. A fixed `hostPort` is shared
//! by the generations of a job: the node keeps the port open and hands it to the new replica
//! when the old one stops (see the node agent's `ports` module).

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, keccak256};
use r1_protocol::messages::{WorkloadId, WorkloadReport, WorkloadSpec};
use serde::{Deserialize, Serialize};

use crate::decide::availability_plan::{DEFAULT_CRASH_LOOP_RESTARTS, ReplicaHealth};
use crate::decide::job_status::RolloutView;
use crate::decide::liveness::NodeLiveness;
use crate::decide::rollout::{
    self, RolloutAction, RolloutError, RolloutFailure, RolloutObservations, RolloutState,
};
use crate::decide::workload::{SealedInputs, WorkloadTemplate};

/// How many retired tags a job remembers, to stop what is left of them.
const RETIRED_KEPT: usize = 8;

/// The tag of `revision`, hashed again while it is one of `taken`.
fn tag_of(revision: &str, taken: &[u32]) -> u32 {
    let mut input = revision.as_bytes().to_vec();
    loop {
        let hash = keccak256(&input);
        let word = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
        let tag = word % WorkloadId::MAX_TAG + 1;
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
    /// The secret values its replicas get, as the CSP sealed them to the oracles.
    #[serde(default, skip_serializing_if = "SealedInputs::is_empty")]
    pub sealed: SealedInputs,
}

impl Generation {
    fn new(template: &WorkloadTemplate, taken: &[u32]) -> Self {
        Self {
            revision: template.revision().to_owned(),
            tag: tag_of(template.revision(), taken),
            workload: template.spec().clone(),
            sealed: template.sealed().clone(),
        }
    }

    /// The node-facing id of replica `index` of on-chain job `job`.
    pub const fn id(&self, job: u64, index: u32) -> WorkloadId {
        WorkloadId::of(job, self.tag, index)
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

    /// Asks for `template` to run on `replicas` replicas; `replicas` is 0 when no replica
    /// serves or comes up, and the template then replaces the running generation at once.
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
            let (tag, index) = (report.id.tag(), report.id.index());
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
    pub fn role(&self, id: WorkloadId) -> Role {
        let (tag, index) = (id.tag(), id.index());
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

    /// The record of a job this oracle has none for: `template` adopted as running, unless a
    /// node of the validated set `roster` reports a tag the adopted record would not know
    /// (another oracle's rollout, which this one could not restore): then `None`, hands off.
    pub fn adopt_unless_foreign(
        template: &WorkloadTemplate,
        seen: &[Seen],
        roster: &BTreeSet<Address>,
    ) -> Option<Self> {
        let adopted = Self::adopt(template);
        let foreign = seen
            .iter()
            .any(|s| roster.contains(&s.node) && adopted.role(s.report.id) == Role::Foreign);
        (!foreign).then_some(adopted)
    }

    /// One pass of the rollout: begins one to `template` when its revision is new (protecting
    /// the `replicas` replicas when one of them serves or is coming up, its first health check
    /// still pending, say; replacing at once when none can serve: missing, crash-looping or
    /// failed) and advances the one under way on the `current` reports; returns the starts and
    /// stops.
    pub fn advance(
        &mut self,
        template: &WorkloadTemplate,
        replicas: u32,
        current: &[&WorkloadReport],
        now_ms: u64,
        deadline_ms: u64,
    ) -> Vec<RolloutCommand> {
        let observed = self.observations(current.iter().copied());
        let protect = (0..replicas).any(|index| {
            matches!(
                observed.health(index, self.state.serving(index)),
                ReplicaHealth::Healthy | ReplicaHealth::Starting
            )
        });
        // A revision that waits (one failed, or a rollout is under way) starts nothing yet.
        let mut commands = self
            .target(template, if protect { replicas } else { 0 }, now_ms)
            .unwrap_or_default();
        // A new generation is observed too, in case another oracle started it already.
        let observed = self.observations(current.iter().copied());
        for command in self.step(&observed, now_ms, deadline_ms) {
            if !commands.contains(&command) {
                commands.push(command);
            }
        }
        commands
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
pub struct Seen {
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
#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;
    use r1_protocol::messages::WorkloadState;

    use crate::decide::rollout::Cause;
    use crate::decide::workload::fixtures::template;

    fn report(g: &Generation, index: u32, healthy: Option<bool>) -> WorkloadReport {
        WorkloadReport {
            id: g.id(7, index),
            revision: g.revision.clone(),
            state: WorkloadState::Running,
            image_digest: None,
            ports: vec![],
            healthy,
            tunnel: None,
        }
    }

    fn actions_of(commands: Vec<RolloutCommand>) -> Vec<RolloutAction> {
        commands.into_iter().map(|c| c.action).collect()
    }

    #[test]
    fn tags_are_a_function_of_the_revision_and_avoid_taken_ones() {
        let tag = tag_of("abc", &[]);
        assert!((1..=WorkloadId::MAX_TAG).contains(&tag));
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
            record.role(first.id(7, 0)),
            Role::Serving,
            "the old replica serves while the new one starts"
        );
        assert_eq!(record.role(second.id(7, 0)), Role::InFlight);
        assert_eq!(record.role(second.id(7, 1)), Role::Unwanted);
        assert_eq!(
            record.role(WorkloadId::of(7, first.tag + 1, 0)),
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
        assert_eq!(record.role(first.id(7, 0)), Role::Unwanted);
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
        assert_eq!(record.role(first.id(7, 1)), Role::Unwanted);
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

    fn seen(node: u8, report: WorkloadReport) -> Seen {
        Seen {
            node: Address::repeat_byte(node),
            report,
            liveness: NodeLiveness::Alive,
        }
    }

    #[test]
    fn only_the_validated_set_can_keep_an_oracle_off_a_job() {
        let running = template("localhost/x:1");
        let theirs = Generation::new(&template("localhost/x:2"), &[]);
        let stranger = [seen(9, report(&theirs, 0, Some(true)))];
        let roster = BTreeSet::from([Address::repeat_byte(1)]);
        assert_eq!(
            JobRollout::adopt_unless_foreign(&running, &stranger, &roster),
            Some(JobRollout::adopt(&running)),
            "a node outside the validated set claims a foreign tag: adopt anyway"
        );
        let member = [seen(1, report(&theirs, 0, Some(true)))];
        assert_eq!(
            JobRollout::adopt_unless_foreign(&running, &member, &roster),
            None
        );
        let ours = JobRollout::adopt(&running);
        let own = [seen(1, report(ours.generation(1).unwrap(), 0, Some(true)))];
        assert_eq!(
            JobRollout::adopt_unless_foreign(&running, &own, &roster),
            Some(ours)
        );
    }

    #[test]
    fn advance_replaces_at_once_without_a_healthy_replica_and_rolls_with_one() {
        let old = template("localhost/x:1");
        let new = template("localhost/x:2");
        let mut unprotected = JobRollout::adopt(&old);
        assert_eq!(unprotected.advance(&new, 1, &[], 10, 1000), vec![]);
        assert_eq!(unprotected.state, RolloutState::Stable { generation: 2 });

        // A replica coming up (its health check not passed yet) is protected: replacing it at
        // once would close its ports until the new one runs (a fixed host port e2e caught it).
        let mut coming_up = JobRollout::adopt(&old);
        let first = coming_up.generation(1).unwrap().clone();
        let starting = report(&first, 0, Some(false));
        coming_up.advance(&new, 1, &[&starting], 10, 1000);
        assert!(matches!(coming_up.state, RolloutState::Progressing { .. }));
        let crashed = WorkloadReport {
            state: WorkloadState::Exited { code: 1 },
            ..starting.clone()
        };
        let mut broken = JobRollout::adopt(&old);
        broken.advance(&new, 1, &[&crashed], 10, 1000);
        assert_eq!(broken.state, RolloutState::Stable { generation: 2 });

        let mut protected = JobRollout::adopt(&old);
        let first = protected.generation(1).unwrap().clone();
        let healthy = report(&first, 0, Some(true));
        let actions = actions_of(protected.advance(&new, 1, &[&healthy], 10, 1000));
        assert_eq!(
            actions,
            vec![RolloutAction::Start {
                replica: 0,
                generation: 2
            }]
        );
        assert!(matches!(protected.state, RolloutState::Progressing { .. }));
        assert_eq!(
            actions_of(protected.advance(&new, 1, &[&healthy], 20, 1000)),
            actions,
            "the same start again while the new replica comes up (a lost start is retried)"
        );
        assert!(matches!(protected.state, RolloutState::Progressing { .. }));
    }
}
