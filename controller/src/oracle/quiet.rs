//! Jobs left alone while nothing about them changes. A job whose visit found it settled —
//! running every replica it asks for, healthy and validated, with nothing to send, vote or
//! write — is not visited again until one of its inputs changes (its stored object, its
//! chain job, its replicas' reports or their nodes' liveness, its tunnel, the oracle's
//! broker link, the epoch) or [`QUIET_REVISIT_MS`] went by: at 1,000 steady jobs a pass had
//! spent a second reading and planning every one to conclude, each time, that nothing moves.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use alloy_primitives::Address;
use r1_crds::api::object::ObjectKey;
use r1_protocol::messages::WorkloadReport;

use crate::decide::liveness::NodeLiveness;
use crate::oracle::jobs::JobOutcome;

/// Longest a settled job goes unvisited, whatever its inputs (a guard: any input change brings
/// the visit at once); each job's turn falls at its own point of the next such span, so the
/// revisits of jobs settled together spread out.
pub const QUIET_REVISIT_MS: u64 = 60_000;

/// A digest of what a job's inputs are now: two equal digests, the same visit.
pub type Inputs = u64;

/// What the nodes report of each chain job this pass, digested: every (node, report, the
/// node's liveness), in any order.
#[derive(Debug, Default)]
pub struct ReportDigests {
    by_job: HashMap<u64, u64>,
}

impl ReportDigests {
    /// Adds `node`'s report of a workload of chain job `job`, the node being `liveness`.
    pub fn add(
        &mut self,
        job: u64,
        node: &Address,
        report: &WorkloadReport,
        liveness: NodeLiveness,
    ) {
        let digest = digest(&(node, report, liveness));
        let held = self.by_job.entry(job).or_default();
        *held = held.wrapping_add(digest);
    }

    /// The digest of chain job `job`'s reports (0 when no node reports it).
    pub fn of(&self, job: u64) -> u64 {
        self.by_job.get(&job).copied().unwrap_or(0)
    }
}

/// The digest of `value`.
pub fn digest(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// A job settled at its last visit: the inputs it had, what the visit found, and when it is
/// visited again anyway.
#[derive(Debug, Clone, Copy)]
struct Settled {
    inputs: Inputs,
    outcome: JobOutcome,
    revisit_ms: u64,
}

/// The jobs settled at their last visit.
#[derive(Debug, Default)]
pub struct QuietJobs {
    settled: Mutex<HashMap<ObjectKey, Settled>>,
}

impl QuietJobs {
    /// What the last visit of `key` found, when it was settled, its inputs are still `inputs`
    /// and its revisit is not due at `now_ms`: the visit may be skipped.
    pub fn unchanged(&self, key: &ObjectKey, inputs: Inputs, now_ms: u64) -> Option<JobOutcome> {
        let settled = self.lock().get(key).copied()?;
        (settled.inputs == inputs && now_ms < settled.revisit_ms).then_some(settled.outcome)
    }

    /// Records the visit of `key` with `inputs` at `now_ms`: a settled outcome is kept, any
    /// other forgets the job until a visit settles it.
    pub fn visited(&self, key: &ObjectKey, inputs: Inputs, outcome: JobOutcome, now_ms: u64) {
        let mut settled = self.lock();
        if outcome.settled && !outcome.wrote {
            let revisit_ms = now_ms + QUIET_REVISIT_MS + digest(key) % QUIET_REVISIT_MS;
            settled.insert(
                key.clone(),
                Settled {
                    inputs,
                    outcome,
                    revisit_ms,
                },
            );
        } else {
            settled.remove(key);
        }
    }

    /// Forgets the jobs not among `present` (deleted since).
    pub fn retain(&self, present: &HashSet<ObjectKey>) {
        self.lock().retain(|key, _| present.contains(key));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectKey, Settled>> {
        // Only a memo: a poisoned lock holds nothing a visit would not find again.
        self.settled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_crds::job::JobPhase;
    use r1_crds::manifest::Kind;
    use r1_protocol::messages::{WorkloadId, WorkloadState};

    fn outcome(settled: bool, wrote: bool) -> JobOutcome {
        JobOutcome {
            phase: JobPhase::Running,
            chain_job: Some(7),
            wrote,
            settled,
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(Kind::Job, "shop", name)
    }

    #[test]
    fn a_settled_job_is_skipped_until_its_inputs_change_or_its_revisit_is_due() {
        let quiet = QuietJobs::default();
        let web = key("web");
        assert!(quiet.unchanged(&web, 1, 0).is_none(), "never visited");
        quiet.visited(&web, 1, outcome(true, false), 1_000);
        let skipped = quiet.unchanged(&web, 1, 2_000);
        assert_eq!(skipped.map(|o| o.chain_job), Some(Some(7)));
        assert!(
            quiet.unchanged(&web, 2, 2_000).is_none(),
            "an input changed"
        );
        let revisit = 1_000 + QUIET_REVISIT_MS + digest(&web) % QUIET_REVISIT_MS;
        assert!(quiet.unchanged(&web, 1, revisit - 1).is_some());
        assert!(quiet.unchanged(&web, 1, revisit).is_none(), "revisit due");
        assert!(revisit < 1_000 + 2 * QUIET_REVISIT_MS);
    }

    #[test]
    fn only_a_visit_that_settled_and_wrote_nothing_is_kept() {
        let quiet = QuietJobs::default();
        let web = key("web");
        quiet.visited(&web, 1, outcome(true, true), 0);
        assert!(quiet.unchanged(&web, 1, 1).is_none(), "it wrote its status");
        quiet.visited(&web, 1, outcome(true, false), 0);
        quiet.visited(&web, 1, outcome(false, false), 1);
        assert!(quiet.unchanged(&web, 1, 2).is_none(), "moving again");
        quiet.visited(&web, 1, outcome(true, false), 2);
        quiet.visited(&key("api"), 1, outcome(true, false), 2);
        quiet.retain(&HashSet::from([key("api")]));
        assert!(quiet.unchanged(&web, 1, 3).is_none(), "deleted");
        assert!(quiet.unchanged(&key("api"), 1, 3).is_some());
    }

    #[test]
    fn report_digests_see_any_report_or_liveness_change_in_any_order() {
        let node = |b: u8| Address::repeat_byte(b);
        let report = |replica: u32, healthy: Option<bool>| WorkloadReport {
            id: WorkloadId { job: 7, replica },
            revision: "r1".into(),
            state: WorkloadState::Running,
            image_digest: None,
            ports: Vec::new(),
            healthy,
            tunnel: None,
        };
        let digests = |entries: &[(u8, WorkloadReport, NodeLiveness)]| {
            let mut d = ReportDigests::default();
            for (n, r, l) in entries {
                d.add(7, &node(*n), r, *l);
            }
            d.of(7)
        };
        let alive = NodeLiveness::Alive;
        let base = digests(&[
            (1, report(0, Some(true)), alive),
            (2, report(1, Some(true)), alive),
        ]);
        assert_ne!(base, 0);
        assert_eq!(
            base,
            digests(&[
                (2, report(1, Some(true)), alive),
                (1, report(0, Some(true)), alive)
            ])
        );
        assert_ne!(
            base,
            digests(&[
                (1, report(0, Some(false)), alive),
                (2, report(1, Some(true)), alive)
            ])
        );
        assert_ne!(
            base,
            digests(&[
                (1, report(0, Some(true)), NodeLiveness::Suspect),
                (2, report(1, Some(true)), alive)
            ])
        );
        assert_ne!(base, digests(&[(1, report(0, Some(true)), alive)]));
        assert_eq!(ReportDigests::default().of(7), 0);
    }
}
