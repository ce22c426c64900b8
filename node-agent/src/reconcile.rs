//! What to do to make containerd run exactly the desired workloads: the pure decision, from
//! the desired set, the containers observed in containerd and each workload's crash history.
//! The supervisor observes, calls [`plan`], and carries the actions out; on every pass, so a
//! missed event or an agent restart changes nothing about the outcome.

use std::collections::{BTreeMap, BTreeSet};

use r1_protocol::messages::{WorkloadId, WorkloadState};
use sha2::{Digest, Sha256};

/// The state of a container's task as containerd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// No task: created but never started, or its task was deleted.
    Absent,
    /// Created, not yet started.
    Created,
    /// Running with this pid.
    Running {
        /// Pid of the init process on the host.
        pid: u32,
    },
    /// Exited with this status.
    Stopped {
        /// Exit status (128 + signal when killed).
        exit_status: u32,
    },
    /// Paused or in a transition the agent does not drive.
    Other,
}

/// An r1 container found in containerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Container id.
    pub container: String,
    /// The workload its label names, when the label parses.
    pub workload: Option<WorkloadId>,
    /// Its task.
    pub task: TaskState,
}

/// The container id of a workload at a revision: `r1-<job>-<replica>-<12 hex of the
/// revision's hash>`. A new revision gets a new container, so the old one is recognisably
/// unwanted.
pub fn container_id(id: WorkloadId, revision: &str) -> String {
    let hash = Sha256::digest(revision.as_bytes());
    let short = r1_protocol::hex::encode_bare(&hash[..6]);
    format!("r1-{}-{}-{short}", id.job, id.replica)
}

/// The workload a container id of [`container_id`] belongs to.
pub fn container_workload(container: &str) -> Option<WorkloadId> {
    let mut parts = container.strip_prefix("r1-")?.split('-');
    let (job, replica, short) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = short.len() == 12 && short.bytes().all(|b| b.is_ascii_hexdigit());
    if parts.next().is_some() || !hex {
        return None;
    }
    Some(WorkloadId {
        job: job.parse().ok()?,
        replica: replica.parse().ok()?,
    })
}

/// The value of the workload label: `<job>/<replica>`.
pub fn workload_label(id: WorkloadId) -> String {
    format!("{}/{}", id.job, id.replica)
}

/// Reads a workload label back.
pub fn parse_workload_label(value: &str) -> Option<WorkloadId> {
    let (job, replica) = value.split_once('/')?;
    Some(WorkloadId {
        job: job.parse().ok()?,
        replica: replica.parse().ok()?,
    })
}

/// Restart delays: doubling from `initial_ms` up to `max_ms`; a run longer than
/// `reset_after_ms` forgets earlier crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial_ms: u64,
    /// Longest delay.
    pub max_ms: u64,
    /// A run this long resets the count.
    pub reset_after_ms: u64,
}

impl Default for Backoff {
    /// The reference's values: 2 s doubling to 60 s, reset after 5 minutes of running.
    fn default() -> Self {
        Self {
            initial_ms: 2_000,
            max_ms: 60_000,
            reset_after_ms: 300_000,
        }
    }
}

impl Backoff {
    /// The delay before restart number `restarts` (1 for the first).
    pub fn delay_ms(&self, restarts: u32) -> u64 {
        let doublings = restarts.saturating_sub(1).min(63);
        self.initial_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_ms)
    }
}

/// A workload's crash history, kept by the supervisor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Crashes {
    /// Restarts since the last long-enough run.
    pub restarts: u32,
    /// Exit status of the last run.
    pub last_exit: Option<u32>,
    /// Whether the last run was killed by the OOM killer.
    pub last_oom: bool,
    /// Not before this time (ms) may the next start happen.
    pub next_start_ms: u64,
    /// When the current run was first seen running.
    pub running_since_ms: Option<u64>,
    /// The last failure to create or start, for reports.
    pub failure: Option<String>,
}

impl Crashes {
    /// Records a run that ended with `exit_status` at `now_ms`.
    pub fn exited(&mut self, exit_status: u32, oom: bool, now_ms: u64, backoff: &Backoff) {
        self.restarts = self.restarts.saturating_add(1);
        self.last_exit = Some(exit_status);
        self.last_oom = oom;
        self.running_since_ms = None;
        self.next_start_ms = now_ms.saturating_add(backoff.delay_ms(self.restarts));
    }

    /// Records that creating or starting failed with `reason` at `now_ms`.
    pub fn failed(&mut self, reason: String, now_ms: u64, backoff: &Backoff) {
        self.restarts = self.restarts.saturating_add(1);
        self.failure = Some(reason);
        self.next_start_ms = now_ms.saturating_add(backoff.delay_ms(self.restarts));
    }

    /// Records that the task is seen running at `now_ms`; a long enough run clears the history.
    pub fn running(&mut self, now_ms: u64, backoff: &Backoff) {
        self.failure = None;
        let since = *self.running_since_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) >= backoff.reset_after_ms {
            self.restarts = 0;
            self.last_oom = false;
        }
    }
}

/// One step towards the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop and delete a container nobody wants (a stopped workload, an old revision, a
    /// duplicate).
    Remove {
        /// Container id.
        container: String,
    },
    /// Create the workload's container and start it.
    Create {
        /// The workload.
        workload: WorkloadId,
    },
    /// Start the task of an existing container that has none running (never started, or its
    /// task was lost with a containerd restart).
    Start {
        /// The workload.
        workload: WorkloadId,
    },
    /// Delete the exited task and start a new one, after the backoff.
    Restart {
        /// The workload.
        workload: WorkloadId,
    },
}

/// The actions that bring `observed` to `desired` (workload → wanted container id) at
/// `now_ms`. Removals come first; the supervisor carries them out in the background.
pub fn plan(
    desired: &BTreeMap<WorkloadId, String>,
    observed: &[Observed],
    crashes: &BTreeMap<WorkloadId, Crashes>,
    now_ms: u64,
) -> Vec<Action> {
    let wanted: BTreeSet<&str> = desired.values().map(String::as_str).collect();
    let mut removals = Vec::new();
    let mut found: BTreeMap<&str, &Observed> = BTreeMap::new();
    for container in observed {
        if wanted.contains(container.container.as_str()) {
            found.insert(container.container.as_str(), container);
        } else {
            removals.push(Action::Remove {
                container: container.container.clone(),
            });
        }
    }
    let mut starts = Vec::new();
    for (&workload, container) in desired {
        let due = crashes
            .get(&workload)
            .is_none_or(|c| c.next_start_ms <= now_ms);
        match found.get(container.as_str()).map(|o| o.task) {
            None if due => starts.push(Action::Create { workload }),
            Some(TaskState::Absent | TaskState::Created) if due => {
                starts.push(Action::Start { workload })
            }
            Some(TaskState::Stopped { .. }) if due => starts.push(Action::Restart { workload }),
            _ => {}
        }
    }
    removals.extend(starts);
    removals
}

/// What a workload is doing, for heartbeats and status reports.
pub fn workload_state(task: Option<TaskState>, crashes: Option<&Crashes>) -> WorkloadState {
    let history = crashes.cloned().unwrap_or_default();
    match task {
        Some(TaskState::Running { .. }) => WorkloadState::Running,
        Some(TaskState::Stopped { exit_status }) => WorkloadState::Restarting {
            restarts: history.restarts,
            last_exit_code: i32::try_from(exit_status).unwrap_or(i32::MAX),
            reason: restart_reason(&history),
        },
        _ => match (&history.failure, history.last_exit) {
            (Some(reason), _) => WorkloadState::Failed {
                reason: reason.clone(),
            },
            (None, Some(exit)) => WorkloadState::Restarting {
                restarts: history.restarts,
                last_exit_code: i32::try_from(exit).unwrap_or(i32::MAX),
                reason: restart_reason(&history),
            },
            (None, None) => WorkloadState::Starting,
        },
    }
}

fn restart_reason(history: &Crashes) -> Option<String> {
    history.last_oom.then(|| "OOMKilled".to_owned())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(job: u64, replica: u32) -> WorkloadId {
        WorkloadId { job, replica }
    }

    proptest! {
        #[test]
        fn a_container_id_names_its_workload(job: u64, replica: u32, revision: String) {
            let container = container_id(id(job, replica), &revision);
            prop_assert_eq!(container_workload(&container), Some(id(job, replica)));
        }
    }

    #[test]
    fn other_names_are_no_workload_s() {
        for name in [
            "c",
            "r1-1-2",
            "r1-1-2-xyz",
            "r1-1-2-aaaaaaaaaaaa-x",
            "r2-1-2-aaaaaaaaaaaa",
            "r1-a-2-aaaaaaaaaaaa",
        ] {
            assert_eq!(container_workload(name), None, "{name}");
        }
    }

    fn seen(container: &str, task: TaskState) -> Observed {
        Observed {
            container: container.into(),
            workload: None,
            task,
        }
    }

    #[test]
    fn container_ids_are_stable_and_change_with_the_revision() {
        let a = container_id(id(7, 1), "rev-a");
        assert_eq!(a, container_id(id(7, 1), "rev-a"));
        assert!(a.starts_with("r1-7-1-") && a.len() == "r1-7-1-".len() + 12);
        assert_ne!(a, container_id(id(7, 1), "rev-b"));
        assert_eq!(
            parse_workload_label(&workload_label(id(7, 1))),
            Some(id(7, 1))
        );
        assert_eq!(parse_workload_label("7"), None);
        assert_eq!(parse_workload_label("x/1"), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::default();
        let delays: Vec<u64> = (1..=7).map(|n| b.delay_ms(n)).collect();
        assert_eq!(
            delays,
            [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        assert_eq!(b.delay_ms(u32::MAX), 60_000);
    }

    #[test]
    fn every_task_state_gets_its_action() {
        let desired = BTreeMap::from([
            (id(1, 0), "c-new".to_string()),
            (id(2, 0), "c-absent".to_string()),
            (id(3, 0), "c-created".to_string()),
            (id(4, 0), "c-running".to_string()),
            (id(5, 0), "c-stopped".to_string()),
            (id(6, 0), "c-waiting".to_string()),
        ]);
        let observed = [
            seen("c-absent", TaskState::Absent),
            seen("c-created", TaskState::Created),
            seen("c-running", TaskState::Running { pid: 9 }),
            seen("c-stopped", TaskState::Stopped { exit_status: 3 }),
            seen("c-waiting", TaskState::Stopped { exit_status: 3 }),
            seen("c-old-revision", TaskState::Running { pid: 10 }),
        ];
        let crashes = BTreeMap::from([(
            id(6, 0),
            Crashes {
                next_start_ms: 2_000,
                ..Default::default()
            },
        )]);
        assert_eq!(
            plan(&desired, &observed, &crashes, 1_000),
            [
                Action::Remove {
                    container: "c-old-revision".into()
                },
                Action::Create { workload: id(1, 0) },
                Action::Start { workload: id(2, 0) },
                Action::Start { workload: id(3, 0) },
                Action::Restart { workload: id(5, 0) },
            ]
        );
        let later = plan(&desired, &observed, &crashes, 2_000);
        assert!(later.contains(&Action::Restart { workload: id(6, 0) }));
    }

    #[test]
    fn crash_history_drives_state_and_resets_after_a_long_run() {
        let backoff = Backoff::default();
        let mut history = Crashes::default();
        history.exited(137, true, 10_000, &backoff);
        assert_eq!(history.next_start_ms, 12_000);
        assert_eq!(
            workload_state(
                Some(TaskState::Stopped { exit_status: 137 }),
                Some(&history)
            ),
            WorkloadState::Restarting {
                restarts: 1,
                last_exit_code: 137,
                reason: Some("OOMKilled".into())
            }
        );
        history.exited(1, false, 20_000, &backoff);
        assert_eq!(history.next_start_ms, 24_000);
        history.running(30_000, &backoff);
        history.running(30_000 + backoff.reset_after_ms - 1, &backoff);
        assert_eq!(history.restarts, 2);
        history.running(30_000 + backoff.reset_after_ms, &backoff);
        assert_eq!(history.restarts, 0);
        assert_eq!(
            workload_state(Some(TaskState::Running { pid: 1 }), Some(&history)),
            WorkloadState::Running
        );
        assert_eq!(workload_state(None, None), WorkloadState::Starting);
        let mut failing = Crashes::default();
        failing.failed("image missing".into(), 0, &backoff);
        assert_eq!(
            workload_state(None, Some(&failing)),
            WorkloadState::Failed {
                reason: "image missing".into()
            }
        );
    }

    fn task_strategy() -> impl Strategy<Value = TaskState> {
        prop_oneof![
            Just(TaskState::Absent),
            Just(TaskState::Created),
            (1u32..100).prop_map(|pid| TaskState::Running { pid }),
            (0u32..256).prop_map(|exit_status| TaskState::Stopped { exit_status }),
            Just(TaskState::Other),
        ]
    }

    proptest! {
        /// Whatever is observed, the plan removes exactly the unwanted containers, touches each
        /// wanted workload at most once, never acts on a running one, and applying it (with
        /// every start succeeding) leaves exactly the wanted containers running.
        #[test]
        fn plan_converges(
            wanted in proptest::collection::btree_map(0u64..8, 0u8..3, 0..6),
            extra in proptest::collection::vec((0u64..8, 0u8..3, task_strategy()), 0..10),
            tasks in proptest::collection::vec(task_strategy(), 6),
        ) {
            let desired: BTreeMap<WorkloadId, String> = wanted
                .iter()
                .map(|(&job, &rev)| (id(job, 0), container_id(id(job, 0), &rev.to_string())))
                .collect();
            let mut observed: Vec<Observed> = Vec::new();
            let mut names = BTreeSet::new();
            for (i, container) in desired.values().enumerate() {
                if i % 2 == 0 && names.insert(container.clone()) {
                    observed.push(seen(container, tasks[i % tasks.len()]));
                }
            }
            for (job, rev, task) in extra {
                let container = container_id(id(job, 0), &format!("{rev}x"));
                if names.insert(container.clone()) {
                    observed.push(seen(&container, task));
                }
            }
            let actions = plan(&desired, &observed, &BTreeMap::new(), 0);
            let mut touched = BTreeSet::new();
            for action in &actions {
                match action {
                    Action::Remove { container } => {
                        prop_assert!(!desired.values().any(|c| c == container));
                    }
                    Action::Create { workload } | Action::Start { workload } | Action::Restart { workload } => {
                        prop_assert!(touched.insert(*workload));
                        let running = observed.iter().any(|o| {
                            o.container == desired[workload] && matches!(o.task, TaskState::Running { .. })
                        });
                        prop_assert!(!running);
                    }
                }
            }
            let mut after: BTreeMap<String, TaskState> = observed
                .iter()
                .map(|o| (o.container.clone(), o.task))
                .collect();
            for action in &actions {
                match action {
                    Action::Remove { container } => { after.remove(container); }
                    Action::Create { workload } | Action::Start { workload } | Action::Restart { workload } => {
                        after.insert(desired[workload].clone(), TaskState::Running { pid: 1 });
                    }
                }
            }
            for container in desired.values() {
                let state = after.get(container).copied();
                prop_assert!(
                    matches!(state, Some(TaskState::Running { .. }) | Some(TaskState::Other)),
                    "{container} left in {state:?}"
                );
            }
            prop_assert_eq!(after.len(), desired.len());
        }
    }
}
