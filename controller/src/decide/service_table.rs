//! The service table of a project (see [`r1_protocol::services`]): its jobs, the named TCP
//! ports each serves, every replica nodes report (ready when running and not unhealthy) and
//! which jobs may call each — as the project's network policy says, else every job of the
//! project; across projects never (a node routes only names of its workload's own project). And
//! when to send it again: at once when it changed or a recipient (re)started since (a node
//! agent keeps no table across a restart), else every [`RESEND_MS`] in case one was lost.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::Address;
use r1_crds::project::NetworkPolicy;
use r1_protocol::messages::{WorkloadReport, WorkloadState};
use r1_protocol::services::{MAX_JOBS, MAX_PORTS, MAX_REPLICAS, ProjectJob, Replica, ServicePort};

/// How often an unchanged table is sent again to nodes that did not restart. Every resend is
/// one signed message per replica's node: with 10 s, a thousand jobs' tables took a third of an
/// oracle's CPU.
pub const RESEND_MS: u64 = 60_000;

/// One job of a project as the table is made from it.
#[derive(Debug, Clone)]
pub struct JobFacts<'a> {
    /// Its name.
    pub name: String,
    /// Its job id on chain, once it has one.
    pub chain_job: Option<u64>,
    /// Its named TCP ports.
    pub ports: Vec<ServicePort>,
    /// The nodes' reports of its replicas.
    pub reports: Vec<(Address, &'a WorkloadReport)>,
}

/// The table's jobs: those with a chain id, sorted by name, each with its replicas sorted and
/// the jobs `policy` lets call it (every one without a policy).
pub fn project_jobs(jobs: &[JobFacts<'_>], policy: Option<&NetworkPolicy>) -> Vec<ProjectJob> {
    let callers_of = |served: &str| -> Vec<u64> {
        jobs.iter()
            .filter(|caller| policy.is_none_or(|p| p.allows(&caller.name, served)))
            .filter_map(|caller| caller.chain_job)
            .take(MAX_JOBS)
            .collect()
    };
    let mut table: Vec<ProjectJob> = jobs
        .iter()
        .filter_map(|job| {
            let chain_job = job.chain_job?;
            let mut replicas: Vec<Replica> = job
                .reports
                .iter()
                .filter(|(_, report)| report.id.job == chain_job)
                .map(|(node, report)| Replica {
                    node: *node,
                    workload: report.id,
                    ready: report.state == WorkloadState::Running && report.healthy != Some(false),
                })
                .collect();
            replicas.sort();
            replicas.dedup();
            replicas.truncate(MAX_REPLICAS);
            let mut ports = job.ports.clone();
            ports.truncate(MAX_PORTS);
            Some(ProjectJob {
                name: job.name.clone(),
                job: chain_job,
                ports,
                replicas,
                callers: callers_of(&job.name),
            })
        })
        .collect();
    table.sort_by(|a, b| a.name.cmp(&b.name));
    table.truncate(MAX_JOBS);
    table
}

/// The nodes a project's table goes to: every node running one of its replicas.
pub fn recipients(jobs: &[ProjectJob]) -> BTreeSet<Address> {
    jobs.iter()
        .flat_map(|job| job.replicas.iter().map(|r| r.node))
        .collect()
}

/// A project's table as last sent: its jobs, the nodes it went to, when, and a digest of the
/// inputs it was made from (the caller's: its jobs, their reports, the project's policy).
#[derive(Debug)]
struct Sent {
    jobs: Vec<ProjectJob>,
    nodes: BTreeSet<Address>,
    at_ms: u64,
    inputs: u64,
}

impl Sent {
    /// Whether it is due again at `now_ms`: a resend, or a recipient (re)started since.
    fn due_again(&self, now_ms: u64, started_ms: impl Fn(&Address) -> Option<u64>) -> bool {
        now_ms.saturating_sub(self.at_ms) >= RESEND_MS
            || self
                .nodes
                .iter()
                .any(|n| started_ms(n).is_some_and(|s| s > self.at_ms))
    }
}

/// What was last sent of each project, to decide when to send again, and from which inputs,
/// so that a project whose inputs did not change is not made again (a thousand jobs' tables
/// made every pass were a third of a pass).
#[derive(Debug, Default)]
pub struct TableSchedule {
    last: BTreeMap<String, Sent>,
}

/// Whether a project's table, made from inputs it was last sent from, goes out again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Not now.
    NotDue,
    /// Now: these jobs, to these nodes (what was sent last).
    Resend(Vec<ProjectJob>, BTreeSet<Address>),
}

impl TableSchedule {
    /// When `project`'s table was last sent from the same `inputs` (its table is then the one
    /// sent): whether it goes out again at `now_ms`. `None` when the inputs changed (or it
    /// was never sent) and the table must be made again; `started_ms` tells when a node's
    /// agent last started, as its heartbeats say.
    pub fn settled(
        &self,
        project: &str,
        inputs: u64,
        now_ms: u64,
        started_ms: impl Fn(&Address) -> Option<u64>,
    ) -> Option<Settled> {
        let sent = self.last.get(project).filter(|s| s.inputs == inputs)?;
        Some(if sent.due_again(now_ms, started_ms) {
            Settled::Resend(sent.jobs.clone(), sent.nodes.clone())
        } else {
            Settled::NotDue
        })
    }

    /// Whether `project`'s table with `jobs` going to `nodes` is due at `now_ms`;
    /// `started_ms` tells when a node's agent last started, as its heartbeats say.
    pub fn due(
        &self,
        project: &str,
        jobs: &[ProjectJob],
        nodes: &BTreeSet<Address>,
        now_ms: u64,
        started_ms: impl Fn(&Address) -> Option<u64>,
    ) -> bool {
        match self.last.get(project) {
            Some(sent) => {
                sent.jobs != jobs || sent.nodes != *nodes || sent.due_again(now_ms, started_ms)
            }
            None => !nodes.is_empty(),
        }
    }

    /// Records that `project`'s table, made from `inputs`, went out at `now_ms`.
    pub fn sent(
        &mut self,
        project: &str,
        jobs: Vec<ProjectJob>,
        nodes: BTreeSet<Address>,
        now_ms: u64,
        inputs: u64,
    ) {
        self.last.insert(
            project.to_owned(),
            Sent {
                jobs,
                nodes,
                at_ms: now_ms,
                inputs,
            },
        );
    }

    /// Records that `project`'s table made from `inputs` is the one last sent (it was not due).
    pub fn same_table(&mut self, project: &str, inputs: u64) {
        if let Some(sent) = self.last.get_mut(project) {
            sent.inputs = inputs;
        }
    }

    /// Forgets the projects not in `live`.
    pub fn retain(&mut self, live: &BTreeSet<String>) {
        self.last.retain(|project, _| live.contains(project));
    }
}

#[cfg(test)]
mod tests {
    use r1_protocol::messages::WorkloadId;

    use super::*;

    fn never(_: &Address) -> Option<u64> {
        None
    }

    fn report(job: u64, index: u32, state: WorkloadState, healthy: Option<bool>) -> WorkloadReport {
        WorkloadReport {
            id: WorkloadId::of(job, 1, index),
            revision: "r".into(),
            state,
            image_digest: None,
            ports: vec![],
            healthy,
            tunnel: None,
        }
    }

    #[test]
    fn every_job_with_a_chain_id_is_listed_with_its_replicas_and_readiness() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let api = [
            report(7, 0, WorkloadState::Running, Some(true)),
            report(7, 1, WorkloadState::Running, Some(false)),
            report(7, 2, WorkloadState::Starting, None),
        ];
        let web = [report(8, 0, WorkloadState::Running, None)];
        let jobs = [
            JobFacts {
                name: "web".into(),
                chain_job: Some(8),
                ports: vec![],
                reports: vec![(b, &web[0])],
            },
            JobFacts {
                name: "api".into(),
                chain_job: Some(7),
                ports: vec![ServicePort {
                    name: "http".into(),
                    port: 9000,
                }],
                reports: vec![(a, &api[0]), (b, &api[1]), (a, &api[2])],
            },
            JobFacts {
                name: "pending".into(),
                chain_job: None,
                ports: vec![],
                reports: vec![],
            },
        ];
        let table = project_jobs(&jobs, None);
        assert_eq!(
            table.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
            ["api", "web"]
        );
        let ready: Vec<bool> = table[0].replicas.iter().map(|r| r.ready).collect();
        assert_eq!(ready, [true, false, false]);
        assert_eq!(table[0].callers, [8, 7]);
        assert_eq!(recipients(&table), BTreeSet::from([a, b]));
        let policy = NetworkPolicy {
            allow: vec![r1_crds::project::CallRule {
                from: vec!["web".into()],
                to: vec!["api".into()],
            }],
        };
        let table = project_jobs(&jobs, Some(&policy));
        assert_eq!(table[0].callers, [8], "only web may call api");
        assert!(table[1].callers.is_empty(), "nobody may call web");
    }

    #[test]
    fn a_table_is_sent_when_it_changed_or_is_due() {
        let mut schedule = TableSchedule::default();
        let nodes = BTreeSet::from([Address::repeat_byte(1)]);
        let jobs = vec![];
        assert!(schedule.due("p", &jobs, &nodes, 0, never));
        assert!(
            !schedule.due("p", &jobs, &BTreeSet::new(), 0, never),
            "nobody to send it to"
        );
        schedule.sent("p", jobs.clone(), nodes.clone(), 0, 11);
        assert!(!schedule.due("p", &jobs, &nodes, RESEND_MS - 1, never));
        assert!(schedule.due("p", &jobs, &nodes, RESEND_MS, never));
        let more = BTreeSet::from([Address::repeat_byte(1), Address::repeat_byte(2)]);
        assert!(
            schedule.due("p", &jobs, &more, 1, never),
            "a new node gets it at once"
        );
        let restarted_at_5 = |_: &Address| Some(5);
        assert!(
            !schedule.due("p", &jobs, &nodes, 4, |_: &Address| Some(0)),
            "an agent running since before the send has it"
        );
        assert!(
            schedule.due("p", &jobs, &nodes, 6, restarted_at_5),
            "an agent that restarted since lost it"
        );
        schedule.retain(&BTreeSet::new());
        assert!(schedule.last.is_empty());
    }

    #[test]
    fn a_table_from_the_inputs_it_was_sent_from_is_not_made_again_yet_goes_out_when_due() {
        let mut schedule = TableSchedule::default();
        let nodes = BTreeSet::from([Address::repeat_byte(1)]);
        let jobs = project_jobs(
            &[JobFacts {
                name: "web".into(),
                chain_job: Some(8),
                ports: vec![],
                reports: vec![],
            }],
            None,
        );
        assert_eq!(schedule.settled("p", 11, 0, never), None, "never sent");
        schedule.sent("p", jobs.clone(), nodes.clone(), 0, 11);
        assert_eq!(schedule.settled("p", 12, 1, never), None, "inputs changed");
        assert_eq!(schedule.settled("p", 11, 1, never), Some(Settled::NotDue));
        assert_eq!(
            schedule.settled("p", 11, RESEND_MS, never),
            Some(Settled::Resend(jobs.clone(), nodes.clone())),
            "resent as it was"
        );
        assert_eq!(
            schedule.settled("p", 11, 6, |_: &Address| Some(5)),
            Some(Settled::Resend(jobs.clone(), nodes.clone())),
            "an agent that restarted since lost it"
        );
        schedule.same_table("p", 12);
        assert_eq!(
            schedule.settled("p", 12, 1, never),
            Some(Settled::NotDue),
            "new inputs that made the same table"
        );
        assert_eq!(schedule.settled("p", 11, 1, never), None);
    }
}
