//! The job loop's hands: for each DeeployJob, link it to its on-chain job, gather what the pass
//! needs (placements, reports, the rollout record), let [`crate::decide::job_pass`] decide,
//! carry the effects out (record placements, send deploys and stops), vote the node set when
//! the plan says so, and write the job's status ([`crate::decide::job_status`]).
//!
//! Each pass, the rollout comes first: a new revision in the spec begins one (with no replica
//! healthy to protect, the new generation simply replaces the old); a revision that failed is
//! not retried; a rollout under way finishes or rolls back before the next. The record is kept
//! in the state database, so a restarted oracle carries it on (see
//! [`crate::decide::job_rollout`]).

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::Address;
use r1_crds::TunnelSpec;
use r1_crds::api::object::{ObjectKey, StoredObject, timestamp_now};
use r1_crds::job::{DeeployJobSpec, DeeployJobStatus, JobPhase};
use r1_crds::manifest::Kind;
use r1_protocol::messages::{DeployCommand, StopCommand, WorkloadId, WorkloadReport, WorkloadSpec};

use crate::decide::chain_job::ChainJob;
use crate::decide::job_pass::{self, Effect, JobSummary, JobView};
use crate::decide::job_rollout::{JobRollout, RolloutCommand, Seen};
use crate::decide::job_status::{JobFacts, OnChain, job_status};
use crate::decide::liveness::BrokerLink;
use crate::decide::rollout::RolloutState;
use crate::decide::workload::WorkloadTemplate;
use crate::oracle::quiet::{Inputs, digest};
use crate::oracle::runtime::{Oracle, Pass};
use crate::oracle::secrets::{JobSecrets, open_inputs};

/// The longest a job's running set must hold still before it is voted (a loop period when
/// shorter): long enough to see a replica fail its start, short enough that a job is validated
/// seconds after it runs, not a production loop period (10 s) later.
const MAX_SETTLE_MS: u64 = 1_000;

/// What one job pass found, for the pass summary and metrics.
#[derive(Debug, Clone, Copy)]
pub struct JobOutcome {
    /// The phase written.
    pub phase: JobPhase,
    /// The on-chain job the resource is linked to, if any.
    pub chain_job: Option<u64>,
    /// Whether the pass wrote the job to the store (its status, or its deletion finalized).
    pub wrote: bool,
    /// Whether the job was settled: every replica it asks for running healthy and validated,
    /// no rollout under way, nothing sent, voted or due. Another visit with the same inputs
    /// would find the same (see [`crate::oracle::quiet`]).
    pub settled: bool,
}

impl Oracle {
    /// One pass over the job stored as `object`.
    pub(crate) async fn reconcile_job(&self, object: &StoredObject, pass: &Pass) -> JobOutcome {
        let key = object.key();
        let stored: Option<DeeployJobStatus> = object.status_as().ok().flatten();
        let previous = stored.clone().unwrap_or_default();
        let deleting = object.metadata.deletion_requested;
        let spec: Result<&DeeployJobSpec, String> = object
            .spec
            .job()
            .ok_or_else(|| format!("spec: a {} spec in a job", object.kind()));
        let template = spec
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|s| {
                let tunnel = self.tunnel_of(&key.namespace, s);
                WorkloadTemplate::of(s, tunnel.as_ref()).map_err(|e| e.to_string())
            })
            .and_then(|t| {
                if deleting || t.sealed().is_empty() {
                    return Ok(t);
                }
                // Secrets this oracle cannot open make the job invalid here, with the field.
                open_inputs(
                    self.sealer.identity(),
                    &key.namespace,
                    &t.spec().image,
                    t.sealed(),
                )
                .map(|_| t)
                .map_err(|e| e.to_string())
            });
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
                        wrote: true,
                        settled: false,
                    };
                }
                return self.write_status(&key, stored.as_ref(), &previous, &facts, false);
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
        let mut settled = false;
        match (pass.chain_fresh, chain_job, linked_id) {
            (true, Some(job), _) => {
                facts.chain = OnChain::Open(job);
                settled = self
                    .run_job(job, &key.namespace, &spec, &template, pass, &mut facts)
                    .await
                    && !deleting;
                if deleting {
                    pass.ballots.cast(job.id, &[], "close");
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
                        wrote: true,
                        settled: false,
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
                        wrote: true,
                        settled: false,
                    };
                }
            }
            (false, Some(job), _) => {
                // The chain is Unknown: keep what runs running, vote and close nothing.
                self.run_job(job, &key.namespace, &spec, &template, pass, &mut facts)
                    .await;
                facts.chain = OnChain::Unknown;
            }
            (false, None, _) => {}
        }
        self.write_status(&key, stored.as_ref(), &previous, &facts, settled)
    }

    /// What the visit of the job stored as `object` depends on this pass, digested: the
    /// object as written, its chain job, its replicas' reports and their nodes' liveness,
    /// its tunnel as written, the broker link, the epoch. A settled job whose inputs are
    /// unchanged need not be visited ([`crate::oracle::quiet`]).
    ///
    /// Whether this pass's chain read succeeded is left out: a settled job has nothing to vote
    /// or close, so a visit on the last snapshot finds it settled as before, only marking its
    /// status `ChainUnreachable`, which its revisit does once the outage outlasts a quiet span.
    /// With it in, every timed-out read (as at an epoch's end, under the allocation and the
    /// pages) sent every job through a visit on each pass the reads failed and two status
    /// writes (unreachable, then back).
    pub(crate) fn job_inputs(&self, object: &StoredObject, pass: &Pass) -> Inputs {
        let key = object.key();
        let project_hash =
            r1_contracts::project_hash(object.metadata.owner, &key.namespace, &key.name);
        let chain_job = pass
            .chain
            .as_ref()
            .and_then(|c| c.job_for(&object.metadata.owner, &project_hash));
        let tunnel_version = object
            .spec
            .job()
            .and_then(|spec| spec.tunnel_ref.as_ref())
            .map(|tunnel| {
                let key = ObjectKey::new(Kind::Tunnel, &key.namespace, &tunnel.name);
                self.store
                    .get(&key)
                    .ok()
                    .flatten()
                    .map(|t| t.metadata.resource_version)
            });
        digest(&(
            (&object.metadata.uid, object.metadata.resource_version),
            chain_job,
            chain_job.map(|job| pass.report_digests.of(job.id)),
            tunnel_version,
            pass.link,
            pass.chain.as_ref().map(|c| c.epoch),
        ))
    }

    /// The `Tunnel` the job's `tunnelRef` names, when it is stored.
    fn tunnel_of(&self, namespace: &str, spec: &DeeployJobSpec) -> Option<TunnelSpec> {
        let name = &spec.tunnel_ref.as_ref()?.name;
        let key = ObjectKey::new(Kind::Tunnel, namespace, name);
        match self.store.get(&key) {
            Ok(object) => object?.spec.tunnel().cloned(),
            Err(e) => {
                tracing::warn!(object = %key, error = %e, "cannot read the job's tunnel");
                None
            }
        }
    }

    fn finalize(&self, key: &ObjectKey) {
        match self.store.finalize_delete(key, None) {
            Ok(()) => tracing::info!(object = %key, "deletion finalized"),
            Err(e) => tracing::warn!(object = %key, error = %e, "cannot finalize deletion"),
        }
    }

    /// Writes the status `facts` make of `previous` unless it equals the `stored` one; the
    /// job's outcome for the pass.
    fn write_status(
        &self,
        key: &ObjectKey,
        stored: Option<&DeeployJobStatus>,
        previous: &DeeployJobStatus,
        facts: &JobFacts<'_>,
        settled: bool,
    ) -> JobOutcome {
        let status = job_status(previous, facts);
        let phase = status.phase.unwrap_or(JobPhase::Pending);
        let changed = stored.is_none_or(|old| *old != status);
        if changed && let Err(e) = self.store.update_status(key, None, &status) {
            tracing::warn!(object = %key, error = %e, "cannot write status");
        }
        JobOutcome {
            phase,
            chain_job: status
                .chain_job_id
                .as_deref()
                .and_then(|id| id.parse().ok()),
            wrote: changed,
            settled: settled && phase == JobPhase::Running,
        }
    }

    /// Rollout, availability (deploy, stop, move) and validation of one open chain job: gathers
    /// what the pass needs, lets [`job_pass::plan`] decide, and carries the effects out.
    /// Returns whether the job is settled ([`JobOutcome::settled`]).
    async fn run_job(
        &self,
        job: &ChainJob,
        namespace: &str,
        spec: &DeeployJobSpec,
        template: &WorkloadTemplate,
        pass: &Pass,
        facts: &mut JobFacts<'_>,
    ) -> bool {
        let now = pass.now_ms;
        let desired = job.nodes_requested.min(spec.replicas.max(1));
        let placements = self.state.placements(job.id).unwrap_or_else(|e| {
            tracing::warn!(job = job.id, error = %e, "cannot read placements");
            Vec::new()
        });
        let seen: Vec<Seen> = self
            .registry
            .lock()
            .await
            .reports_of(job.id)
            .into_iter()
            .map(|(node, report)| Seen {
                node,
                report: report.clone(),
                liveness: pass.liveness.of(&node),
            })
            .collect();

        let Some(mut rollout) = self.rollout_record(job.id, template, &seen, &job.active_nodes)
        else {
            record_summary(facts, job_pass::observe_only(job, desired, &seen));
            return false;
        };
        let recorded = rollout.clone();
        let rollout_commands =
            self.advance_rollout(job.id, &mut rollout, template, desired, &seen, pass);
        facts.rollout = Some(rollout.view());

        let stable = self.stable_of(job.id);
        let settle_ms = self.config.loops.period_ms.min(MAX_SETTLE_MS);
        let decided = job_pass::plan(&JobView {
            job,
            desired,
            demand: template.demand(),
            node_selector: template.node_selector(),
            seen: &seen,
            placements: &placements,
            liveness: &pass.liveness,
            rollout: &rollout,
            rollout_commands: &rollout_commands,
            candidates: &pass.candidates,
            budget_spent: pass
                .chain
                .as_ref()
                .is_some_and(|chain| chain.epoch > job.last_execution_epoch),
            chain_fresh: pass.chain_fresh,
            now_ms: now,
            start_grace_ms: self.config.loops.start_grace_seconds * 1000,
            settle_ms,
            stable: stable.as_ref(),
        });
        let node_keys = if JobSecrets::any(&rollout) {
            let registry = self.registry.lock().await;
            decided
                .effects
                .iter()
                .filter_map(|effect| match effect {
                    Effect::Deploy { node, .. } => {
                        registry.get(node).map(|r| (*node, r.public_key))
                    }
                    _ => None,
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let mut secrets = JobSecrets::new(
            self.sealer.identity(),
            namespace,
            job.id,
            &rollout,
            node_keys,
        );
        let settled = decided.effects.is_empty()
            && decided.vote.is_none()
            && decided.vote_due_ms.is_none()
            && rollout_commands.is_empty()
            && rollout == recorded
            && matches!(rollout.state, RolloutState::Stable { .. })
            && stable.as_ref() == Some(&decided.stable)
            && decided.summary.healthy == desired
            && decided.summary.validated;
        for effect in decided.effects {
            self.carry_out(job.id, effect, &mut secrets);
        }
        if let Some(due) = decided.vote_due_ms {
            self.pass_due_at(due);
        }
        self.keep_stable(job.id, decided.stable);
        record_summary(facts, decided.summary);
        facts.unplaceable = decided.unplaceable;
        if let Some(nodes) = decided.vote {
            pass.ballots.cast(job.id, &nodes, "nodeset");
        }
        settled
    }

    /// Carries out one effect of a job pass for on-chain job `job`; a deploy carries the
    /// secrets of its generation, sealed to its node, and is not sent when they cannot be.
    fn carry_out(&self, job: u64, effect: Effect, secrets: &mut JobSecrets<'_>) {
        match effect {
            Effect::Remember(placement) => {
                if let Err(e) = self.state.place(&placement) {
                    tracing::warn!(job, error = %e, "cannot record first sight");
                }
            }
            Effect::Restart(placement) => {
                if let Err(e) = self.state.replace(&placement) {
                    tracing::warn!(job, replica = placement.replica, error = %e, "cannot record placement");
                }
            }
            Effect::Deploy {
                node,
                mut workload,
                place,
            } => {
                match secrets.for_deploy(node, &workload) {
                    Ok(sealed) => workload.secrets = sealed,
                    Err(e) => {
                        tracing::warn!(job, replica = workload.id.replica, %node, error = %e, "cannot deliver the job's secrets; not deploying");
                        return;
                    }
                }
                if let Some(placement) = place {
                    if let Err(e) = self.state.place(&placement) {
                        tracing::warn!(job, replica = placement.replica, %node, error = %e, "cannot record placement");
                        return;
                    }
                    tracing::info!(job, replica = placement.replica, %node, revision = workload.revision, "deploying replica");
                }
                self.send_deploy(node, workload);
            }
            Effect::Stop { node, id, reason } => {
                tracing::info!(job, replica = id.replica, %node, reason, "stopping workload");
                self.send_stop(node, id, &reason);
            }
            Effect::Forget { replica, node } => {
                if let Err(e) = self.state.unplace(job, replica, &node) {
                    tracing::warn!(job, replica, %node, error = %e, "cannot forget placement");
                }
            }
        }
    }

    /// The rollout record of `job`, adopting `template` when there is none and nothing else
    /// of the job runs; `None` keeps this oracle's hands off the job this pass.
    fn rollout_record(
        &self,
        job: u64,
        template: &WorkloadTemplate,
        seen: &[Seen],
        roster: &BTreeSet<Address>,
    ) -> Option<JobRollout> {
        match self.state.rollout(job) {
            Ok(Some(record)) => Some(record),
            Ok(None) => {
                let Some(adopted) = JobRollout::adopt_unless_foreign(template, seen, roster) else {
                    tracing::info!(
                        job,
                        "nodes run revisions this oracle never saw; leaving the job to the others"
                    );
                    return None;
                };
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

    /// Advances the job's rollout (see [`JobRollout::advance`]) and records it when it moved.
    /// Nothing moves while this oracle's broker link is down (the reports are then stale).
    fn advance_rollout(
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
        let deadline_ms = self.config.loops.rollout_deadline_seconds * 1000;
        let commands = record.advance(template, replicas, &current, pass.now_ms, deadline_ms);
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
                targets.insert((
                    WorkloadId::of(job, *tag, placement.replica).replica,
                    placement.node,
                ));
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

/// The status facts a job pass summed up.
fn record_summary(facts: &mut JobFacts<'_>, summary: JobSummary) {
    facts.assignments = summary.assignments;
    facts.healthy = summary.healthy;
    facts.validated = summary.validated;
}
