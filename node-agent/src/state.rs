//! What the agent's tasks share: the desired workloads (a copy of the store's), each
//! workload's last reported state, where each container runs, and a bell that wakes the
//! supervisor when a command changed something.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use r1_protocol::messages::{WorkloadId, WorkloadReport};
use tokio::sync::Notify;

use crate::ports::PidTable;
use crate::store::DesiredWorkload;

/// State shared by the supervisor, the command handler, the heartbeat and the API.
#[derive(Default)]
pub struct NodeState {
    desired: RwLock<BTreeMap<WorkloadId, DesiredWorkload>>,
    reports: RwLock<BTreeMap<WorkloadId, WorkloadReport>>,
    /// Init pid of each running workload's container.
    pub pids: PidTable,
    /// Rung when the desired set changed.
    pub wake: Notify,
    broker_connected: AtomicBool,
    licence: Mutex<String>,
}

impl NodeState {
    /// State starting from the stored desired set.
    pub fn new(desired: BTreeMap<WorkloadId, DesiredWorkload>) -> Arc<Self> {
        Arc::new(Self {
            desired: RwLock::new(desired),
            pids: Arc::new(Mutex::new(BTreeMap::new())),
            ..Default::default()
        })
    }

    /// A copy of the desired set.
    pub fn desired(&self) -> BTreeMap<WorkloadId, DesiredWorkload> {
        self.desired.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// One desired workload.
    pub fn desired_one(&self, id: WorkloadId) -> Option<DesiredWorkload> {
        self.desired.read().ok().and_then(|d| d.get(&id).cloned())
    }

    /// Sets (or, with `None`, removes) one desired workload and wakes the supervisor.
    pub fn set_desired(&self, id: WorkloadId, workload: Option<DesiredWorkload>) {
        if let Ok(mut desired) = self.desired.write() {
            match workload {
                Some(w) => desired.insert(id, w),
                None => desired.remove(&id),
            };
        }
        self.wake.notify_one();
    }

    /// The last report of every workload.
    pub fn reports(&self) -> BTreeMap<WorkloadId, WorkloadReport> {
        self.reports.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Replaces the reports; returns those that changed (new, or a different state, digest,
    /// ports or health), for status messages.
    pub fn replace_reports(
        &self,
        reports: BTreeMap<WorkloadId, WorkloadReport>,
    ) -> Vec<WorkloadReport> {
        let Ok(mut current) = self.reports.write() else {
            return Vec::new();
        };
        let changed = reports
            .values()
            .filter(|r| current.get(&r.id) != Some(*r))
            .cloned()
            .collect();
        *current = reports;
        changed
    }

    /// Whether the broker connection is up.
    pub fn broker_connected(&self) -> bool {
        self.broker_connected.load(Ordering::Relaxed)
    }

    /// Records the broker connection state.
    pub fn set_broker_connected(&self, up: bool) {
        self.broker_connected.store(up, Ordering::Relaxed);
    }

    /// What the chain last said of the node's licence (empty: the node reads no chain).
    pub fn licence(&self) -> String {
        self.licence.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Records what the chain says of the node's licence.
    pub fn set_licence(&self, standing: String) {
        if let Ok(mut licence) = self.licence.lock() {
            *licence = standing;
        }
    }
}
