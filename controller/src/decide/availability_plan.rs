//! The availability loop's decision for one job: which replicas to deploy, stop or move.
//!
//! Each node reporting (or last known to run) a replica is a [`Holder`]. Per replica:
//!
//! * a holder on an Alive or Suspect node that is healthy — or still starting within the start
//!   grace — and whose node may keep it is *usable*; the best usable holder is kept and every
//!   other reachable holder of that replica is stopped (a duplicate, or unhealthy);
//! * with no usable holder, a holder on a node whose liveness is **Unknown** means *wait*:
//!   nothing is stopped, moved or placed for that replica, whatever else is known;
//! * otherwise (no holder, or only holders on Lost nodes or unhealthy ones) the replica is
//!   placed on a new node: `Deploy`, or `Redeploy` from the old node. When no node can take it,
//!   an unhealthy holder is left running rather than stopped for nothing.
//!
//! Replicas at or beyond the wanted count are stopped on every reachable node. Holders on Lost
//! or Unknown nodes are never sent a stop. A holder on a Lost node that is not needed — the
//! replica is kept or moved elsewhere, or no longer wanted — is *forgotten*: the oracle drops
//! the placement, so the dead node no longer counts as an assignment; should the node come back
//! still running the replica, its report makes it a holder again and the duplicate is stopped.
//!
//! Once the job's paid epochs are over, nothing is deployed or moved any more: what runs keeps
//! running until the closure loop stops it with the job, and only stops are planned.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::Address;
use r1_protocol::messages::WorkloadState;

use crate::decide::liveness::NodeLiveness;
use crate::decide::placement::fit::may_keep;
use crate::decide::placement::{Candidates, Demand, PlacementRequest, Unplaceable, place};

/// Restarts after which a restarting replica counts as crash-looping, unless configured.
pub const DEFAULT_CRASH_LOOP_RESTARTS: u32 = 5;

/// A replica's health as its node reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReplicaHealth {
    /// Running (and passing its health check, when it has one).
    Healthy,
    /// Being pulled, created or restarted a few times.
    Starting,
    /// Restarted at least the crash-loop threshold.
    CrashLooping,
    /// Exited or failed for good.
    Failed,
    /// The node is reachable but does not report the replica (a deploy not yet applied, or
    /// lost by the node).
    Missing,
}

impl ReplicaHealth {
    /// Health from a heartbeat's workload state (`None`: the node does not report it);
    /// `crash_loop_restarts` restarts make a restarting replica crash-looping.
    pub fn from_report(state: Option<&WorkloadState>, crash_loop_restarts: u32) -> Self {
        match state {
            None => Self::Missing,
            Some(WorkloadState::Running) => Self::Healthy,
            // A replica whose image cannot be pulled stays where it is and retries, as a
            // Kubernetes pod in ImagePullBackOff does: another node would fail the same way
            // for a missing tag or refused credentials, and the CSP sees the reason.
            Some(
                WorkloadState::Starting
                | WorkloadState::Pulling { .. }
                | WorkloadState::ImagePullBackOff { .. },
            ) => Self::Starting,
            Some(WorkloadState::Restarting { restarts, .. })
                if *restarts >= crash_loop_restarts =>
            {
                Self::CrashLooping
            }
            Some(WorkloadState::Restarting { .. }) => Self::Starting,
            Some(WorkloadState::Exited { .. } | WorkloadState::Failed { .. }) => Self::Failed,
        }
    }
}

/// One node that runs, or was last known or told to run, one replica of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Replica index.
    pub replica: u32,
    /// The node.
    pub node: Address,
    /// This oracle's view of the node.
    pub liveness: NodeLiveness,
    /// What the node reports about the replica.
    pub health: ReplicaHealth,
    /// When this oracle placed the replica there or first saw it there (unix ms), which starts
    /// the start grace.
    pub since_ms: u64,
}

/// Everything the availability loop knows about one job.
#[derive(Debug, Clone, Copy)]
pub struct AvailabilityInput<'a> {
    /// On-chain job id.
    pub job_id: u64,
    /// Placement salt (see [`PlacementRequest::salt`]).
    pub salt: u64,
    /// Replicas the job pays for.
    pub desired_replicas: u32,
    /// What each replica needs.
    pub demand: &'a Demand,
    /// Labels a node must carry.
    pub node_selector: &'a BTreeMap<String, String>,
    /// Every node running or last known to run a replica.
    pub holders: &'a [Holder],
    /// The node set validated on chain (`activeNodes`); `None` before the first validation.
    pub roster: Option<&'a BTreeSet<Address>>,
    /// Every node this oracle knows, for new placements.
    pub candidates: &'a Candidates,
    /// Now, unix ms.
    pub now_ms: u64,
    /// How long a replica may stay starting or unreported before it counts as failed.
    pub start_grace_ms: u64,
    /// The current epoch is past the job's last paid one: the job is about to be closed.
    pub budget_spent: bool,
}

/// Why a replica is unhealthy where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Exited or failed for good.
    Failed,
    /// Restarting over and over.
    CrashLooping,
    /// Still starting after the start grace.
    StartTimeout,
    /// Not reported by its node after the start grace.
    NotRunning,
    /// Its node lost its licence or no longer matches the selector or GPU model.
    Ineligible,
}

/// Why a replica is stopped on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The job wants fewer replicas.
    ScaledDown,
    /// Another node keeps this replica.
    Duplicate,
    /// Another node keeps this replica and this node is not on the paid roster.
    NotOnRoster,
    /// Unhealthy here, and another node keeps (or will keep) the replica.
    Unhealthy(Failure),
}

/// Why a replica moves to another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveReason {
    /// Its node is confirmed lost.
    NodeLost,
    /// It is unhealthy where it is.
    Unhealthy(Failure),
    /// Its node already keeps another replica of the job.
    SharedNode,
}

/// One thing the availability loop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start the replica on a node (it runs nowhere).
    Deploy {
        /// Replica index.
        replica: u32,
        /// Target node.
        node: Address,
    },
    /// Stop the replica on a node.
    Stop {
        /// Replica index.
        replica: u32,
        /// Node to stop it on.
        node: Address,
        /// Why.
        reason: StopReason,
    },
    /// Start the replica on `to`, and stop it on `from` (if `from` is reachable).
    Redeploy {
        /// Replica index.
        replica: u32,
        /// Where it ran.
        from: Address,
        /// Where it goes.
        to: Address,
        /// Why.
        reason: MoveReason,
    },
    /// Drop the record of the replica on a Lost node it is no longer needed on (no stop is
    /// sent: the node cannot hear it).
    Forget {
        /// Replica index.
        replica: u32,
        /// The Lost node.
        node: Address,
    },
}

/// A replica left alone because a node holding it is Unknown to this oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// Replica index.
    pub replica: u32,
    /// The Unknown node.
    pub node: Address,
}

/// The availability loop's decision for one job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// What to do, by replica then node.
    pub actions: Vec<Action>,
    /// Replicas waiting for an Unknown node to be seen again.
    pub waiting: Vec<Waiting>,
    /// Replicas that need a node and cannot get one.
    pub unplaceable: Vec<Unplaceable>,
}

/// Where a holder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Usable,
    Unknown,
    Lost,
    Failing(Failure),
}

fn standing(holder: &Holder, input: &AvailabilityInput<'_>) -> Standing {
    match holder.liveness {
        NodeLiveness::Unknown => return Standing::Unknown,
        NodeLiveness::Lost => return Standing::Lost,
        NodeLiveness::Alive | NodeLiveness::Suspect => {}
    }
    if let Some(candidate) = input.candidates.get(&holder.node)
        && !may_keep(candidate, input.demand, input.node_selector)
    {
        return Standing::Failing(Failure::Ineligible);
    }
    let in_grace = input.now_ms.saturating_sub(holder.since_ms) <= input.start_grace_ms;
    match holder.health {
        ReplicaHealth::Healthy => Standing::Usable,
        ReplicaHealth::Starting | ReplicaHealth::Missing if in_grace => Standing::Usable,
        ReplicaHealth::Starting => Standing::Failing(Failure::StartTimeout),
        ReplicaHealth::Missing => Standing::Failing(Failure::NotRunning),
        ReplicaHealth::CrashLooping => Standing::Failing(Failure::CrashLooping),
        ReplicaHealth::Failed => Standing::Failing(Failure::Failed),
    }
}

/// A replica that needs a new node, and what it leaves behind.
struct Move {
    replica: u32,
    from: Option<(Address, MoveReason)>,
}

/// Decides the availability loop's actions for one job.
pub fn plan(input: &AvailabilityInput<'_>) -> Plan {
    let on_roster = |node: &Address| input.roster.is_none_or(|roster| roster.contains(node));
    let mut by_replica: BTreeMap<u32, Vec<(&Holder, Standing)>> = BTreeMap::new();
    for holder in input.holders {
        by_replica
            .entry(holder.replica)
            .or_default()
            .push((holder, standing(holder, input)));
    }
    for holders in by_replica.values_mut() {
        holders.sort_by_key(|(holder, _)| holder.node);
    }

    let mut result = Plan::default();
    let mut pinned = BTreeMap::new();
    let mut keepers = BTreeSet::new();
    let mut moves = Vec::new();
    let exclude: BTreeSet<Address> = input.holders.iter().map(|holder| holder.node).collect();

    for (&replica, holders) in &by_replica {
        if replica >= input.desired_replicas {
            for (holder, standing) in holders {
                match standing {
                    Standing::Unknown => {}
                    Standing::Lost => result.actions.push(Action::Forget {
                        replica,
                        node: holder.node,
                    }),
                    _ => result.actions.push(Action::Stop {
                        replica,
                        node: holder.node,
                        reason: StopReason::ScaledDown,
                    }),
                }
            }
            continue;
        }
        let keeper = holders
            .iter()
            .filter(|(holder, standing)| {
                *standing == Standing::Usable && !keepers.contains(&holder.node)
            })
            .min_by_key(|(holder, _)| {
                (
                    holder.health != ReplicaHealth::Healthy,
                    !on_roster(&holder.node),
                    holder.liveness != NodeLiveness::Alive,
                    holder.node,
                )
            })
            .map(|(holder, _)| holder.node);
        if let Some(kept) = keeper {
            keepers.insert(kept);
            pinned.insert(replica, kept);
            for (holder, standing) in holders.iter().filter(|(holder, _)| holder.node != kept) {
                let reason = match standing {
                    Standing::Unknown => continue,
                    Standing::Lost => {
                        result.actions.push(Action::Forget {
                            replica,
                            node: holder.node,
                        });
                        continue;
                    }
                    Standing::Failing(failure) => StopReason::Unhealthy(*failure),
                    Standing::Usable if !on_roster(&holder.node) => StopReason::NotOnRoster,
                    Standing::Usable => StopReason::Duplicate,
                };
                result.actions.push(Action::Stop {
                    replica,
                    node: holder.node,
                    reason,
                });
            }
            continue;
        }
        if let Some((unknown, _)) = holders
            .iter()
            .find(|(_, standing)| *standing == Standing::Unknown)
        {
            result.waiting.push(Waiting {
                replica,
                node: unknown.node,
            });
            pinned.insert(replica, unknown.node);
            continue;
        }
        // Nothing usable and nothing Unknown: move. Prefer leaving from a reachable node, so the
        // stop reaches it; other reachable holders are stopped.
        let failing = holders
            .iter()
            .filter_map(|(holder, standing)| match standing {
                Standing::Failing(failure) => Some((holder.node, MoveReason::Unhealthy(*failure))),
                Standing::Usable => Some((holder.node, MoveReason::SharedNode)),
                _ => None,
            });
        let failing: Vec<(Address, MoveReason)> = failing.collect();
        let lost = holders
            .iter()
            .find(|(_, standing)| *standing == Standing::Lost)
            .map(|(holder, _)| (holder.node, MoveReason::NodeLost));
        let from = failing.first().copied().or(lost);
        for (holder, _) in holders.iter().filter(|(holder, standing)| {
            *standing == Standing::Lost && from.is_none_or(|(node, _)| node != holder.node)
        }) {
            result.actions.push(Action::Forget {
                replica,
                node: holder.node,
            });
        }
        for &(node, reason) in failing.iter().skip(1) {
            let reason = match reason {
                MoveReason::Unhealthy(failure) => StopReason::Unhealthy(failure),
                MoveReason::NodeLost | MoveReason::SharedNode => StopReason::Duplicate,
            };
            result.actions.push(Action::Stop {
                replica,
                node,
                reason,
            });
        }
        moves.push(Move { replica, from });
    }
    for replica in 0..input.desired_replicas {
        if !by_replica.contains_key(&replica) {
            moves.push(Move {
                replica,
                from: None,
            });
        }
    }
    moves.sort_by_key(|m| m.replica);
    if moves.is_empty() {
        return finish(result, input.budget_spent);
    }

    let request = PlacementRequest {
        job_id: input.job_id,
        salt: input.salt,
        replicas: input.desired_replicas,
        demand: input.demand.clone(),
        node_selector: input.node_selector.clone(),
        existing: BTreeMap::new(),
        pinned,
        exclude,
    };
    let placement = place(&request, input.candidates);
    for Move { replica, from } in moves {
        match (placement.assignments.get(&replica), from) {
            (Some(&to), None) => result.actions.push(Action::Deploy { replica, node: to }),
            (Some(&to), Some((from, reason))) => result.actions.push(Action::Redeploy {
                replica,
                from,
                to,
                reason,
            }),
            (None, _) => {
                if let Some(unplaceable) =
                    placement.unplaceable.iter().find(|u| u.replica == replica)
                {
                    result.unplaceable.push(unplaceable.clone());
                }
            }
        }
    }
    finish(result, input.budget_spent)
}

/// Orders the plan's actions; with the budget spent, only stops and forgets are left.
fn finish(mut result: Plan, budget_spent: bool) -> Plan {
    if budget_spent {
        result
            .actions
            .retain(|action| matches!(action, Action::Stop { .. } | Action::Forget { .. }));
        result.unplaceable.clear();
    }
    result.actions.sort_by_key(|action| match action {
        Action::Deploy { replica, node }
        | Action::Stop { replica, node, .. }
        | Action::Forget { replica, node } => (*replica, *node),
        Action::Redeploy { replica, from, .. } => (*replica, *from),
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::placement::fit::fixtures::candidate;
    use proptest::prelude::*;

    const GRACE: u64 = 60_000;
    const NOW: u64 = 1_000_000;

    fn addr(i: u8) -> Address {
        Address::with_last_byte(i)
    }

    fn holder(replica: u32, i: u8, liveness: NodeLiveness, health: ReplicaHealth) -> Holder {
        Holder {
            replica,
            node: addr(i),
            liveness,
            health,
            since_ms: NOW - 10 * GRACE,
        }
    }

    struct Case {
        desired: u32,
        holders: Vec<Holder>,
        roster: Option<BTreeSet<Address>>,
        candidates: Vec<crate::decide::placement::Candidate>,
        budget_spent: bool,
    }

    impl Case {
        /// Nodes 1..=6 alive; holders' nodes take the holders' liveness.
        fn new(desired: u32, holders: Vec<Holder>) -> Self {
            let candidates = (1..=6)
                .map(|i| {
                    let liveness = holders
                        .iter()
                        .find(|h| h.node == addr(i))
                        .map_or(NodeLiveness::Alive, |h| h.liveness);
                    candidate(i, liveness)
                })
                .collect();
            Self {
                desired,
                holders,
                roster: None,
                candidates,
                budget_spent: false,
            }
        }

        fn plan(&self) -> Plan {
            let demand = Demand {
                cpu_millis: 1000,
                memory_bytes: 1 << 30,
                ..Demand::default()
            };
            let selector = BTreeMap::new();
            plan(&AvailabilityInput {
                job_id: 7,
                salt: 0,
                desired_replicas: self.desired,
                demand: &demand,
                node_selector: &selector,
                holders: &self.holders,
                roster: self.roster.as_ref(),
                candidates: &Candidates::from(self.candidates.clone()),
                now_ms: NOW,
                start_grace_ms: GRACE,
                budget_spent: self.budget_spent,
            })
        }
    }

    use NodeLiveness::{Alive, Lost, Suspect, Unknown};
    use ReplicaHealth::{CrashLooping, Failed, Healthy, Missing, Starting};

    #[test]
    fn health_from_reports() {
        let h = |s: WorkloadState| ReplicaHealth::from_report(Some(&s), 5);
        assert_eq!(ReplicaHealth::from_report(None, 5), Missing);
        assert_eq!(h(WorkloadState::Running), Healthy);
        assert_eq!(h(WorkloadState::Starting), Starting);
        let restarting = |restarts: u32| -> WorkloadState {
            serde_json::from_value(serde_json::json!({"state": "restarting", "restarts": restarts, "last_exit_code": 1}))
                .expect("a restarting state")
        };
        assert_eq!(h(restarting(4)), Starting);
        assert_eq!(h(restarting(5)), CrashLooping);
        assert_eq!(h(WorkloadState::Exited { code: 0 }), Failed);
        assert_eq!(
            h(WorkloadState::Failed {
                reason: "oom".to_owned()
            }),
            Failed
        );
    }

    #[test]
    fn missing_replicas_are_deployed_on_distinct_nodes() {
        let p = Case::new(2, vec![]).plan();
        assert_eq!(p.actions.len(), 2);
        let nodes: BTreeSet<Address> = p
            .actions
            .iter()
            .map(|a| match a {
                Action::Deploy { node, .. } => *node,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(nodes.len(), 2);
    }

    #[test]
    fn healthy_replicas_are_left_alone() {
        for liveness in [Alive, Suspect] {
            let p = Case::new(
                2,
                vec![
                    holder(0, 1, liveness, Healthy),
                    holder(1, 2, Alive, Healthy),
                ],
            )
            .plan();
            assert_eq!(p, Plan::default());
        }
    }

    #[test]
    fn unknown_means_wait_and_nothing_else() {
        let p = Case::new(1, vec![holder(0, 1, Unknown, Healthy)]).plan();
        assert!(p.actions.is_empty());
        assert_eq!(
            p.waiting,
            vec![Waiting {
                replica: 0,
                node: addr(1)
            }]
        );
        // Even beside a lost and a failed holder of the same replica.
        let p = Case::new(
            1,
            vec![
                holder(0, 1, Unknown, Healthy),
                holder(0, 2, Lost, Healthy),
                holder(0, 3, Alive, Failed),
            ],
        )
        .plan();
        assert!(p.actions.is_empty());
        assert_eq!(p.waiting.len(), 1);
        // Scaled-down replicas on Unknown nodes are not stopped either.
        assert_eq!(
            Case::new(0, vec![holder(0, 1, Unknown, Healthy)]).plan(),
            Plan::default()
        );
    }

    #[test]
    fn a_usable_holder_wins_over_an_unknown_one() {
        let p = Case::new(
            1,
            vec![holder(0, 1, Unknown, Healthy), holder(0, 2, Alive, Healthy)],
        )
        .plan();
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn a_lost_node_is_replaced() {
        let p = Case::new(1, vec![holder(0, 1, Lost, Healthy)]).plan();
        match p.actions.as_slice() {
            [
                Action::Redeploy {
                    replica: 0,
                    from,
                    to,
                    reason: MoveReason::NodeLost,
                },
            ] => {
                assert_eq!(*from, addr(1));
                assert_ne!(*to, addr(1));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unhealthy_replicas_move_elsewhere() {
        let cases = [
            (Failed, Failure::Failed),
            (CrashLooping, Failure::CrashLooping),
            (Starting, Failure::StartTimeout),
            (Missing, Failure::NotRunning),
        ];
        for (health, failure) in cases {
            let p = Case::new(1, vec![holder(0, 1, Alive, health)]).plan();
            match p.actions.as_slice() {
                [
                    Action::Redeploy {
                        replica: 0,
                        from,
                        to,
                        reason,
                    },
                ] => {
                    assert_eq!((*from, *reason), (addr(1), MoveReason::Unhealthy(failure)));
                    assert_ne!(*to, addr(1));
                }
                other => panic!("{health:?}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn starting_within_the_grace_is_waited_for() {
        for health in [Starting, Missing] {
            let mut h = holder(0, 1, Alive, health);
            h.since_ms = NOW - GRACE;
            assert_eq!(Case::new(1, vec![h]).plan(), Plan::default());
        }
    }

    #[test]
    fn nowhere_to_go_leaves_the_failing_replica_running() {
        let mut case = Case::new(1, vec![holder(0, 1, Alive, Failed)]);
        case.candidates.retain(|c| c.node == addr(1));
        let p = case.plan();
        assert!(p.actions.is_empty());
        assert_eq!(p.unplaceable.len(), 1);
        assert_eq!(p.unplaceable[0].replica, 0);
    }

    #[test]
    fn ineligible_nodes_give_up_their_replica() {
        let mut case = Case::new(1, vec![holder(0, 1, Alive, Healthy)]);
        case.candidates[0].licensed = false;
        match case.plan().actions.as_slice() {
            [
                Action::Redeploy {
                    from,
                    reason: MoveReason::Unhealthy(Failure::Ineligible),
                    ..
                },
            ] => assert_eq!(*from, addr(1)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn duplicates_are_stopped_keeping_the_best_holder() {
        // Two healthy holders: the one on the roster stays.
        let mut case = Case::new(
            1,
            vec![holder(0, 1, Alive, Healthy), holder(0, 2, Alive, Healthy)],
        );
        case.roster = Some(BTreeSet::from([addr(2)]));
        assert_eq!(
            case.plan().actions,
            vec![Action::Stop {
                replica: 0,
                node: addr(1),
                reason: StopReason::NotOnRoster
            }]
        );
        // No roster yet: the lower address stays, the other is a duplicate.
        case.roster = None;
        assert_eq!(
            case.plan().actions,
            vec![Action::Stop {
                replica: 0,
                node: addr(2),
                reason: StopReason::Duplicate
            }]
        );
        // Healthy beats starting; alive beats suspect.
        let mut starting = holder(0, 1, Alive, Starting);
        starting.since_ms = NOW;
        let case = Case::new(1, vec![starting, holder(0, 2, Suspect, Healthy)]);
        assert_eq!(
            case.plan().actions,
            vec![Action::Stop {
                replica: 0,
                node: addr(1),
                reason: StopReason::Duplicate
            }]
        );
        let case = Case::new(
            1,
            vec![holder(0, 1, Suspect, Healthy), holder(0, 2, Alive, Healthy)],
        );
        assert_eq!(
            case.plan().actions,
            vec![Action::Stop {
                replica: 0,
                node: addr(1),
                reason: StopReason::Duplicate
            }]
        );
        // An unhealthy second copy is stopped as unhealthy; a lost one is sent nothing, only
        // forgotten.
        let case = Case::new(
            1,
            vec![
                holder(0, 1, Alive, Healthy),
                holder(0, 2, Alive, Failed),
                holder(0, 3, Lost, Healthy),
            ],
        );
        assert_eq!(
            case.plan().actions,
            vec![
                Action::Stop {
                    replica: 0,
                    node: addr(2),
                    reason: StopReason::Unhealthy(Failure::Failed)
                },
                Action::Forget {
                    replica: 0,
                    node: addr(3)
                }
            ]
        );
    }

    #[test]
    fn one_node_keeps_one_replica() {
        let p = Case::new(
            2,
            vec![holder(0, 1, Alive, Healthy), holder(1, 1, Alive, Healthy)],
        )
        .plan();
        match p.actions.as_slice() {
            [
                Action::Redeploy {
                    replica: 1,
                    from,
                    to,
                    reason: MoveReason::SharedNode,
                },
            ] => {
                assert_eq!(*from, addr(1));
                assert_ne!(*to, addr(1));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn scaled_down_replicas_are_stopped_where_reachable() {
        let p = Case::new(
            1,
            vec![
                holder(0, 1, Alive, Healthy),
                holder(1, 2, Alive, Healthy),
                holder(2, 3, Lost, Healthy),
                holder(3, 4, Suspect, Failed),
            ],
        )
        .plan();
        assert_eq!(
            p.actions,
            vec![
                Action::Stop {
                    replica: 1,
                    node: addr(2),
                    reason: StopReason::ScaledDown
                },
                Action::Forget {
                    replica: 2,
                    node: addr(3)
                },
                Action::Stop {
                    replica: 3,
                    node: addr(4),
                    reason: StopReason::ScaledDown
                },
            ]
        );
    }

    #[test]
    fn a_lost_holder_of_a_replica_kept_elsewhere_is_forgotten() {
        // Another oracle moved the replica off the dead node first: this oracle still has the
        // dead node's placement. It is forgotten, not left as a phantom assignment.
        let p = Case::new(
            2,
            vec![
                holder(0, 1, Alive, Healthy),
                holder(1, 2, Lost, Healthy),
                holder(1, 3, Alive, Healthy),
            ],
        )
        .plan();
        assert_eq!(
            p.actions,
            vec![Action::Forget {
                replica: 1,
                node: addr(2)
            }]
        );
    }

    #[test]
    fn several_failing_copies_move_once_and_the_rest_stop() {
        let p = Case::new(
            1,
            vec![
                holder(0, 1, Alive, Failed),
                holder(0, 2, Alive, CrashLooping),
                holder(0, 3, Lost, Healthy),
            ],
        )
        .plan();
        assert_eq!(p.actions.len(), 3);
        assert!(matches!(p.actions[0], Action::Redeploy { from, .. } if from == addr(1)));
        assert_eq!(
            p.actions[1],
            Action::Stop {
                replica: 0,
                node: addr(2),
                reason: StopReason::Unhealthy(Failure::CrashLooping)
            }
        );
        assert_eq!(
            p.actions[2],
            Action::Forget {
                replica: 0,
                node: addr(3)
            }
        );
    }

    fn arb_holder() -> impl Strategy<Value = Holder> {
        (
            0u32..4,
            1u8..7,
            prop_oneof![Just(Alive), Just(Suspect), Just(Lost), Just(Unknown)],
            prop_oneof![
                Just(Healthy),
                Just(Starting),
                Just(CrashLooping),
                Just(Failed),
                Just(Missing)
            ],
            prop_oneof![Just(NOW), Just(NOW - 10 * GRACE)],
        )
            .prop_map(|(replica, i, liveness, health, since_ms)| Holder {
                replica,
                node: addr(i),
                liveness,
                health,
                since_ms,
            })
    }

    proptest! {
        #[test]
        fn safety_rules_hold(
            desired in 0u32..4,
            raw in proptest::collection::vec(arb_holder(), 0..8),
            roster in proptest::option::of(proptest::collection::btree_set(1u8..7, 0..4)),
        ) {
            // One view per node: the first holder's liveness is the node's.
            let mut liveness_of = BTreeMap::new();
            let mut seen = BTreeSet::new();
            let holders: Vec<Holder> = raw
                .into_iter()
                .filter(|h| seen.insert((h.replica, h.node)))
                .map(|h| Holder { liveness: *liveness_of.entry(h.node).or_insert(h.liveness), ..h })
                .collect();
            let mut case = Case::new(desired, holders.clone());
            case.roster = roster.map(|r| r.into_iter().map(addr).collect());
            let plan = case.plan();

            let holder_at = |replica: u32, node: Address| holders.iter().find(|h| h.replica == replica && h.node == node);
            let mut targets = BTreeSet::new();
            for action in &plan.actions {
                match *action {
                    Action::Stop { replica, node, reason } => {
                        let h = holder_at(replica, node).expect("stops only holders");
                        prop_assert!(matches!(h.liveness, Alive | Suspect), "stop sent to a {:?} node", h.liveness);
                        if reason != StopReason::ScaledDown {
                            prop_assert!(replica < desired);
                        }
                    }
                    Action::Redeploy { replica, from, to, .. } => {
                        let h = holder_at(replica, from).expect("moves only holders");
                        prop_assert!(h.liveness != Unknown);
                        prop_assert!(!holders.iter().any(|h| h.node == to));
                        prop_assert!(targets.insert(to));
                        // A healthy replica on a reachable eligible node moves only off a node
                        // that keeps another replica.
                        if h.health == Healthy && matches!(h.liveness, Alive | Suspect) {
                            let shared = matches!(action, Action::Redeploy { reason: MoveReason::SharedNode, .. });
                            prop_assert!(shared, "healthy replica moved: {:?}", action);
                        }
                    }
                    Action::Forget { replica, node } => {
                        let h = holder_at(replica, node).expect("forgets only holders");
                        prop_assert_eq!(h.liveness, Lost);
                    }
                    Action::Deploy { replica, node } => {
                        prop_assert!(!holders.iter().any(|h| h.replica == replica));
                        prop_assert!(!holders.iter().any(|h| h.node == node));
                        prop_assert!(targets.insert(node));
                    }
                }
            }
            // A replica with an Unknown holder and no usable one gets no action at all.
            for w in &plan.waiting {
                let untouched = plan.actions.iter().all(|a| !matches!(a,
                    Action::Deploy { replica, .. } | Action::Stop { replica, .. } | Action::Redeploy { replica, .. } | Action::Forget { replica, .. } if *replica == w.replica));
                prop_assert!(untouched, "waiting replica {} touched", w.replica);
            }
            // Order of holders does not matter.
            let mut reversed = Case::new(desired, holders.iter().rev().cloned().collect());
            reversed.roster = case.roster.clone();
            prop_assert_eq!(reversed.plan(), plan.clone());
            // Once the budget is spent, only the stops and forgets remain.
            case.budget_spent = true;
            let ending = case.plan();
            let stops: Vec<Action> = plan
                .actions
                .into_iter()
                .filter(|a| matches!(a, Action::Stop { .. } | Action::Forget { .. }))
                .collect();
            prop_assert_eq!(ending.actions, stops);
            prop_assert!(ending.unplaceable.is_empty());
        }
    }
}
