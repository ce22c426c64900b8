//! The rollout, availability and validation loops for one job: gather what the nodes report,
//! roll a changed spec out (see [`crate::oracle::rollout`]), let
//! [`crate::decide::availability_plan`] keep the generation serving each replica running, send
//! the commands, vote the running node set on chain when it differs from the validated one,
//! and write the job's status.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::Address;
use r1_crds::job::{DeeployJobSpec, DeeployJobStatus, JobPhase, ReplicaAssignment};
use r1_protocol::messages::{WorkloadId, WorkloadState};

use crate::decide::availability_plan::{
    self, Action, AvailabilityInput, DEFAULT_CRASH_LOOP_RESTARTS, Holder, ReplicaHealth,
};
use crate::decide::liveness::NodeLiveness;
use crate::intake::object::{ObjectKey, StoredObject, timestamp_now};
use crate::oracle::chain::ChainJob;
use crate::oracle::rollout::{JobRollout, Role, Seen, split, workload_replica};
use crate::oracle::runtime::{Oracle, Pass};
use crate::oracle::state::Placement;
use crate::oracle::status::{JobFacts, OnChain, job_status};
use crate::oracle::workload::WorkloadTemplate;

/// What one job pass found, for the pass summary and metrics.
#[derive(Debug, Clone, Copy)]
pub struct JobOutcome {
    /// The phase written.
    pub phase: JobPhase,
    /// The on-chain job the resource is linked to, if any.
    pub chain_job: Option<u64>,
}

impl Oracle {
    /// One pass over the job stored as `object`.
    pub(crate) async fn reconcile_job(&self, object: &StoredObject, pass: &Pass) -> JobOutcome {
        let key = object.key();
        let previous: DeeployJobStatus = object.status_as().ok().flatten().unwrap_or_default();
        let deleting = object.metadata.deletion_requested;
        let spec: Result<DeeployJobSpec, String> =
            serde_json::from_value(object.spec.clone()).map_err(|e| format!("spec: {e}"));
        let template = spec
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|s| WorkloadTemplate::of(s).map_err(|e| e.to_string()));
        let mut facts = JobFacts {
            generation: object.metadata.generation,
            replicas: spec.as_ref().map_or(0, |s| s.replicas),
            chain: OnChain::Unknown,
            assignments: previous.assignments.clone(),
            healthy: previous.ready_replicas,
            validated: false,
            deleting,
            invalid: None,
            unplaceable: None,
            epoch: pass.chain.as_ref().map(|c| c.epoch),
            price_class: spec
                .as_ref()
                .ok()
                .and_then(|s| self.catalogue.estimate(s).ok())
                .map(|e| e.class.name.clone()),
            rollout: None,
            now: timestamp_now(),
        };
        let (spec, template) = match (spec, template) {
            (Ok(spec), Ok(template)) => (spec, template),
            (Err(reason), _) | (_, Err(reason)) => {
                facts.invalid = Some(reason);
                if deleting {
                    self.finalize(&key);
                    return JobOutcome {
                        phase: JobPhase::Closed,
                        chain_job: None,
                    };
                }
                return self.write_status(&key, object, &previous, &facts);
            }
        };
        let project_hash =
            r1_contracts::project_hash(object.metadata.owner, &key.namespace, &key.name);
        let linked_id: Option<u64> = previous
            .chain_job_id
            .as_deref()
            .and_then(|s| s.parse().ok());
        let chain_job = pass
            .chain
            .as_ref()
            .and_then(|c| c.job_for(&object.metadata.owner, &project_hash));
        match (pass.chain_fresh, chain_job, linked_id) {
            (true, Some(job), _) => {
                facts.chain = OnChain::Open(job);
                self.run_job(job, &spec, &template, pass, &mut facts).await;
                if deleting {
                    self.vote_nodes(job.id, &[], "close", pass).await;
                }
            }
            (true, None, Some(id)) => {
                facts.chain = OnChain::Closed(id);
                self.stop_everywhere(id, "job closed", pass);
                facts.assignments.clear();
                facts.healthy = 0;
                if deleting {
                    self.finalize(&key);
                    return JobOutcome {
                        phase: JobPhase::Closed,
                        chain_job: None,
                    };
                }
            }
            (true, None, None) => {
                facts.chain = OnChain::Unfunded;
                if deleting {
                    self.finalize(&key);
                    return JobOutcome {
                        phase: JobPhase::Closed,
                        chain_job: None,
                    };
                }
            }
            (false, Some(job), _) => {
                // The chain is Unknown: keep what runs running, vote and close nothing.
                self.run_job(job, &spec, &template, pass, &mut facts).await;
                facts.chain = OnChain::Unknown;
            }
            (false, None, _) => {}
        }
        self.write_status(&key, object, &previous, &facts)
    }

    fn finalize(&self, key: &ObjectKey) {
        match self.store.finalize_delete(key, None) {
            Ok(()) => tracing::info!(object = %key, "deletion finalized"),
            Err(e) => tracing::warn!(object = %key, error = %e, "cannot finalize deletion"),
        }
    }

    fn write_status(
        &self,
        key: &ObjectKey,
        object: &StoredObject,
        previous: &DeeployJobStatus,
        facts: &JobFacts<'_>,
    ) -> JobOutcome {
        let status = job_status(previous, facts);
        let phase = status.phase.unwrap_or(JobPhase::Pending);
        let changed = object
            .status_as::<DeeployJobStatus>()
            .ok()
            .flatten()
            .is_none_or(|old| old != status);
        if changed && let Err(e) = self.store.update_status(key, None, &status) {
            tracing::warn!(object = %key, error = %e, "cannot write status");
        }
        JobOutcome {
            phase,
            chain_job: status
                .chain_job_id
                .as_deref()
                .and_then(|id| id.parse().ok()),
        }
    }

    /// Rollout, availability (deploy, stop, move) and validation of one open chain job.
    async fn run_job(
        &self,
        job: &ChainJob,
        spec: &DeeployJobSpec,
        template: &WorkloadTemplate,
        pass: &Pass,
        facts: &mut JobFacts<'_>,
    ) {
        let now = pass.now_ms;
        let desired = job.nodes_requested.min(spec.replicas.max(1));
        let placements = self.state.placements(job.id).unwrap_or_else(|e| {
            tracing::warn!(job = job.id, error = %e, "cannot read placements");
            Vec::new()
        });
        let (seen, placed_liveness) = {
            let registry = self.registry.lock().await;
            let liveness = |node: &Address| registry.liveness(node, pass.link, now, &self.liveness);
            let seen: Vec<Seen> = registry
                .reports_of(job.id)
                .into_iter()
                .map(|(node, report)| Seen {
                    node,
                    report: report.clone(),
                    liveness: liveness(&node),
                })
                .collect();
            let placed: BTreeMap<Address, NodeLiveness> = placements
                .iter()
                .map(|p| (p.node, liveness(&p.node)))
                .collect();
            (seen, placed)
        };
        let Some(mut rollout) = self.rollout_record(job.id, template, &seen, &job.active_nodes)
        else {
            observe_only(job, desired, &seen, facts);
            return;
        };
        let rollout_commands =
            self.advance_rollout(job.id, &mut rollout, template, desired, &seen, pass);
        facts.rollout = Some(rollout.view());

        // Holders: where the generation serving each replica runs or was placed.
        let mut holders = Vec::new();
        let mut reported = BTreeMap::new();
        for s in &seen {
            let (_, replica) = split(s.report.id.replica);
            let serving = rollout.serving(replica);
            let (Role::Serving, Some(generation)) = (rollout.role(s.report.id.replica), serving)
            else {
                continue;
            };
            let mut health =
                ReplicaHealth::from_report(Some(&s.report.state), DEFAULT_CRASH_LOOP_RESTARTS);
            if health == ReplicaHealth::Healthy
                && (s.report.revision != generation.revision || s.report.healthy == Some(false))
            {
                health = ReplicaHealth::Starting;
            }
            let since_ms = match placements
                .iter()
                .find(|p| p.replica == replica && p.node == s.node)
            {
                Some(p) => p.since_ms,
                None if s.liveness == NodeLiveness::Lost => now,
                None => {
                    // Placed by another oracle: the start grace runs from first sight.
                    let seen = Placement {
                        job: job.id,
                        replica,
                        node: s.node,
                        since_ms: now,
                    };
                    if let Err(e) = self.state.place(&seen) {
                        tracing::warn!(job = job.id, error = %e, "cannot record first sight");
                    }
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
            reported.insert((replica, s.node), s.report.clone());
        }
        for placement in &placements {
            if !reported.contains_key(&(placement.replica, placement.node)) {
                holders.push(Holder {
                    replica: placement.replica,
                    node: placement.node,
                    liveness: placed_liveness
                        .get(&placement.node)
                        .copied()
                        .unwrap_or(NodeLiveness::Unknown),
                    health: ReplicaHealth::Missing,
                    since_ms: placement.since_ms,
                });
            }
        }

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
        self.send_rollout(job.id, &rollout, &rollout_commands, &held, &seen, now);
        for s in &seen {
            if s.current() && rollout.role(s.report.id.replica) == Role::Unwanted {
                self.send_stop(s.node, s.report.id, "retired revision");
            }
        }

        let roster = (!job.active_nodes.is_empty()).then_some(&job.active_nodes);
        let budget_spent = pass
            .chain
            .as_ref()
            .is_some_and(|chain| chain.epoch > job.last_execution_epoch);
        let plan = availability_plan::plan(&AvailabilityInput {
            job_id: job.id,
            salt: 0,
            desired_replicas: desired,
            demand: template.demand(),
            node_selector: &spec.node_selector,
            holders: &holders,
            roster,
            candidates: &pass.candidates,
            now_ms: now,
            start_grace_ms: self.config.loops.start_grace_seconds * 1000,
            budget_spent,
        });
        let mut gone: BTreeSet<(u32, Address)> = BTreeSet::new();
        for action in &plan.actions {
            match *action {
                Action::Deploy { replica, node } => {
                    self.deploy(job.id, replica, node, &rollout, now)
                }
                Action::Stop {
                    replica,
                    node,
                    reason,
                } => {
                    self.stop(
                        job.id,
                        replica,
                        node,
                        &format!("{reason:?}"),
                        &rollout,
                        &seen,
                    );
                    gone.insert((replica, node));
                }
                Action::Redeploy {
                    replica,
                    from,
                    to,
                    reason,
                } => {
                    tracing::info!(job = job.id, replica, %from, %to, ?reason, "moving replica");
                    self.deploy(job.id, replica, to, &rollout, now);
                    self.stop(job.id, replica, from, "moved", &rollout, &seen);
                    gone.insert((replica, from));
                }
                Action::Forget { replica, node } => {
                    tracing::info!(job = job.id, replica, %node, "forgetting the replica on a lost node");
                    if let Err(e) = self.state.unplace(job.id, replica, &node) {
                        tracing::warn!(job = job.id, replica, %node, error = %e, "cannot forget placement");
                    }
                    gone.insert((replica, node));
                }
            }
        }
        // A deploy command may have been lost (broker down, node restarting): repeat it for
        // every replica this oracle placed that its node does not report yet, or reports at an
        // older revision. Nodes treat a repeated command as a no-op.
        for holder in &holders {
            if budget_spent
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
                self.send_deploy(holder.node, generation.workload(job.id, holder.replica));
            }
        }
        if let Some(first) = plan.unplaceable.first() {
            facts.unplaceable = Some(format!("{first:?}"));
        }

        // What runs, replica by replica: one healthy holder each at the current revision.
        let mut running: BTreeMap<u32, Address> = BTreeMap::new();
        let mut assignments = Vec::new();
        for holder in &holders {
            if gone.contains(&(holder.replica, holder.node)) || holder.replica >= desired {
                continue;
            }
            let report = reported.get(&(holder.replica, holder.node));
            let state = report.map_or("pending", |r| r.state.name());
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
            assignments.push(ReplicaAssignment {
                replica: holder.replica,
                node: holder.node.to_checksum(None),
                state: if holder.liveness == NodeLiveness::Lost {
                    "unknown".into()
                } else {
                    state.into()
                },
                since: None,
            });
        }
        for action in &plan.actions {
            if let Action::Deploy { replica, node }
            | Action::Redeploy {
                replica, to: node, ..
            } = *action
            {
                assignments.push(ReplicaAssignment {
                    replica,
                    node: node.to_checksum(None),
                    state: "starting".into(),
                    since: None,
                });
            }
        }
        assignments.sort_by(|a, b| a.replica.cmp(&b.replica).then(a.node.cmp(&b.node)));
        assignments.dedup_by(|a, b| a.replica == b.replica && a.node == b.node);
        facts.assignments = assignments;
        facts.healthy = running.len() as u32;
        let running_set: BTreeSet<Address> = running.values().copied().collect();
        facts.validated = !job.active_nodes.is_empty() && running_set == job.active_nodes;

        // Validation: vote the running set once it is complete, distinct and has held still for
        // a whole loop period, so that honest oracles propose the same set.
        let complete = running.len() as u32 == desired && running_set.len() == running.len();
        let stable = self.stable_since(job.id, &running_set, now);
        if complete
            && !budget_spent
            && running_set != job.active_nodes
            && now.saturating_sub(stable) >= self.config.loops.period_ms
            && pass.chain_fresh
        {
            let nodes: Vec<Address> = running_set.into_iter().collect();
            self.vote_nodes(job.id, &nodes, "nodeset", pass).await;
        }
    }

    /// Places `replica` on `node` and deploys the generation serving it there.
    fn deploy(&self, job: u64, replica: u32, node: Address, rollout: &JobRollout, now: u64) {
        let Some(generation) = rollout.serving(replica) else {
            return;
        };
        let placement = Placement {
            job,
            replica,
            node,
            since_ms: now,
        };
        if let Err(e) = self.state.place(&placement) {
            tracing::warn!(job, replica, %node, error = %e, "cannot record placement");
            return;
        }
        tracing::info!(job, replica, %node, revision = generation.revision, "deploying replica");
        self.send_deploy(node, generation.workload(job, replica));
    }

    /// Stops every generation of `replica` this oracle knows on `node` and forgets the
    /// placement.
    fn stop(
        &self,
        job: u64,
        replica: u32,
        node: Address,
        reason: &str,
        rollout: &JobRollout,
        seen: &[Seen],
    ) {
        tracing::info!(job, replica, %node, reason, "stopping replica");
        let mut ids: BTreeSet<WorkloadId> = seen
            .iter()
            .filter(|s| {
                s.node == node
                    && split(s.report.id.replica).1 == replica
                    && rollout.role(s.report.id.replica) != Role::Foreign
            })
            .map(|s| s.report.id)
            .collect();
        ids.extend(rollout.serving(replica).map(|g| g.id(job, replica)));
        for id in ids {
            self.send_stop(node, id, reason);
        }
        if let Err(e) = self.state.unplace(job, replica, &node) {
            tracing::warn!(job, replica, %node, error = %e, "cannot forget placement");
        }
    }

    /// Stops every replica of `job` wherever a node reports or this oracle placed it (under
    /// every tag its rollout record knows).
    pub(crate) fn stop_everywhere(&self, job: u64, reason: &str, pass: &Pass) {
        let mut targets: BTreeSet<(u32, Address)> = pass
            .reports
            .get(&job)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let tags: Vec<u32> = match self.state.rollout(job) {
            Ok(Some(record)) => record
                .generations
                .values()
                .map(|g| g.tag)
                .chain(record.retired.iter().copied())
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!(job, error = %e, "cannot read the job's rollout");
                Vec::new()
            }
        };
        for placement in self.state.placements(job).unwrap_or_default() {
            for tag in &tags {
                targets.insert((workload_replica(*tag, placement.replica), placement.node));
            }
            if let Err(e) = self.state.unplace(job, placement.replica, &placement.node) {
                tracing::warn!(job, error = %e, "cannot forget placement");
            }
        }
        for (replica, node) in targets {
            tracing::info!(job, replica, %node, reason, "stopping workload");
            self.send_stop(node, WorkloadId { job, replica }, reason);
        }
    }
}

/// Status facts of a job this oracle keeps its hands off (see [`crate::oracle::rollout`]):
/// what the nodes report, whatever the revision.
fn observe_only(job: &ChainJob, desired: u32, seen: &[Seen], facts: &mut JobFacts<'_>) {
    let mut running: BTreeMap<u32, Address> = BTreeMap::new();
    let mut assignments = Vec::new();
    for s in seen.iter().filter(|s| s.current()) {
        let (_, replica) = split(s.report.id.replica);
        if replica >= desired {
            continue;
        }
        if s.report.state == WorkloadState::Running && s.report.healthy != Some(false) {
            running.entry(replica).or_insert(s.node);
        }
        assignments.push(ReplicaAssignment {
            replica,
            node: s.node.to_checksum(None),
            state: s.report.state.name().into(),
            since: None,
        });
    }
    assignments.sort_by(|a, b| a.replica.cmp(&b.replica).then(a.node.cmp(&b.node)));
    assignments.dedup_by(|a, b| a.replica == b.replica && a.node == b.node);
    facts.assignments = assignments;
    facts.healthy = running.len() as u32;
    let running_set: BTreeSet<Address> = running.values().copied().collect();
    facts.validated = !job.active_nodes.is_empty() && running_set == job.active_nodes;
}
