//! One pass of the availability and validation loops over one open job, as a pure function of
//! what the oracle observed: what the nodes report ([`Seen`]), where this oracle placed
//! replicas ([`Placement`]), the job's rollout record and the rollout's commands of this pass.
//! [`plan`] returns every effect to carry out in order (placements to record, deploys and
//! stops to send), the job's status facts, and the node-set vote, if one is due.
//!
//! Each pass:
//! 1. *Holders*: every node reporting the generation that serves a replica, and every
//!    placement no node reports yet. A replica another oracle placed starts its grace on first
//!    sight here.
//! 2. The rollout's starts go to the live node holding the replica (the healthiest holder
//!    first), its stops to every node reporting that generation; workloads of a generation the
//!    record no longer wants are stopped.
//! 3. [`crate::decide::availability_plan`] keeps the serving generation of each replica
//!    running: deploys, stops, moves and forgotten holders on lost nodes.
//! 4. A deploy may have been lost (broker down, node restarting): it is repeated for every
//!    live holder not reporting the serving revision yet. Nodes treat a repeat as a no-op.
//! 5. *Validation*: the set of nodes running one healthy, current replica each is voted once
//!    it is distinct, differs from the validated set, has held still for the settle time (so
//!    that honest oracles propose the same set), and is complete — or, for a job never
//!    validated, is all there can be: the missing replicas have no node to go to. Then the
//!    nodes that serve are paid, and a job that serves counts as started, so its CSP cannot
//!    redeem it as never started.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::Address;
use r1_crds::job::ReplicaAssignment;
use r1_protocol::messages::{WorkloadId, WorkloadReport, WorkloadSpec, WorkloadState};

use crate::decide::availability_plan::{
    self, Action, AvailabilityInput, DEFAULT_CRASH_LOOP_RESTARTS, Holder, ReplicaHealth,
};
use crate::decide::chain_job::ChainJob;
use crate::decide::job_rollout::{JobRollout, Role, RolloutCommand, Seen};
use crate::decide::liveness::{LivenessView, NodeLiveness};
use crate::decide::placement::{Candidates, Demand};
use crate::decide::rollout::RolloutAction;

/// Where this oracle placed one replica, and since when (the start grace runs from there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// On-chain job id.
    pub job: u64,
    /// Replica index.
    pub replica: u32,
    /// The node.
    pub node: Address,
    /// When it was placed there (unix ms).
    pub since_ms: u64,
}

/// Everything one pass knows about one open job.
#[derive(Debug, Clone, Copy)]
pub struct JobView<'a> {
    /// The job on chain.
    pub job: &'a ChainJob,
    /// Replicas wanted: the spec's, at most what the job pays for.
    pub desired: u32,
    /// What each replica needs.
    pub demand: &'a Demand,
    /// Labels a node must carry.
    pub node_selector: &'a BTreeMap<String, String>,
    /// What the nodes report of the job.
    pub seen: &'a [Seen],
    /// Where this oracle placed the job's replicas.
    pub placements: &'a [Placement],
    /// Every node's liveness this pass.
    pub liveness: &'a LivenessView,
    /// The job's rollout record, advanced this pass.
    pub rollout: &'a JobRollout,
    /// The rollout's starts and stops of this pass.
    pub rollout_commands: &'a [RolloutCommand],
    /// Every node this oracle knows, for new placements.
    pub candidates: &'a Candidates,
    /// The job's paid epochs are over: nothing is deployed, moved or voted any more.
    pub budget_spent: bool,
    /// The chain was read this pass; no vote on an older view.
    pub chain_fresh: bool,
    /// Now, unix ms.
    pub now_ms: u64,
    /// How long a replica may stay starting or unreported before it counts as failed.
    pub start_grace_ms: u64,
    /// How long the running set must hold still before it is voted, unless every replica of it
    /// passed the job's own health check (which says more than time does).
    pub settle_ms: u64,
    /// The running set of the previous pass and since when it has been so.
    pub stable: Option<&'a (BTreeSet<Address>, u64)>,
}

/// One thing the oracle does for the job, in the order the pass lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Record `placement` unless the replica is placed there already (a replica another oracle
    /// placed, seen here first).
    Remember(Placement),
    /// Record `placement` with its own time, so the start grace runs again (a rollback
    /// restarting the old replica on its node).
    Restart(Placement),
    /// Send `workload` to `node`, after recording `place` when given (as [`Effect::Remember`]
    /// does): when that placement cannot be recorded, nothing is sent.
    Deploy {
        /// The node.
        node: Address,
        /// What it runs.
        workload: WorkloadSpec,
        /// The placement this deploy makes.
        place: Option<Placement>,
    },
    /// Send `node` the stop of workload `id`.
    Stop {
        /// The node.
        node: Address,
        /// The workload.
        id: WorkloadId,
        /// Why, for the node's log.
        reason: String,
    },
    /// Drop this oracle's placement of `replica` on `node`.
    Forget {
        /// Replica index.
        replica: u32,
        /// The node.
        node: Address,
    },
}

/// What a job runs, for its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSummary {
    /// Replica by replica, where it runs or is being started.
    pub assignments: Vec<ReplicaAssignment>,
    /// Replicas running healthy at the current revision.
    pub healthy: u32,
    /// The nodes running them are exactly the set validated on chain.
    pub validated: bool,
}

/// The outcome of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPass {
    /// What to do, in order.
    pub effects: Vec<Effect>,
    /// What the job runs.
    pub summary: JobSummary,
    /// Why the first unplaceable replica cannot be placed.
    pub unplaceable: Option<String>,
    /// The running set and since when it has been so, for the next pass.
    pub stable: (BTreeSet<Address>, u64),
    /// The node set to vote, when one is due.
    pub vote: Option<Vec<Address>>,
    /// When the running set will have held still long enough to be voted (unix ms), while it
    /// is votable but still settling: the next pass is due then, not a loop period later.
    pub vote_due_ms: Option<u64>,
}

/// Decides one pass over the open job `view` describes.
pub fn plan(view: &JobView<'_>) -> JobPass {
    let JobView {
        job,
        desired,
        rollout,
        now_ms: now,
        ..
    } = *view;
    let mut effects = Vec::new();
    let (holders, reported) = holders(view, &mut effects);

    // The rollout starts a new generation where the replica is held (a live node, the
    // healthiest holder first), and stops what it retires.
    let mut by_health: Vec<&Holder> = holders
        .iter()
        .filter(|h| h.liveness == NodeLiveness::Alive)
        .collect();
    by_health.sort_by_key(|h| h.health);
    let mut held: BTreeMap<u32, Address> = BTreeMap::new();
    for holder in by_health {
        held.entry(holder.replica).or_insert(holder.node);
    }
    rollout_effects(view, &held, &mut effects);
    for s in view.seen {
        if s.current() && rollout.role(s.report.id) == Role::Unwanted {
            effects.push(Effect::Stop {
                node: s.node,
                id: s.report.id,
                reason: "retired revision".into(),
            });
        }
    }

    let roster = (!job.active_nodes.is_empty()).then_some(&job.active_nodes);
    let availability = availability_plan::plan(&AvailabilityInput {
        job_id: job.id,
        salt: 0,
        desired_replicas: desired,
        demand: view.demand,
        node_selector: view.node_selector,
        holders: &holders,
        roster,
        candidates: view.candidates,
        now_ms: now,
        start_grace_ms: view.start_grace_ms,
        budget_spent: view.budget_spent,
    });
    let mut gone: BTreeSet<(u32, Address)> = BTreeSet::new();
    let mut starting = Vec::new();
    for action in &availability.actions {
        match *action {
            Action::Deploy { replica, node } => {
                effects.extend(deploy(job.id, replica, node, rollout, now));
                starting.push((replica, node));
            }
            Action::Stop {
                replica,
                node,
                reason,
            } => {
                stop(view, replica, node, &format!("{reason:?}"), &mut effects);
                gone.insert((replica, node));
            }
            Action::Redeploy {
                replica, from, to, ..
            } => {
                effects.extend(deploy(job.id, replica, to, rollout, now));
                starting.push((replica, to));
                stop(view, replica, from, "moved", &mut effects);
                gone.insert((replica, from));
            }
            Action::Forget { replica, node } => {
                effects.push(Effect::Forget { replica, node });
                gone.insert((replica, node));
            }
        }
    }
    for holder in &holders {
        if view.budget_spent
            || gone.contains(&(holder.replica, holder.node))
            || holder.liveness != NodeLiveness::Alive
            || holder.replica >= desired
        {
            continue;
        }
        let Some(generation) = rollout.serving(holder.replica) else {
            continue;
        };
        let current = reported
            .get(&(holder.replica, holder.node))
            .is_some_and(|r| r.revision == generation.revision);
        if !current {
            effects.push(Effect::Deploy {
                node: holder.node,
                workload: generation.workload(job.id, holder.replica),
                place: None,
            });
        }
    }

    // What runs, replica by replica: one healthy holder each at the current revision.
    let mut running: BTreeMap<u32, Address> = BTreeMap::new();
    let mut assignments = Vec::new();
    for holder in &holders {
        if gone.contains(&(holder.replica, holder.node)) || holder.replica >= desired {
            continue;
        }
        let report = reported.get(&(holder.replica, holder.node));
        let revision = rollout.serving(holder.replica).map(|g| g.revision.as_str());
        let healthy = report.is_some_and(|r| {
            r.state == WorkloadState::Running
                && r.healthy != Some(false)
                && Some(r.revision.as_str()) == revision
        }) && holder.liveness.may_keep_workloads()
            && holder.liveness != NodeLiveness::Unknown;
        if healthy {
            running.entry(holder.replica).or_insert(holder.node);
        }
        let (state, message) = match report {
            _ if holder.liveness == NodeLiveness::Lost => ("unknown", None),
            Some(r) => (r.state.name(), detail(&r.state)),
            None => ("pending", None),
        };
        assignments.push(assignment(holder.replica, holder.node, state, message));
    }
    for (replica, node) in starting {
        assignments.push(assignment(replica, node, "starting", None));
    }
    let summary = summarize(job, &running, assignments);

    let running_set: BTreeSet<Address> = running.values().copied().collect();
    let since = match view.stable {
        Some((set, since)) if *set == running_set => *since,
        _ => now,
    };
    let distinct = running_set.len() == running.len();
    let complete = running.len() as u32 == desired;
    // Only the first set: a validated job keeps its roster until it is complete again, so a
    // replica being moved or rolled out never shrinks the roster under its neighbours.
    let all_there_can_be = job.active_nodes.is_empty()
        && !running_set.is_empty()
        && !availability.unplaceable.is_empty();
    let votable = distinct
        && (complete || all_there_can_be)
        && !view.budget_spent
        && running_set != job.active_nodes
        && view.chain_fresh;
    // A replica whose health check passed has shown it serves: no hold needed for it.
    let checked = running.iter().all(|(replica, node)| {
        reported
            .get(&(*replica, *node))
            .is_some_and(|r| r.healthy == Some(true))
    });
    let settled = checked || now.saturating_sub(since) >= view.settle_ms;
    let vote = (votable && settled).then(|| running_set.iter().copied().collect());
    let vote_due_ms = (votable && !settled).then(|| since.saturating_add(view.settle_ms));
    JobPass {
        effects,
        summary,
        unplaceable: availability.unplaceable.first().map(|u| format!("{u:?}")),
        stable: (running_set, since),
        vote,
        vote_due_ms,
    }
}

/// What the nodes report of a job this oracle keeps its hands off (see
/// [`JobRollout::adopt_unless_foreign`]), whatever the revision.
pub fn observe_only(job: &ChainJob, desired: u32, seen: &[Seen]) -> JobSummary {
    let mut running: BTreeMap<u32, Address> = BTreeMap::new();
    let mut assignments = Vec::new();
    for s in seen.iter().filter(|s| s.current()) {
        let replica = s.report.id.index();
        if replica >= desired {
            continue;
        }
        if s.report.state == WorkloadState::Running && s.report.healthy != Some(false) {
            running.entry(replica).or_insert(s.node);
        }
        let state = &s.report.state;
        assignments.push(assignment(replica, s.node, state.name(), detail(state)));
    }
    summarize(job, &running, assignments)
}

/// The holders of each replica's serving generation, and what each holder reports; records a
/// first sight of a replica another oracle placed.
fn holders<'a>(
    view: &JobView<'a>,
    effects: &mut Vec<Effect>,
) -> (Vec<Holder>, BTreeMap<(u32, Address), &'a WorkloadReport>) {
    let now = view.now_ms;
    let mut holders = Vec::new();
    let mut reported = BTreeMap::new();
    for s in view.seen {
        let replica = s.report.id.index();
        let (Role::Serving, Some(generation)) = (
            view.rollout.role(s.report.id),
            view.rollout.serving(replica),
        ) else {
            continue;
        };
        let mut health =
            ReplicaHealth::from_report(Some(&s.report.state), DEFAULT_CRASH_LOOP_RESTARTS);
        if health == ReplicaHealth::Healthy
            && (s.report.revision != generation.revision || s.report.healthy == Some(false))
        {
            health = ReplicaHealth::Starting;
        }
        let since_ms = match view
            .placements
            .iter()
            .find(|p| p.replica == replica && p.node == s.node)
        {
            Some(p) => p.since_ms,
            None if s.liveness == NodeLiveness::Lost => now,
            None => {
                effects.push(Effect::Remember(Placement {
                    job: view.job.id,
                    replica,
                    node: s.node,
                    since_ms: now,
                }));
                now
            }
        };
        holders.push(Holder {
            replica,
            node: s.node,
            liveness: s.liveness,
            health,
            since_ms,
        });
        reported.insert((replica, s.node), &s.report);
    }
    for placement in view.placements {
        if !reported.contains_key(&(placement.replica, placement.node)) {
            holders.push(Holder {
                replica: placement.replica,
                node: placement.node,
                liveness: view.liveness.of(&placement.node),
                health: ReplicaHealth::Missing,
                since_ms: placement.since_ms,
            });
        }
    }
    (holders, reported)
}

/// The rollout's starts (to `held[index]`, the live node holding the replica) and stops (to
/// every node reporting that generation of the replica, and its holder).
fn rollout_effects(view: &JobView<'_>, held: &BTreeMap<u32, Address>, effects: &mut Vec<Effect>) {
    let job = view.job.id;
    for RolloutCommand { action, generation } in view.rollout_commands {
        match *action {
            RolloutAction::Start {
                replica,
                generation: number,
            } => {
                let Some(&node) = held.get(&replica) else {
                    continue;
                };
                if view.rollout.state.serving(replica) == number {
                    effects.push(Effect::Restart(Placement {
                        job,
                        replica,
                        node,
                        since_ms: view.now_ms,
                    }));
                }
                effects.push(Effect::Deploy {
                    node,
                    workload: generation.workload(job, replica),
                    place: None,
                });
            }
            RolloutAction::Stop { replica, .. } => {
                let id = generation.id(job, replica);
                let mut nodes: Vec<Address> = view
                    .seen
                    .iter()
                    .filter(|s| s.report.id == id)
                    .map(|s| s.node)
                    .collect();
                nodes.extend(held.get(&replica));
                nodes.sort();
                nodes.dedup();
                for node in nodes {
                    effects.push(Effect::Stop {
                        node,
                        id,
                        reason: "rollout".into(),
                    });
                }
            }
        }
    }
}

/// Places `replica` on `node` and deploys the generation serving it there.
fn deploy(job: u64, replica: u32, node: Address, rollout: &JobRollout, now: u64) -> Option<Effect> {
    let generation = rollout.serving(replica)?;
    Some(Effect::Deploy {
        node,
        workload: generation.workload(job, replica),
        place: Some(Placement {
            job,
            replica,
            node,
            since_ms: now,
        }),
    })
}

/// Stops every generation of `replica` this oracle knows on `node` and forgets the placement.
fn stop(view: &JobView<'_>, replica: u32, node: Address, reason: &str, effects: &mut Vec<Effect>) {
    let job = view.job.id;
    let mut ids: BTreeSet<WorkloadId> = view
        .seen
        .iter()
        .filter(|s| {
            s.node == node
                && s.report.id.index() == replica
                && view.rollout.role(s.report.id) != Role::Foreign
        })
        .map(|s| s.report.id)
        .collect();
    ids.extend(view.rollout.serving(replica).map(|g| g.id(job, replica)));
    effects.extend(ids.into_iter().map(|id| Effect::Stop {
        node,
        id,
        reason: reason.into(),
    }));
    effects.push(Effect::Forget { replica, node });
}

fn assignment(
    replica: u32,
    node: Address,
    state: &str,
    message: Option<String>,
) -> ReplicaAssignment {
    ReplicaAssignment {
        replica,
        node: node.to_checksum(None),
        state: state.into(),
        since: None,
        message,
    }
}

/// The node's detail of `state` for the status, when it has one; a pull's progress in steps
/// of 10 %, so the status is not rewritten at every percent.
fn detail(state: &WorkloadState) -> Option<String> {
    let state = match state {
        WorkloadState::Pulling { percent } => &WorkloadState::Pulling {
            percent: percent / 10 * 10,
        },
        state => state,
    };
    Some(state.detail()).filter(|d| !d.is_empty())
}

/// The job's summary: assignments in replica and node order, one per pair; the healthy count;
/// whether `running` is the validated set.
fn summarize(
    job: &ChainJob,
    running: &BTreeMap<u32, Address>,
    mut assignments: Vec<ReplicaAssignment>,
) -> JobSummary {
    assignments.sort_by(|a, b| a.replica.cmp(&b.replica).then(a.node.cmp(&b.node)));
    assignments.dedup_by(|a, b| a.replica == b.replica && a.node == b.node);
    let running_set: BTreeSet<Address> = running.values().copied().collect();
    JobSummary {
        assignments,
        healthy: running.len() as u32,
        validated: !job.active_nodes.is_empty() && running_set == job.active_nodes,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;
    use crate::decide::placement::fit::fixtures::candidate;
    use crate::decide::workload::fixtures::template;

    const NOW: u64 = 1_000_000;
    const GRACE: u64 = 60_000;
    const SETTLE: u64 = 5_000;

    fn addr(i: u8) -> Address {
        Address::with_last_byte(i)
    }

    fn chain_job(replicas: u32, active: &[u8]) -> ChainJob {
        ChainJob {
            id: 7,
            escrow: addr(200),
            project_hash: Default::default(),
            nodes_requested: replicas,
            last_execution_epoch: 100,
            next_epoch_to_settle: 1,
            price_per_epoch: 1,
            balance: 100,
            active_nodes: active.iter().map(|i| addr(*i)).collect(),
        }
    }

    /// A replica running without a health check (its health unknown).
    fn running(rollout: &JobRollout, node: u8, index: u32) -> Seen {
        let generation = rollout.serving(index).unwrap();
        Seen {
            node: addr(node),
            report: WorkloadReport {
                id: generation.id(7, index),
                revision: generation.revision.clone(),
                state: WorkloadState::Running,
                image_digest: None,
                ports: vec![],
                healthy: None,
                tunnel: None,
            },
            liveness: NodeLiveness::Alive,
        }
    }

    fn placed(node: u8, replica: u32) -> Placement {
        Placement {
            job: 7,
            replica,
            node: addr(node),
            since_ms: NOW - 10 * GRACE,
        }
    }

    /// Everything a test does not set: a job of `desired` replicas on candidates 1..=4.
    struct Fixture {
        job: ChainJob,
        desired: u32,
        rollout: JobRollout,
        seen: Vec<Seen>,
        placements: Vec<Placement>,
        candidates: Vec<crate::decide::placement::Candidate>,
        budget_spent: bool,
        chain_fresh: bool,
        stable: Option<(BTreeSet<Address>, u64)>,
    }

    impl Fixture {
        fn new(desired: u32, active: &[u8]) -> Self {
            Self {
                job: chain_job(desired, active),
                desired,
                rollout: JobRollout::adopt(&template("localhost/x:1")),
                seen: Vec::new(),
                placements: Vec::new(),
                candidates: (1..=4).map(|i| candidate(i, NodeLiveness::Alive)).collect(),
                budget_spent: false,
                chain_fresh: true,
                stable: None,
            }
        }

        fn plan(&self) -> JobPass {
            let liveness = LivenessView {
                nodes: self
                    .placements
                    .iter()
                    .map(|p| (p.node, NodeLiveness::Alive))
                    .collect(),
                unheard: NodeLiveness::Unknown,
            };
            let template = template("localhost/x:1");
            plan(&JobView {
                job: &self.job,
                desired: self.desired,
                demand: template.demand(),
                node_selector: &BTreeMap::new(),
                seen: &self.seen,
                placements: &self.placements,
                liveness: &liveness,
                rollout: &self.rollout,
                rollout_commands: &[],
                candidates: &Candidates::from(self.candidates.clone()),
                budget_spent: self.budget_spent,
                chain_fresh: self.chain_fresh,
                now_ms: NOW,
                start_grace_ms: GRACE,
                settle_ms: SETTLE,
                stable: self.stable.as_ref(),
            })
        }
    }

    fn deploys(pass: &JobPass) -> Vec<(u32, Address, bool)> {
        pass.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Deploy {
                    node,
                    workload,
                    place,
                } => Some((workload.id.index(), *node, place.is_some())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_new_job_is_placed_replica_by_replica_and_shown_starting() {
        let pass = Fixture::new(2, &[]).plan();
        let placed = deploys(&pass);
        assert_eq!(placed.len(), 2, "{pass:#?}");
        assert!(
            placed.iter().all(|(_, _, place)| *place),
            "deploys record placements"
        );
        assert_ne!(placed[0].1, placed[1].1, "two replicas, two nodes");
        assert_eq!(
            pass.summary
                .assignments
                .iter()
                .map(|a| (a.replica, a.state.as_str()))
                .collect::<Vec<_>>(),
            vec![(0, "starting"), (1, "starting")]
        );
        assert_eq!(pass.summary.healthy, 0);
        assert_eq!(pass.vote, None);
    }

    #[test]
    fn a_set_whose_health_checks_passed_is_voted_at_once_and_one_unchecked_replica_holds_it() {
        let mut fixture = Fixture::new(2, &[]);
        let checked = |mut seen: Seen| {
            seen.report.healthy = Some(true);
            seen
        };
        fixture.seen = vec![
            checked(running(&fixture.rollout, 1, 0)),
            running(&fixture.rollout, 2, 1),
        ];
        fixture.placements = vec![placed(1, 0), placed(2, 1)];
        let partly = fixture.plan();
        assert_eq!(partly.vote, None, "replica 1's check has not passed yet");
        assert_eq!(partly.vote_due_ms, Some(NOW + SETTLE));

        fixture.seen[1] = checked(running(&fixture.rollout, 2, 1));
        let both = fixture.plan();
        assert_eq!(
            both.vote,
            Some(vec![addr(1), addr(2)]),
            "both checks passed"
        );
        assert_eq!(both.vote_due_ms, None);
    }

    #[test]
    fn a_complete_set_is_voted_once_it_has_held_still() {
        let mut fixture = Fixture::new(2, &[]);
        fixture.seen = vec![
            running(&fixture.rollout, 1, 0),
            running(&fixture.rollout, 2, 1),
        ];
        fixture.placements = vec![placed(1, 0), placed(2, 1)];
        let set: BTreeSet<Address> = [addr(1), addr(2)].into();

        let first = fixture.plan();
        assert_eq!(first.stable, (set.clone(), NOW), "first seen now");
        assert_eq!(first.vote, None, "not held still yet");
        assert_eq!(
            first.vote_due_ms,
            Some(NOW + SETTLE),
            "the next pass is due then"
        );
        assert_eq!(deploys(&first), vec![], "nothing to deploy: {first:#?}");
        assert_eq!(first.summary.healthy, 2);
        assert!(!first.summary.validated);

        fixture.stable = Some((set.clone(), NOW - SETTLE));
        let settled = fixture.plan();
        assert_eq!(settled.vote, Some(vec![addr(1), addr(2)]));
        assert_eq!(settled.vote_due_ms, None);

        fixture.chain_fresh = false;
        let stale = fixture.plan();
        assert_eq!(stale.vote, None, "never on a stale chain view");
        assert_eq!(stale.vote_due_ms, None, "and no pass is hurried for it");
        fixture.chain_fresh = true;
        fixture.budget_spent = true;
        assert_eq!(fixture.plan().vote, None, "nor once the budget is spent");
        assert_eq!(fixture.plan().vote_due_ms, None);

        fixture.budget_spent = false;
        fixture.job = chain_job(2, &[1, 2]);
        let validated = fixture.plan();
        assert_eq!(validated.vote, None, "the chain has this set already");
        assert!(validated.summary.validated);
    }

    #[test]
    fn an_incomplete_set_is_voted_only_when_no_node_can_complete_it() {
        let mut fixture = Fixture::new(2, &[]);
        fixture.seen = vec![running(&fixture.rollout, 1, 0)];
        fixture.placements = vec![placed(1, 0)];
        fixture.stable = Some(([addr(1)].into(), 0));
        let waiting = fixture.plan();
        assert!(waiting.unplaceable.is_none(), "replica 1 has a node");
        assert_eq!(
            waiting.vote, None,
            "one of two replicas runs, the other is coming"
        );

        fixture.candidates.clear();
        let pass = fixture.plan();
        assert!(pass.unplaceable.is_some(), "no node can take replica 1");
        assert_eq!(
            pass.vote,
            Some(vec![addr(1)]),
            "what runs is all there can be"
        );

        fixture.job = chain_job(2, &[1, 2]);
        assert_eq!(
            fixture.plan().vote,
            None,
            "a validated job keeps its roster until it is complete again"
        );
    }

    #[test]
    fn a_shared_set_is_not_voted() {
        let mut fixture = Fixture::new(2, &[]);
        fixture.candidates.clear();
        fixture.seen = vec![
            running(&fixture.rollout, 1, 0),
            running(&fixture.rollout, 1, 1),
        ];
        fixture.placements = vec![placed(1, 0), placed(1, 1)];
        fixture.stable = Some(([addr(1)].into(), 0));
        assert_eq!(fixture.plan().vote, None, "two replicas on one node");
    }

    #[test]
    fn a_replica_another_oracle_placed_is_remembered_on_first_sight() {
        let mut fixture = Fixture::new(1, &[]);
        fixture.seen = vec![running(&fixture.rollout, 3, 0)];
        let pass = fixture.plan();
        assert_eq!(
            pass.effects,
            vec![Effect::Remember(Placement {
                job: 7,
                replica: 0,
                node: addr(3),
                since_ms: NOW,
            })]
        );
    }

    #[test]
    fn a_lost_deploy_is_repeated_but_not_placed_again() {
        let mut fixture = Fixture::new(1, &[]);
        fixture.placements = vec![Placement {
            since_ms: NOW - 1_000,
            ..placed(2, 0)
        }];
        let pass = fixture.plan();
        assert_eq!(deploys(&pass), vec![(0, addr(2), false)], "{pass:#?}");
        assert_eq!(pass.summary.assignments[0].state, "pending");

        fixture.budget_spent = true;
        assert_eq!(
            deploys(&fixture.plan()),
            vec![],
            "not once the budget is spent"
        );
    }

    #[test]
    fn workloads_of_a_retired_revision_are_stopped() {
        let mut fixture = Fixture::new(1, &[]);
        let old = fixture.rollout.generation(1).unwrap().clone();
        fixture
            .rollout
            .target(&template("localhost/x:2"), 0, NOW)
            .unwrap();
        fixture.seen = vec![Seen {
            node: addr(1),
            report: WorkloadReport {
                id: old.id(7, 0),
                revision: old.revision.clone(),
                state: WorkloadState::Running,
                image_digest: None,
                ports: vec![],
                healthy: Some(true),
                tunnel: None,
            },
            liveness: NodeLiveness::Alive,
        }];
        let pass = fixture.plan();
        assert!(
            pass.effects.contains(&Effect::Stop {
                node: addr(1),
                id: old.id(7, 0),
                reason: "retired revision".into(),
            }),
            "{pass:#?}"
        );
        assert_eq!(deploys(&pass).len(), 1, "the new revision is placed");
    }

    #[test]
    fn a_replica_on_a_lost_node_is_moved_and_forgotten() {
        let mut fixture = Fixture::new(1, &[1]);
        let mut lost = running(&fixture.rollout, 1, 0);
        lost.liveness = NodeLiveness::Lost;
        fixture.seen = vec![lost];
        fixture.placements = vec![placed(1, 0)];
        fixture.candidates.retain(|c| c.node != addr(1));
        let pass = fixture.plan();
        let moved = deploys(&pass);
        assert_eq!(moved.len(), 1, "{pass:#?}");
        assert_ne!(moved[0].1, addr(1));
        assert!(pass.effects.contains(&Effect::Forget {
            replica: 0,
            node: addr(1)
        }));
        assert!(
            pass.effects.iter().any(|e| matches!(
                e,
                Effect::Stop { node, reason, .. } if *node == addr(1) && reason == "moved"
            )),
            "should the node come back, it stops the moved replica"
        );
        assert_eq!(pass.summary.assignments.len(), 1, "only the new node");
        assert_eq!(pass.summary.assignments[0].state, "starting");
    }

    #[test]
    fn a_job_left_to_other_oracles_shows_what_runs() {
        let job = chain_job(2, &[1, 2]);
        let rollout = JobRollout::adopt(&template("localhost/x:1"));
        let seen = [running(&rollout, 2, 1), running(&rollout, 1, 0)];
        let summary = observe_only(&job, 2, &seen);
        assert_eq!(summary.healthy, 2);
        assert!(summary.validated);
        assert_eq!(
            summary
                .assignments
                .iter()
                .map(|a| a.replica)
                .collect::<Vec<_>>(),
            vec![0, 1]
        );
    }
}
