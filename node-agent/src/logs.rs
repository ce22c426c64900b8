//! Workload logs: containerd's shim appends each container's stdout and stderr to one file
//! (so output is kept while the agent is down); the agent rotates it by size (copy, then
//! truncate: the shim keeps appending to the same open file) and reads it back for the API.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where logs live and how much of them to keep.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
    max_bytes: u64,
    keep: u32,
}

impl LogDir {
    /// Logs under `dir`, rotated past `max_bytes`, keeping `keep` old files per container.
    pub fn new(dir: PathBuf, max_bytes: u64, keep: u32) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            max_bytes,
            keep,
        })
    }

    /// The live log file of container `id`.
    pub fn path(&self, container: &str) -> PathBuf {
        self.dir.join(format!("{container}.log"))
    }

    fn rotated(&self, container: &str, n: u32) -> PathBuf {
        self.dir.join(format!("{container}.log.{n}"))
    }

    /// Rotates the log of `container` when it has grown past the limit. Returns whether it did.
    pub fn rotate_if_large(&self, container: &str) -> std::io::Result<bool> {
        let live = self.path(container);
        let size = match std::fs::metadata(&live) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if size <= self.max_bytes {
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

    /// Deletes every log file of `container`.
    pub fn remove(&self, container: &str) -> std::io::Result<()> {
        let mut files = vec![self.path(container)];
        files.extend((1..=self.keep).map(|n| self.rotated(container, n)));
        for file in files {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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
    if lines == 0 {
        return Ok((bytes, end));
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(lines - 1)
        .map_or(0, |(i, _)| i + 1);
    Ok((bytes[start..].to_vec(), end))
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
        let logs = LogDir::new(dir.path().to_owned(), 10, 2).unwrap();
        for round in 0..4 {
            std::fs::write(logs.path("c"), format!("round {round} of lines\n")).unwrap();
            assert!(logs.rotate_if_large("c").unwrap());
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
        assert!(!logs.rotate_if_large("c").unwrap());
        logs.remove("c").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
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
}
