//! Logs of containers that no longer run: kept after their container is removed (a rollout's
//! old generation, a replica moved away, a job that ended), so that their owner can still read
//! why they stopped, until they are collected — after [`Retention::keep_ms`], or sooner, oldest
//! first, once they take more than [`Retention::max_bytes`]. [`to_collect`] is that decision;
//! [`RetiredLogs`] moves the files aside, keeps the index, and finds it again on restart (a
//! retired log's modification time is when it was retired).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use r1_protocol::messages::{Heartbeat, WorkloadId};

use crate::reconcile::container_workload;

/// How long retired logs are kept and how much of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Longest a retired log is kept (ms).
    pub keep_ms: u64,
    /// Most bytes all retired logs take together.
    pub max_bytes: u64,
}

impl Default for Retention {
    /// An hour, 256 MiB.
    fn default() -> Self {
        Self {
            keep_ms: 3_600_000,
            max_bytes: 256 << 20,
        }
    }
}

/// One retired container's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredLog {
    /// The container they were written by.
    pub container: String,
    /// Its workload.
    pub workload: WorkloadId,
    /// When it was retired (unix ms).
    pub retired_ms: u64,
    /// Bytes of its files.
    pub bytes: u64,
}

/// The containers whose retired logs are due for deletion at `now_ms`: those older than the
/// retention time, then the oldest of the rest until what remains fits the byte budget.
pub fn to_collect(logs: &[RetiredLog], now_ms: u64, retention: Retention) -> Vec<String> {
    let mut by_age: Vec<&RetiredLog> = logs.iter().collect();
    by_age.sort_by_key(|log| (log.retired_ms, log.container.clone()));
    let mut total: u64 = by_age.iter().map(|log| log.bytes).sum();
    let mut doomed = Vec::new();
    for log in by_age {
        let expired = now_ms.saturating_sub(log.retired_ms) > retention.keep_ms;
        if expired || total > retention.max_bytes {
            total -= log.bytes;
            doomed.push(log.container.clone());
        }
    }
    doomed
}

/// The retired logs under one directory.
#[derive(Debug, Clone)]
pub struct RetiredLogs {
    dir: PathBuf,
    retention: Retention,
    index: Arc<Mutex<BTreeMap<String, RetiredLog>>>,
}

impl RetiredLogs {
    /// The retired logs under `dir`, as found there.
    pub fn open(dir: PathBuf, retention: Retention) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut index = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(container) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            let Some(workload) = container_workload(container) else {
                continue;
            };
            let retired_ms = entry.metadata()?.modified().map_or(0, unix_ms);
            let log = RetiredLog {
                container: container.to_owned(),
                workload,
                retired_ms,
                bytes: files_of(&dir, container).iter().map(|f| size(f)).sum(),
            };
            index.insert(log.container.clone(), log);
        }
        Ok(Self {
            dir,
            retention,
            index: Arc::new(Mutex::new(index)),
        })
    }

    fn index(&self) -> MutexGuard<'_, BTreeMap<String, RetiredLog>> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the newest retired log of `container` is.
    pub fn path(&self, container: &str) -> PathBuf {
        self.dir.join(format!("{container}.log"))
    }

    /// Moves `files` (the live log first, then its rotated ones, any of which may be missing)
    /// of `container`, retired at `now_ms`, here; then collects what is due.
    pub fn retire(
        &self,
        container: &str,
        workload: WorkloadId,
        files: &[PathBuf],
        now_ms: u64,
    ) -> std::io::Result<()> {
        for old in files_of(&self.dir, container) {
            remove_if_present(&old)?;
        }
        let mut bytes = 0;
        for (n, file) in files.iter().enumerate() {
            let name = match n {
                0 => format!("{container}.log"),
                n => format!("{container}.log.{n}"),
            };
            bytes += size(file);
            match std::fs::rename(file, self.dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let live = self.path(container);
        if !live.exists() {
            std::fs::File::create(&live)?;
        }
        std::fs::File::options()
            .write(true)
            .open(&live)?
            .set_modified(UNIX_EPOCH + Duration::from_millis(now_ms))?;
        self.index().insert(
            container.to_owned(),
            RetiredLog {
                container: container.to_owned(),
                workload,
                retired_ms: now_ms,
                bytes,
            },
        );
        self.collect(now_ms)
    }

    /// Deletes the retired logs that are due at `now_ms`.
    pub fn collect(&self, now_ms: u64) -> std::io::Result<()> {
        let doomed = {
            let index = self.index();
            let logs: Vec<RetiredLog> = index.values().cloned().collect();
            to_collect(&logs, now_ms, self.retention)
        };
        for container in doomed {
            for file in files_of(&self.dir, &container) {
                remove_if_present(&file)?;
            }
            self.index().remove(&container);
        }
        Ok(())
    }

    /// The container whose retired log of `workload` is the newest.
    pub fn newest_of(&self, workload: WorkloadId) -> Option<String> {
        self.index()
            .values()
            .filter(|log| log.workload == workload)
            .max_by_key(|log| log.retired_ms)
            .map(|log| log.container.clone())
    }

    /// The workloads with retired logs here, newest first, as many as a heartbeat names.
    pub fn workloads(&self) -> Vec<WorkloadId> {
        let mut logs: Vec<RetiredLog> = self.index().values().cloned().collect();
        logs.sort_by_key(|log| std::cmp::Reverse(log.retired_ms));
        let mut workloads = Vec::new();
        for log in logs {
            if !workloads.contains(&log.workload) {
                workloads.push(log.workload);
            }
            if workloads.len() == Heartbeat::MAX_RETIRED_LOGS {
                break;
            }
        }
        workloads
    }
}

/// Every file of `container`'s logs in `dir` (the live one and the rotated ones).
fn files_of(dir: &Path, container: &str) -> Vec<PathBuf> {
    let live = format!("{container}.log");
    let rotated = format!("{live}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| {
            *name == live
                || name
                    .strip_prefix(&rotated)
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .map(|name| dir.join(name))
        .collect()
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Unix ms of `time`.
fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn log(n: u32, retired_ms: u64, bytes: u64) -> RetiredLog {
        RetiredLog {
            container: format!("r1-1-{n}-aaaaaaaaaaaa"),
            workload: WorkloadId { job: 1, replica: n },
            retired_ms,
            bytes,
        }
    }

    const RETENTION: Retention = Retention {
        keep_ms: 1_000,
        max_bytes: 100,
    };

    #[test]
    fn expired_logs_go_then_the_oldest_until_the_rest_fit() {
        let logs = [
            log(0, 0, 10),
            log(1, 500, 60),
            log(2, 900, 50),
            log(3, 950, 10),
        ];
        assert_eq!(
            to_collect(&logs, 950, RETENTION),
            vec![logs[0].container.clone(), logs[1].container.clone()]
        );
        assert_eq!(
            to_collect(&logs, 1_600, RETENTION),
            vec![logs[0].container.clone(), logs[1].container.clone()]
        );
        assert_eq!(to_collect(&logs, 1_901, RETENTION).len(), 3);
        assert!(to_collect(&logs[2..], 950, RETENTION).is_empty());
    }

    proptest! {
        #[test]
        fn what_is_kept_is_young_fits_and_is_newer_than_what_goes(
            ages in proptest::collection::vec((0u64..3_000, 0u64..80), 0..20),
            now in 0u64..4_000,
        ) {
            let logs: Vec<RetiredLog> = ages
                .iter()
                .enumerate()
                .map(|(n, (at, bytes))| log(n as u32, *at, *bytes))
                .collect();
            let doomed = to_collect(&logs, now, RETENTION);
            let kept: Vec<&RetiredLog> =
                logs.iter().filter(|l| !doomed.contains(&l.container)).collect();
            prop_assert!(kept.iter().map(|l| l.bytes).sum::<u64>() <= RETENTION.max_bytes);
            for l in &kept {
                prop_assert!(now.saturating_sub(l.retired_ms) <= RETENTION.keep_ms);
            }
            // Nothing young is deleted while an older one is kept.
            for gone in logs.iter().filter(|l| doomed.contains(&l.container)) {
                let expired = now.saturating_sub(gone.retired_ms) > RETENTION.keep_ms;
                if !expired {
                    prop_assert!(kept.iter().all(|k| (k.retired_ms, &k.container) > (gone.retired_ms, &gone.container)));
                }
            }
        }
    }

    #[test]
    fn retired_files_are_moved_found_again_and_collected() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        std::fs::create_dir(&live).unwrap();
        let container = "r1-7-20001-aaaaaaaaaaaa";
        let workload = WorkloadId::of(7, 2, 1);
        let files = [
            live.join("c.log"),
            live.join("c.log.1"),
            live.join("c.log.2"),
        ];
        std::fs::write(&files[0], "last words\n").unwrap();
        std::fs::write(&files[1], "older\n").unwrap();
        let retention = Retention {
            keep_ms: 60_000,
            max_bytes: 1 << 20,
        };
        let now = unix_ms(SystemTime::now());
        let retired = RetiredLogs::open(dir.path().join("retired"), retention).unwrap();
        retired.retire(container, workload, &files, now).unwrap();
        assert!(!files[0].exists() && !files[1].exists());
        assert_eq!(
            std::fs::read_to_string(retired.path(container)).unwrap(),
            "last words\n"
        );
        assert_eq!(retired.newest_of(workload).as_deref(), Some(container));
        assert_eq!(retired.workloads(), vec![workload]);
        assert_eq!(retired.newest_of(WorkloadId::of(7, 2, 2)), None);

        let reopened = RetiredLogs::open(dir.path().join("retired"), retention).unwrap();
        assert_eq!(reopened.newest_of(workload).as_deref(), Some(container));
        let found = reopened.index().get(container).cloned().unwrap();
        assert_eq!(found.bytes, 17);
        assert!(
            found.retired_ms.abs_diff(now) < 1_000,
            "{} vs {now}",
            found.retired_ms
        );

        reopened.collect(now + 60_001).unwrap();
        assert_eq!(reopened.newest_of(workload), None);
        assert_eq!(
            std::fs::read_dir(dir.path().join("retired"))
                .unwrap()
                .count(),
            0
        );
    }
}
