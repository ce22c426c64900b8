//! A job's status from what the oracle knows, as a pure function: phase, conditions in the
//! Kubernetes style (a condition keeps its `lastTransitionTime` while its status stays the
//! same), assignments and the on-chain figures. `r1ctl get` and `kubectl get` show the same.

use r1_crds::common::{Condition, ConditionStatus};
use r1_crds::job::{DeeployJobStatus, JobPhase, ReplicaAssignment};
use r1_crds::usdc::Usdc;

use crate::decide::chain_job::ChainJob;
use crate::decide::rollout::ROLLOUT_FAILED;

/// Where the job stands on chain.
#[derive(Debug, Clone, Copy)]
pub enum OnChain<'a> {
    /// The chain cannot be read right now.
    Unknown,
    /// No open job pays for the resource.
    Unfunded,
    /// The open job paying for it.
    Open(&'a ChainJob),
    /// The job that paid for it is closed.
    Closed(u64),
}

/// Where the job's rollout stands, for its `RolledOut` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutView {
    /// Every replica runs the spec's revision.
    Complete {
        /// That revision.
        revision: String,
    },
    /// A new revision is being rolled out replica by replica.
    Progressing {
        /// The replica being switched.
        replica: u32,
        /// Replicas of the job.
        replicas: u32,
        /// The old revision.
        from: String,
        /// The new revision.
        to: String,
    },
    /// The new revision failed; the old one is being restored, or runs again.
    Failed {
        /// What failed and what runs, e.g. `replica 0 of revision 8c1f… never became healthy
        /// within 120 s; running revision 1a2b… again`.
        message: String,
    },
}

/// Everything a job's status is computed from.
#[derive(Debug, Clone)]
pub struct JobFacts<'a> {
    /// `metadata.generation`.
    pub generation: i64,
    /// Replicas wanted.
    pub replicas: u32,
    /// The chain's side.
    pub chain: OnChain<'a>,
    /// Where each replica runs or is being started.
    pub assignments: Vec<ReplicaAssignment>,
    /// Replicas running and healthy.
    pub healthy: u32,
    /// The validated node set equals the healthy set.
    pub validated: bool,
    /// Deletion was requested.
    pub deleting: bool,
    /// Why the spec cannot run, if it cannot.
    pub invalid: Option<String>,
    /// Why some replicas have no node, if so.
    pub unplaceable: Option<String>,
    /// Current epoch, when known.
    pub epoch: Option<u64>,
    /// Price class the job is funded under.
    pub price_class: Option<String>,
    /// The rollout, when this oracle manages the job's replicas.
    pub rollout: Option<RolloutView>,
    /// Now, RFC 3339.
    pub now: String,
}

fn condition(
    previous: &[Condition],
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: String,
    facts: &JobFacts<'_>,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| facts.now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        last_transition_time,
        observed_generation: Some(facts.generation),
    }
}

/// The status of a job given `facts`, keeping transition times from `previous`.
pub fn job_status(previous: &DeeployJobStatus, facts: &JobFacts<'_>) -> DeeployJobStatus {
    use ConditionStatus::{False, True, Unknown};
    let prev = &previous.conditions;
    let mut status = DeeployJobStatus {
        ready: Some(format!("{}/{}", facts.healthy, facts.replicas)),
        ready_replicas: facts.healthy,
        assignments: facts.assignments.clone(),
        current_epoch: facts.epoch.or(previous.current_epoch),
        observed_generation: Some(facts.generation),
        price_class: facts.price_class.clone(),
        chain_job_id: previous.chain_job_id.clone(),
        price_per_epoch: previous.price_per_epoch.clone(),
        budget_left: previous.budget_left.clone(),
        last_epoch: previous.last_epoch,
        last_consensus_epoch: previous.last_consensus_epoch,
        ..DeeployJobStatus::default()
    };
    let mut conditions = Vec::new();
    if let Some(reason) = &facts.invalid {
        conditions.push(condition(
            prev,
            "Running",
            False,
            "InvalidSpec",
            reason.clone(),
            facts,
        ));
        status.phase = Some(JobPhase::Failed);
        status.conditions = conditions;
        return status;
    }
    let phase = match facts.chain {
        OnChain::Unknown => {
            conditions.push(condition(
                prev,
                "Funded",
                Unknown,
                "ChainUnreachable",
                "the chain RPC cannot be read; nothing is stopped or closed meanwhile".into(),
                facts,
            ));
            previous.phase.unwrap_or(JobPhase::Pending)
        }
        OnChain::Unfunded if facts.deleting => JobPhase::Closing,
        OnChain::Unfunded => {
            conditions.push(condition(
                prev,
                "Funded",
                False,
                "AwaitingFunding",
                "no open escrow job pays for this resource yet; fund it with `r1ctl fund`".into(),
                facts,
            ));
            JobPhase::Pending
        }
        OnChain::Closed(id) => {
            status.chain_job_id = Some(id.to_string());
            status.budget_left = Some(Usdc(0).to_string());
            conditions.push(condition(
                prev,
                "Closed",
                True,
                "JobClosed",
                format!("chain job {id} is closed; its workloads are removed"),
                facts,
            ));
            JobPhase::Closed
        }
        OnChain::Open(job) => {
            status.chain_job_id = Some(job.id.to_string());
            status.price_per_epoch = Usdc(job.price_per_epoch)
                .checked_mul(u64::from(job.nodes_requested))
                .map(|u| u.to_string());
            status.budget_left = Some(Usdc(job.balance).to_string());
            status.last_epoch = Some(job.last_execution_epoch);
            conditions.push(condition(
                prev,
                "Funded",
                True,
                "BudgetLocked",
                format!(
                    "chain job {} pays {} nodes until epoch {}",
                    job.id, job.nodes_requested, job.last_execution_epoch
                ),
                facts,
            ));
            let placed = facts.assignments.len() as u32;
            conditions.push(if placed >= facts.replicas {
                condition(
                    prev,
                    "Scheduled",
                    True,
                    "NodesChosen",
                    format!("{placed} replicas placed"),
                    facts,
                )
            } else {
                condition(
                    prev,
                    "Scheduled",
                    False,
                    "NoEligibleNode",
                    facts
                        .unplaceable
                        .clone()
                        .unwrap_or_else(|| "waiting for eligible nodes".into()),
                    facts,
                )
            });
            if facts.validated {
                if previous
                    .conditions
                    .iter()
                    .all(|c| c.type_ != "Validated" || c.status != True)
                {
                    status.last_consensus_epoch = facts.epoch;
                }
                conditions.push(condition(
                    prev,
                    "Validated",
                    True,
                    "ConsensusReached",
                    "the oracles recorded this node set on chain".into(),
                    facts,
                ));
            } else {
                conditions.push(condition(
                    prev,
                    "Validated",
                    False,
                    "AwaitingConsensus",
                    "the node set on chain differs from the nodes running the job".into(),
                    facts,
                ));
            }
            let running = facts.healthy >= facts.replicas;
            conditions.push(condition(
                prev,
                "Running",
                if running { True } else { False },
                if running {
                    "AllReplicasHealthy"
                } else {
                    "ReplicasStarting"
                },
                format!("{}/{} replicas healthy", facts.healthy, facts.replicas),
                facts,
            ));
            let degraded = !running && previous.phase == Some(JobPhase::Running);
            conditions.push(condition(
                prev,
                "Degraded",
                if degraded { True } else { False },
                if degraded { "ReplicaLost" } else { "AsPlanned" },
                if degraded {
                    "a replica stopped running; it is being replaced".into()
                } else {
                    String::new()
                },
                facts,
            ));
            if facts.deleting {
                JobPhase::Closing
            } else if running && facts.validated {
                JobPhase::Running
            } else if degraded || previous.phase == Some(JobPhase::Degraded) && !running {
                JobPhase::Degraded
            } else if placed > 0 {
                JobPhase::Scheduled
            } else {
                JobPhase::Funded
            }
        }
    };
    match &facts.rollout {
        Some(rollout) => conditions.push(rolled_out(prev, rollout, facts)),
        // A pass that could not see the rollout (the chain unreadable for a moment, the
        // rollout record unreadable) keeps what the last pass said, while the job lives.
        None if matches!(facts.chain, OnChain::Unknown | OnChain::Open(_)) => {
            conditions.extend(prev.iter().find(|c| c.type_ == "RolledOut").cloned());
        }
        None => {}
    }
    status.phase = Some(phase);
    status.conditions = conditions;
    status
}

/// `RolledOut`: True once every replica runs the spec's revision; False while a new one rolls
/// out, and with reason `RolloutFailed` after it failed (the old revision keeps running).
fn rolled_out(prev: &[Condition], rollout: &RolloutView, facts: &JobFacts<'_>) -> Condition {
    use ConditionStatus::{False, True};
    match rollout {
        RolloutView::Complete { revision } => condition(
            prev,
            "RolledOut",
            True,
            "RolloutComplete",
            format!("every replica runs revision {revision}"),
            facts,
        ),
        RolloutView::Progressing {
            replica,
            replicas,
            from,
            to,
        } => condition(
            prev,
            "RolledOut",
            False,
            "RollingOut",
            format!(
                "replica {replica} of {replicas}: revision {to} starting beside {from}, which stops once it is healthy"
            ),
            facts,
        ),
        RolloutView::Failed { message } => condition(
            prev,
            "RolledOut",
            False,
            ROLLOUT_FAILED,
            message.clone(),
            facts,
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn chain_job() -> ChainJob {
        ChainJob {
            id: 4,
            escrow: Default::default(),
            project_hash: Default::default(),
            nodes_requested: 2,
            last_execution_epoch: 40,
            next_epoch_to_settle: 11,
            price_per_epoch: 375_000,
            balance: 22_500_000,
            active_nodes: BTreeSet::new(),
        }
    }

    fn facts<'a>(chain: OnChain<'a>, healthy: u32, validated: bool, now: &str) -> JobFacts<'a> {
        JobFacts {
            generation: 1,
            replicas: 2,
            chain,
            assignments: (0..healthy)
                .map(|replica| ReplicaAssignment {
                    replica,
                    node: "0x01".into(),
                    state: "running".into(),
                    since: None,
                    message: None,
                })
                .collect(),
            healthy,
            validated,
            deleting: false,
            invalid: None,
            unplaceable: None,
            epoch: Some(10),
            price_class: Some("entry".into()),
            rollout: None,
            now: now.into(),
        }
    }

    #[test]
    fn phases_follow_the_job_and_transition_times_stay_put() {
        let job = chain_job();
        let pending = job_status(
            &DeeployJobStatus::default(),
            &facts(OnChain::Unfunded, 0, false, "t0"),
        );
        assert_eq!(pending.phase, Some(JobPhase::Pending));
        let starting = job_status(&pending, &facts(OnChain::Open(&job), 1, false, "t1"));
        assert_eq!(starting.phase, Some(JobPhase::Scheduled));
        assert_eq!(starting.budget_left.as_deref(), Some("22.50"));
        assert_eq!(starting.price_per_epoch.as_deref(), Some("0.75"));
        let running = job_status(&starting, &facts(OnChain::Open(&job), 2, true, "t2"));
        assert_eq!(running.phase, Some(JobPhase::Running));
        assert_eq!(running.last_consensus_epoch, Some(10));
        let again = job_status(&running, &facts(OnChain::Open(&job), 2, true, "t3"));
        let funded = |s: &DeeployJobStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Funded")
                .unwrap()
                .last_transition_time
                .clone()
        };
        assert_eq!(
            funded(&again),
            "t1",
            "unchanged conditions keep their transition time"
        );
        let degraded = job_status(&again, &facts(OnChain::Open(&job), 1, true, "t4"));
        assert_eq!(degraded.phase, Some(JobPhase::Degraded));
        let unknown = job_status(&degraded, &facts(OnChain::Unknown, 1, true, "t5"));
        assert_eq!(
            unknown.phase,
            Some(JobPhase::Degraded),
            "an outage changes no phase"
        );
        let closed = job_status(&unknown, &facts(OnChain::Closed(4), 0, false, "t6"));
        assert_eq!(closed.phase, Some(JobPhase::Closed));
    }

    #[test]
    fn a_failed_rollout_keeps_the_job_running_and_says_why() {
        let job = chain_job();
        let rolled_out = |s: &DeeployJobStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "RolledOut")
                .cloned()
                .unwrap()
        };
        let mut progressing = facts(OnChain::Open(&job), 2, true, "t1");
        progressing.rollout = Some(RolloutView::Progressing {
            replica: 0,
            replicas: 2,
            from: "aa".into(),
            to: "bb".into(),
        });
        let first = job_status(&DeeployJobStatus::default(), &progressing);
        assert_eq!(first.phase, Some(JobPhase::Running));
        assert_eq!(rolled_out(&first).reason, "RollingOut");
        let mut failed = facts(OnChain::Open(&job), 2, true, "t2");
        failed.rollout = Some(RolloutView::Failed {
            message: "replica 0 of revision bb never became healthy within 6 s; running revision aa again".into(),
        });
        let after = job_status(&first, &failed);
        assert_eq!(after.phase, Some(JobPhase::Running));
        let condition = rolled_out(&after);
        assert_eq!(
            (condition.status, condition.reason.as_str()),
            (ConditionStatus::False, ROLLOUT_FAILED)
        );
        assert!(condition.message.contains("never became healthy"));
        assert_eq!(
            condition.last_transition_time, "t1",
            "still False: the transition time stays"
        );
        let blind = job_status(&after, &facts(OnChain::Unknown, 2, true, "t3"));
        assert_eq!(
            rolled_out(&blind),
            condition,
            "a pass that cannot see the rollout keeps what the last one said"
        );
        let closed = job_status(&after, &facts(OnChain::Closed(4), 0, false, "t4"));
        assert!(closed.conditions.iter().all(|c| c.type_ != "RolledOut"));
    }
}
