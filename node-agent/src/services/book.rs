//! The service tables this node holds, the newest of each project, and what they allow: which
//! services a local workload may call and where their ready replicas are, and whether a call
//! that arrives from another node may reach a local workload. Pure.

use std::collections::BTreeMap;

use r1_protocol::Address;
use r1_protocol::messages::WorkloadId;
use r1_protocol::services::{ProjectJob, Replica, ServiceTable};

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallRefused {
    /// No table lists the target workload's job.
    #[error("no project on this node serves job {0}")]
    UnknownTarget(u64),
    /// The target job does not serve the port.
    #[error("job {job} serves no port {port}")]
    NoSuchPort {
        /// The target job.
        job: u64,
        /// The port asked for.
        port: u16,
    },
    /// The target is not one of the job's replicas here.
    #[error("workload {0:?} is no replica of its job on this node")]
    NotHere(WorkloadId),
    /// The caller is no replica of a job of the target's project on the node it came from.
    #[error("the caller {0:?} is not a replica of the project on the node that called")]
    Stranger(WorkloadId),
    /// The project's policy does not let the caller's job call the target's.
    #[error("job {caller} may not call job {target}")]
    NotAllowed {
        /// The caller's job.
        caller: u64,
        /// The target's job.
        target: u64,
    },
}

/// The newest service table of each project.
#[derive(Debug, Default, Clone)]
pub struct ServiceBook {
    tables: BTreeMap<String, ServiceTable>,
}

impl ServiceBook {
    /// Takes `table` when it is newer than the one held for its project; whether it did.
    pub fn offer(&mut self, table: ServiceTable) -> bool {
        match self.tables.get(&table.project) {
            Some(held) if held.issued_ms >= table.issued_ms => false,
            _ => {
                self.tables.insert(table.project.clone(), table);
                true
            }
        }
    }

    /// The table of the project job `job` belongs to, and the job's entry in it.
    pub fn job(&self, job: u64) -> Option<(&ServiceTable, &ProjectJob)> {
        self.tables
            .values()
            .find_map(|t| t.jobs.iter().find(|j| j.job == job).map(|j| (t, j)))
    }

    /// The services a replica of job `caller` may call: its project's jobs with ports whose
    /// callers include it, with the project's domain.
    pub fn callable_by(&self, caller: u64) -> Vec<(&str, &ProjectJob)> {
        let Some((table, _)) = self.job(caller) else {
            return Vec::new();
        };
        table
            .jobs
            .iter()
            .filter(|j| !j.ports.is_empty() && j.callers.contains(&caller))
            .map(|j| (table.domain.as_str(), j))
            .collect()
    }

    /// The ready replicas of job `job`.
    pub fn ready(&self, job: u64) -> Vec<Replica> {
        self.job(job)
            .map(|(_, j)| j.replicas.iter().filter(|r| r.ready).copied().collect())
            .unwrap_or_default()
    }

    /// Whether `caller`, on node `from`, may reach `port` of `target`, a replica of its job on
    /// node `me`.
    pub fn admit(
        &self,
        me: Address,
        from: Address,
        caller: WorkloadId,
        target: WorkloadId,
        port: u16,
    ) -> Result<(), CallRefused> {
        let (table, served) = self
            .job(target.job)
            .ok_or(CallRefused::UnknownTarget(target.job))?;
        if !served.ports.iter().any(|p| p.port == port) {
            return Err(CallRefused::NoSuchPort {
                job: target.job,
                port,
            });
        }
        if !served
            .replicas
            .iter()
            .any(|r| r.node == me && r.workload == target)
        {
            return Err(CallRefused::NotHere(target));
        }
        let caller_job = table
            .jobs
            .iter()
            .find(|j| j.job == caller.job)
            .filter(|j| {
                j.replicas
                    .iter()
                    .any(|r| r.node == from && r.workload == caller)
            })
            .ok_or(CallRefused::Stranger(caller))?;
        if !served.callers.contains(&caller_job.job) {
            return Err(CallRefused::NotAllowed {
                caller: caller.job,
                target: target.job,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use r1_protocol::services::ServicePort;

    use super::*;

    const ME: Address = Address::repeat_byte(1);
    const PEER: Address = Address::repeat_byte(2);

    fn replica(node: Address, job: u64, index: u32, ready: bool) -> Replica {
        Replica {
            node,
            workload: WorkloadId::of(job, 1, index),
            ready,
        }
    }

    fn table(project: &str, issued_ms: u64, jobs: Vec<ProjectJob>) -> ServiceTable {
        ServiceTable {
            target: ME,
            project: project.into(),
            domain: format!("{project}.internal"),
            issued_ms,
            jobs,
        }
    }

    fn shop(issued_ms: u64) -> ServiceTable {
        table(
            "shop",
            issued_ms,
            vec![
                ProjectJob {
                    name: "api".into(),
                    job: 7,
                    ports: vec![ServicePort {
                        name: "http".into(),
                        port: 9000,
                    }],
                    replicas: vec![replica(ME, 7, 0, true), replica(PEER, 7, 1, false)],
                    callers: vec![8],
                },
                ProjectJob {
                    name: "web".into(),
                    job: 8,
                    ports: vec![],
                    replicas: vec![replica(PEER, 8, 0, true)],
                    callers: vec![7, 8],
                },
            ],
        )
    }

    #[test]
    fn the_newest_table_of_a_project_is_kept() {
        let mut book = ServiceBook::default();
        assert!(book.offer(shop(5)));
        assert!(!book.offer(shop(5)));
        assert!(!book.offer(shop(4)));
        assert!(book.offer(shop(6)));
        assert_eq!(book.job(7).map(|(t, _)| t.issued_ms), Some(6));
    }

    #[test]
    fn a_replica_calls_what_its_project_lets_it_and_sees_ready_replicas() {
        let mut book = ServiceBook::default();
        book.offer(shop(1));
        let names: Vec<&str> = book
            .callable_by(8)
            .iter()
            .map(|(_, j)| j.name.as_str())
            .collect();
        assert_eq!(names, ["api"]);
        assert!(
            book.callable_by(7).is_empty(),
            "api may not call itself here"
        );
        assert!(book.callable_by(99).is_empty());
        assert_eq!(book.ready(7), vec![replica(ME, 7, 0, true)]);
    }

    #[test]
    fn calls_from_strangers_other_projects_or_to_other_ports_are_refused() {
        let mut book = ServiceBook::default();
        book.offer(shop(1));
        book.offer(table(
            "other",
            1,
            vec![ProjectJob {
                name: "spy".into(),
                job: 50,
                ports: vec![],
                replicas: vec![replica(PEER, 50, 0, true)],
                callers: vec![50],
            }],
        ));
        let web = WorkloadId::of(8, 1, 0);
        let api = WorkloadId::of(7, 1, 0);
        assert_eq!(book.admit(ME, PEER, web, api, 9000), Ok(()));
        assert_eq!(
            book.admit(ME, PEER, web, api, 22),
            Err(CallRefused::NoSuchPort { job: 7, port: 22 })
        );
        assert_eq!(
            book.admit(ME, ME, web, api, 9000),
            Err(CallRefused::Stranger(web)),
            "web does not run on this node"
        );
        let spy = WorkloadId::of(50, 1, 0);
        assert_eq!(
            book.admit(ME, PEER, spy, api, 9000),
            Err(CallRefused::Stranger(spy)),
            "another project's replica"
        );
        let elsewhere = WorkloadId::of(7, 1, 1);
        assert_eq!(
            book.admit(ME, PEER, web, elsewhere, 9000),
            Err(CallRefused::NotHere(elsewhere))
        );
        assert_eq!(
            book.admit(ME, PEER, web, WorkloadId::of(9, 1, 0), 9000),
            Err(CallRefused::UnknownTarget(9))
        );
    }
}
