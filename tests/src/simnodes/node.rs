//! One simulated node's state, without I/O: the workloads it was told to run (each reported
//! running at once, as if its container started), the heartbeat it would send now, and what a
//! verified command changes. The fleet ([`super`]) drives it from the broker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use r1_protocol::messages::{
    DeployCommand, Heartbeat, JobStatusReport, NodeResources, Resources, StopCommand, WorkloadId,
    WorkloadReport, WorkloadSpec, WorkloadState,
};

/// What every simulated node offers: a mid-sized machine (8 cores, 32 GiB, 500 GB disk).
pub const CAPACITY: Resources = Resources {
    cpu_millis: 8_000,
    memory_bytes: 32 << 30,
    disk_bytes: 500_000_000_000,
    gpu: 0,
};

/// A simulated node's workloads and the facts its heartbeats carry.
#[derive(Debug)]
pub struct SimNode {
    alias: String,
    started: Instant,
    running: BTreeMap<WorkloadId, WorkloadSpec>,
}

impl SimNode {
    /// A node named `alias` running nothing.
    pub fn new(alias: String) -> Self {
        Self {
            alias,
            started: Instant::now(),
            running: BTreeMap::new(),
        }
    }

    /// Obeys a deploy: the workload runs (replacing another revision of it); returns the
    /// status report a real node sends once its container started, or nothing when that
    /// revision already ran.
    pub fn deploy(&mut self, command: DeployCommand) -> Option<JobStatusReport> {
        let spec = command.workload;
        if self
            .running
            .get(&spec.id)
            .is_some_and(|old| old.revision == spec.revision)
        {
            return None;
        }
        let report = report_of(&spec);
        self.running.insert(spec.id, spec);
        Some(JobStatusReport {
            workload: report,
            message: String::new(),
        })
    }

    /// Obeys a stop: the workload is gone; returns the report a real node sends, or nothing
    /// when it did not run.
    pub fn stop(&mut self, command: &StopCommand) -> Option<JobStatusReport> {
        self.running.remove(&command.workload)?;
        Some(JobStatusReport::removed(command.workload))
    }

    /// The workloads it runs.
    pub fn running(&self) -> impl Iterator<Item = &WorkloadId> {
        self.running.keys()
    }

    /// The heartbeat it sends now, announcing `interval`.
    pub fn heartbeat(&self, interval: Duration) -> Heartbeat {
        let used = self.running.values().fold(Resources::default(), |sum, w| {
            sum.plus(&Resources {
                cpu_millis: w.cpu_millis,
                memory_bytes: w.memory_bytes,
                disk_bytes: 0,
                gpu: w.gpu,
            })
        });
        Heartbeat {
            alias: self.alias.clone(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            p2p_addrs: Vec::new(),
            version: "simulated".into(),
            uptime_s: self.started.elapsed().as_secs(),
            resources: NodeResources {
                total: CAPACITY,
                free: CAPACITY.minus(&used),
                gpu_model: None,
            },
            labels: BTreeMap::new(),
            workloads: self.running.values().map(report_of).collect(),
            retired_logs: Vec::new(),
        }
    }
}

/// A workload as a node reports it once its container runs and passes its health check.
fn report_of(spec: &WorkloadSpec) -> WorkloadReport {
    WorkloadReport {
        id: spec.id,
        revision: spec.revision.clone(),
        state: WorkloadState::Running,
        image_digest: None,
        ports: spec.ports.clone(),
        healthy: spec.health.as_ref().map(|_| true),
        tunnel: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_protocol::Address;

    fn spec(job: u64, revision: &str) -> WorkloadSpec {
        WorkloadSpec {
            revision: revision.into(),
            ..crate::node::workload(job, 0, "busybox", 64)
        }
    }

    #[test]
    fn a_deploy_runs_once_per_revision_and_a_stop_removes_it() {
        let mut node = SimNode::new("sim-0".into());
        let target = Address::ZERO;
        let first = node.deploy(DeployCommand {
            target,
            workload: spec(7, "a"),
        });
        assert_eq!(
            first.map(|r| r.workload.state),
            Some(WorkloadState::Running)
        );
        assert!(
            node.deploy(DeployCommand {
                target,
                workload: spec(7, "a"),
            })
            .is_none()
        );
        let replaced = node.deploy(DeployCommand {
            target,
            workload: spec(7, "b"),
        });
        assert_eq!(replaced.map(|r| r.workload.revision), Some("b".into()));
        let beat = node.heartbeat(Duration::from_secs(10));
        assert_eq!(beat.workloads.len(), 1);
        assert_eq!(beat.interval_ms, 10_000);
        assert_eq!(
            beat.resources.free.memory_bytes,
            CAPACITY.memory_bytes - (64 << 20)
        );
        let stop = StopCommand {
            target,
            workload: WorkloadId { job: 7, replica: 0 },
            reason: "job closed".into(),
        };
        assert_eq!(
            node.stop(&stop).map(|r| r.workload.revision),
            Some(String::new())
        );
        assert!(node.stop(&stop).is_none());
        assert_eq!(node.heartbeat(Duration::from_secs(10)).workloads.len(), 0);
        assert_eq!(
            node.heartbeat(Duration::from_secs(10)).resources.free,
            CAPACITY
        );
    }
}
