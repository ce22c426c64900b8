//! The files a running devnet keeps in its directory so that `r1-devnet down` (and `make
//! devnet-down`) can stop it from another terminal: its pid, and every process it started
//! (pid and command line), so that even a devnet killed with SIGKILL leaves nothing running.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::procfs::{self, ProcessInfo};
use crate::signal::{Signal, SignalError, signal_process};

/// The devnet's own pid.
const PID_FILE: &str = "devnet.pid";
/// One `pid<TAB>command line` per process the devnet started.
const PROCESSES_FILE: &str = "processes";
/// How long a devnet gets to stop cleanly after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the devnet directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Another devnet already runs from this directory.
    #[error("a devnet already runs (pid {pid}); stop it with `make devnet-down`")]
    AlreadyRunning {
        /// Its pid.
        pid: u32,
    },
    /// A file in the directory could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A signal could not be sent.
    #[error(transparent)]
    Signal(#[from] SignalError),
}

/// The running devnet's claim on its directory; dropping it removes the pid and process files.
pub struct Claim {
    dir: PathBuf,
}

impl Claim {
    /// Creates `dir` and records this process as the devnet running from it, unless another
    /// one still runs.
    pub fn take(dir: &Path) -> Result<Self, LifecycleError> {
        std::fs::create_dir_all(dir).map_err(file_error(dir))?;
        if let Some(pid) = running_devnet(dir) {
            return Err(LifecycleError::AlreadyRunning { pid });
        }
        let path = dir.join(PID_FILE);
        std::fs::write(&path, std::process::id().to_string()).map_err(file_error(&path))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Records every process this devnet started so far: the descendants of `roots` (the
    /// devnet's own pid), and the processes (such as containerd's shims, which leave the process
    /// tree) whose command line mentions one of `markers`.
    pub fn record_processes(
        &self,
        roots: &[u32],
        markers: &[String],
    ) -> Result<(), LifecycleError> {
        let mut pids = procfs::descendants(roots);
        pids.extend(
            procfs::processes()
                .into_iter()
                .filter(|info| markers.iter().any(|m| info.mentions(m)))
                .map(|info| info.pid),
        );
        pids.sort_unstable();
        pids.dedup();
        let text: String = pids
            .into_iter()
            .filter_map(procfs::process)
            .filter(|info| !info.is_zombie())
            .map(|info| format!("{}\t{}\n", info.pid, info.cmdline.join(" ")))
            .collect();
        let path = self.dir.join(PROCESSES_FILE);
        std::fs::write(&path, text).map_err(file_error(&path))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        for name in [PROCESSES_FILE, PID_FILE, crate::devnet::ENV_FILE] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }
}

/// What [`down`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// The devnet's pid, when one was running.
    pub devnet: Option<u32>,
    /// Processes that outlived the devnet and were killed.
    pub killed: Vec<u32>,
}

/// Stops the devnet running from `dir`: SIGTERM and a wait for its clean shutdown, SIGKILL if it
/// does not finish in time; then kills whatever it started that is still alive.
pub fn down(dir: &Path) -> Result<Stopped, LifecycleError> {
    let mut stopped = Stopped::default();
    let recorded = recorded_processes(dir);
    if let Some(pid) = running_devnet(dir) {
        stopped.devnet = Some(pid);
        signal_process(pid, Signal::Term)?;
        if !crate::wait::until(STOP_TIMEOUT, || !procfs::is_alive(pid)) {
            signal_process(pid, Signal::Kill)?;
        }
    }
    for (pid, cmdline) in recorded {
        let same = procfs::process(pid)
            .is_some_and(|info| !info.is_zombie() && info.cmdline.join(" ") == cmdline);
        if same && signal_process(pid, Signal::Kill)? {
            stopped.killed.push(pid);
        }
    }
    for name in [PROCESSES_FILE, PID_FILE, crate::devnet::ENV_FILE] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    Ok(stopped)
}

/// The pid in the pid file, when that process is alive and is a devnet.
fn running_devnet(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    procfs::process(pid)
        .filter(|info| !info.is_zombie() && is_devnet(info))
        .map(|info| info.pid)
}

fn is_devnet(info: &ProcessInfo) -> bool {
    info.cmdline
        .first()
        .is_some_and(|program| program.ends_with("r1-devnet"))
}

fn recorded_processes(dir: &Path) -> Vec<(u32, String)> {
    std::fs::read_to_string(dir.join(PROCESSES_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter_map(|(pid, cmdline)| Some((pid.parse().ok()?, cmdline.to_owned())))
        .collect()
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> LifecycleError + '_ {
    move |source| LifecycleError::File {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_claim_records_its_children_and_down_kills_the_survivors() {
        let dir = tempfile::tempdir().unwrap();
        let claim = Claim::take(dir.path()).unwrap();
        let marker = format!("r1-devnet-test-{}", std::process::id());
        let mut child = Command::new("sh")
            .args(["-c", &format!("sleep 300; echo {marker}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let sh = child.id();
        assert!(crate::wait::until(Duration::from_secs(5), || {
            !procfs::descendants(&[sh]).is_empty()
        }));
        claim.record_processes(&[sh], &[marker]).unwrap();
        let recorded = recorded_processes(dir.path());
        assert!(
            recorded.iter().any(|(pid, _)| *pid == child.id()),
            "{recorded:?}"
        );
        let stopped = down(dir.path()).unwrap();
        assert_eq!(stopped.devnet, None, "the test process is not a devnet");
        assert!(stopped.killed.contains(&child.id()), "{stopped:?}");
        assert_eq!(stopped.killed.len(), 2, "sh and its sleep: {stopped:?}");
        assert!(child.wait().is_ok());
        assert!(!dir.path().join(PID_FILE).exists());
        drop(claim);
    }

    #[test]
    fn nothing_to_stop_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(down(dir.path()).unwrap(), Stopped::default());
    }

    #[test]
    fn a_stale_pid_file_does_not_block_a_new_devnet() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PID_FILE), "4194303").unwrap();
        let claim = Claim::take(dir.path()).unwrap();
        drop(claim);
        assert!(!dir.path().join(PID_FILE).exists());
    }
}
