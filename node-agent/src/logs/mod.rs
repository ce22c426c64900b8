//! Workload logs: containerd's shim appends each container's stdout and stderr to one file
//! (so output is kept while the agent is down); the agent rotates it by size (copy, then
//! truncate: the shim keeps appending to the same open file) and reads it back for the API.
//! The shim writes no timestamps, so the agent notes, each time it looks at a log, how long it
//! was then ([`TimeMarks`]): what was written since a moment is found to within one look.
//! A removed container's logs are not deleted but retired ([`retired`]), for a while.

pub mod retired;

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use r1_protocol::messages::WorkloadId;

use crate::reconcile::container_workload;
use retired::{Retention, RetiredLogs};

/// Marks kept per log: hours of a log that grows every pass.
const MAX_MARKS: usize = 8192;

/// How long a live log was when the agent looked, oldest first; forgotten when it is rotated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeMarks {
    marks: VecDeque<(u64, u64)>,
}

impl TimeMarks {
    /// Notes that the log was `len` bytes long at `at_ms`.
    pub fn observe(&mut self, at_ms: u64, len: u64) {
        match self.marks.back() {
            Some(&(_, last)) if last == len => return,
            Some(&(_, last)) if len < last => self.marks.clear(),
            _ => {}
        }
        if self.marks.len() == MAX_MARKS {
            self.marks.pop_front();
        }
        self.marks.push_back((at_ms, len));
    }

    /// Where to start reading for what was written at or after `since_ms`: how long the log was
    /// when last seen before then (so a little written just before may come too); 0 when it
    /// was not seen before then.
    pub fn offset_since(&self, since_ms: u64) -> u64 {
        self.marks
            .iter()
            .rev()
            .find(|(at, _)| *at <= since_ms)
            .map_or(0, |(_, len)| *len)
    }
}

/// Where logs live and how much of them to keep.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
    max_bytes: u64,
    keep: u32,
    marks: Arc<Mutex<HashMap<String, TimeMarks>>>,
    retired: RetiredLogs,
}

impl LogDir {
    /// Logs under `dir`, rotated past `max_bytes`, keeping `keep` old files per container, and
    /// the logs of removed containers for as long as `retention` says (under `dir/retired`).
    pub fn new(
        dir: PathBuf,
        max_bytes: u64,
        keep: u32,
        retention: Retention,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let retired = RetiredLogs::open(dir.join("retired"), retention)?;
        Ok(Self {
            dir,
            max_bytes,
            keep,
            marks: Arc::default(),
            retired,
        })
    }

    /// The logs of removed containers.
    pub fn retired(&self) -> &RetiredLogs {
        &self.retired
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, HashMap<String, TimeMarks>> {
        self.marks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where to start reading `container`'s live log for what it wrote at or after `since_ms`
    /// (see [`TimeMarks::offset_since`]).
    pub fn offset_since(&self, container: &str, since_ms: u64) -> u64 {
        self.marks()
            .get(container)
            .map_or(0, |marks| marks.offset_since(since_ms))
    }

    /// The live log file of container `id`.
    pub fn path(&self, container: &str) -> PathBuf {
        self.dir.join(format!("{container}.log"))
    }

    fn rotated(&self, container: &str, n: u32) -> PathBuf {
        self.dir.join(format!("{container}.log.{n}"))
    }

    /// Rotates the log of `container` when it has grown past the limit, and notes its length
    /// at `now_ms`. Returns whether it rotated.
    pub fn rotate_if_large(&self, container: &str, now_ms: u64) -> std::io::Result<bool> {
        let live = self.path(container);
        let size = match std::fs::metadata(&live) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let rotating = size > self.max_bytes;
        self.marks()
            .entry(container.to_owned())
            .or_default()
            .observe(now_ms, if rotating { 0 } else { size });
        if !rotating {
            return Ok(false);
        }
        if self.keep == 0 {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&live)?
                .set_len(0)?;
            return Ok(true);
        }
        for n in (1..self.keep).rev() {
            let from = self.rotated(container, n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(container, n + 1))?;
            }
        }
        std::fs::copy(&live, self.rotated(container, 1))?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&live)?
            .set_len(0)?;
        Ok(true)
    }

    /// Retires the logs of `container`, removed at `now_ms`: they move aside and are kept for
    /// the retention time (deleted at once for a container that is no workload's).
    pub fn retire(&self, container: &str, now_ms: u64) -> std::io::Result<()> {
        self.marks().remove(container);
        let mut files = vec![self.path(container)];
        files.extend((1..=self.keep).map(|n| self.rotated(container, n)));
        let Some(workload) = container_workload(container) else {
            for file in files {
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        };
        self.retired.retire(container, workload, &files, now_ms)
    }

    /// The container whose retired log of `workload` is the newest, and where it is.
    pub fn newest_retired(&self, workload: WorkloadId) -> Option<(String, PathBuf)> {
        let container = self.retired.newest_of(workload)?;
        let path = self.retired.path(&container);
        Some((container, path))
    }
}

/// The last `lines` lines of `path` (all of them for 0) and the offset just past them, for a
/// follower to continue from.
pub fn tail(path: &Path, lines: usize) -> std::io::Result<(Vec<u8>, u64)> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let end = bytes.len() as u64;
    Ok((last_lines(&bytes, lines).to_vec(), end))
}

/// The last `lines` lines of `bytes` (all of them for 0).
pub fn last_lines(bytes: &[u8], lines: usize) -> &[u8] {
    if lines == 0 {
        return bytes;
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(lines - 1)
        .map_or(0, |(i, _)| i + 1);
    &bytes[start..]
}

/// New bytes of `path` after `offset`, and the new offset. A file that shrank (it was rotated)
/// is read again from its start.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let next = start + bytes.len() as u64;
    Ok((bytes, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogDir::new(dir.path().to_owned(), 10, 2, Retention::default()).unwrap();
        for round in 0..4 {
            std::fs::write(logs.path("c"), format!("round {round} of lines\n")).unwrap();
            assert!(logs.rotate_if_large("c", 0).unwrap());
            assert_eq!(std::fs::metadata(logs.path("c")).unwrap().len(), 0);
        }
        assert_eq!(
            std::fs::read_to_string(logs.rotated("c", 1)).unwrap(),
            "round 3 of lines\n"
        );
        assert_eq!(
            std::fs::read_to_string(logs.rotated("c", 2)).unwrap(),
            "round 2 of lines\n"
        );
        assert!(!logs.rotated("c", 3).exists());
        std::fs::write(logs.path("c"), "short\n").unwrap();
        assert!(!logs.rotate_if_large("c", 0).unwrap());
        logs.retire("c", 0).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec!["retired"], "a log of no workload is deleted");
    }

    #[test]
    fn a_removed_workload_s_logs_are_retired_whole() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogDir::new(dir.path().to_owned(), 10, 2, Retention::default()).unwrap();
        let workload = WorkloadId::of(3, 1, 0);
        let container = crate::reconcile::container_id(workload, "rev");
        std::fs::write(logs.path(&container), "first run, long enough\n").unwrap();
        logs.rotate_if_large(&container, 0).unwrap();
        std::fs::write(logs.path(&container), "last words\n").unwrap();
        logs.retire(&container, r1_protocol::now_ms()).unwrap();
        assert!(!logs.path(&container).exists());
        let (retired, path) = logs.newest_retired(workload).unwrap();
        assert_eq!(retired, container);
        assert_eq!(std::fs::read_to_string(path).unwrap(), "last words\n");
        assert_eq!(logs.retired().workloads(), vec![workload]);
    }

    #[test]
    fn tail_and_follow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&path, 2).unwrap(), (b"b\nc\n".to_vec(), 6));
        assert_eq!(tail(&path, 10).unwrap().0, b"a\nb\nc\n");
        assert_eq!(tail(&path, 0).unwrap().0, b"a\nb\nc\n");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(read_from(&path, 6).unwrap(), (b"d\n".to_vec(), 8));
        std::fs::write(&path, "e\n").unwrap();
        assert_eq!(read_from(&path, 8).unwrap(), (b"e\n".to_vec(), 2));
        assert_eq!(tail(&dir.path().join("none"), 3).unwrap(), (vec![], 0));
    }

    #[test]
    fn marks_find_where_a_moment_s_output_starts_and_forget_a_rotated_log() {
        let mut marks = TimeMarks::default();
        assert_eq!(marks.offset_since(5), 0);
        marks.observe(1_000, 10);
        marks.observe(2_000, 10);
        marks.observe(3_000, 25);
        marks.observe(4_000, 40);
        assert_eq!(
            marks.offset_since(500),
            0,
            "before the first look: all of it"
        );
        assert_eq!(marks.offset_since(2_500), 10);
        assert_eq!(marks.offset_since(3_000), 25);
        assert_eq!(
            marks.offset_since(9_000),
            40,
            "nothing newer than the last look"
        );
        marks.observe(5_000, 3);
        assert_eq!(
            marks.offset_since(4_500),
            0,
            "rotated: what is left is all newer"
        );
        assert_eq!(marks.offset_since(5_500), 3);
    }

    #[test]
    fn marks_are_bounded() {
        let mut marks = TimeMarks::default();
        for i in 0..(MAX_MARKS as u64 + 10) {
            marks.observe(i, i + 1);
        }
        assert_eq!(marks.marks.len(), MAX_MARKS);
        assert_eq!(marks.offset_since(5), 0, "the oldest were forgotten");
    }
}
