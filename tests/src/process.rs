//! Child processes that cannot outlive the test: each runs in its own process group, which is
//! terminated (then killed) when its [`ChildGuard`] drops.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::signal::{Signal, SignalError, signal_group, signal_process};
use crate::wait;

/// How long a stopping process gets between SIGTERM and SIGKILL, unless changed.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// Why a child process could not be started, signalled or found.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("cannot start {name}: {source}")]
    Spawn {
        /// The name given to the child.
        name: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The log file for the child could not be created.
    #[error("cannot create log file {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Waiting for the child failed.
    #[error("cannot wait for {name}: {source}")]
    Wait {
        /// The name given to the child.
        name: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The child ignored SIGKILL for longer than any process should.
    #[error("{0} did not exit after SIGKILL")]
    Unkillable(String),
    /// A signal could not be sent.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The test executable's own path is unknown.
    #[error("cannot find the current test executable: {0}")]
    CurrentExe(std::io::Error),
    /// A workspace binary a test needs was not built.
    #[error("binary {name} not found at {path}; build it first (cargo build --workspace --bins)")]
    BinaryMissing {
        /// The binary's name.
        name: String,
        /// Where it was expected.
        path: PathBuf,
    },
}

/// A child process in its own process group; dropping it stops the whole group.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    log: Option<PathBuf>,
    grace: Duration,
    exited: Option<ExitStatus>,
}

impl ChildGuard {
    /// Starts `command` as the leader of a new process group, with stdio as the caller set it.
    pub fn spawn(command: &mut Command, name: &str) -> Result<Self, ProcessError> {
        let child = command
            .process_group(0)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                name: name.to_owned(),
                source,
            })?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: None,
            grace: DEFAULT_GRACE,
            exited: None,
        })
    }

    /// Starts `command` in a new process group, stdin closed, stdout and stderr appended to
    /// `<log_dir>/<name>.log`.
    pub fn spawn_logged(
        command: &mut Command,
        name: &str,
        log_dir: &Path,
    ) -> Result<Self, ProcessError> {
        let path = log_dir.join(format!("{name}.log"));
        let (stdout, stderr) = log_files(&path)?;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let mut guard = Self::spawn(command, name)?;
        guard.log = Some(path);
        Ok(guard)
    }

    /// The name used in errors and for the log file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, which is also the process group id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The log file, when started with [`ChildGuard::spawn_logged`].
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The last `lines` lines of the log file (empty without one), for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log
            .as_deref()
            .map(|path| tail(path, lines))
            .unwrap_or_default()
    }

    /// Changes how long [`ChildGuard::stop`] waits between SIGTERM and SIGKILL.
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// The exit status if the leader has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .map_err(|source| self.wait_error(source))?;
        }
        Ok(self.exited)
    }

    /// Whether the leader is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the leader to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, ProcessError> {
        let mut failure = None;
        wait::until(timeout, || match self.try_wait() {
            Ok(status) => status.is_some(),
            Err(error) => {
                failure = Some(error);
                true
            }
        });
        match failure {
            Some(error) => Err(error),
            None => Ok(self.exited),
        }
    }

    /// Sends `signal` to the leader only (not to the rest of its group).
    pub fn signal(&mut self, signal: Signal) -> Result<(), ProcessError> {
        if self.try_wait()?.is_none() {
            signal_process(self.id(), signal)?;
        }
        Ok(())
    }

    /// Sends `signal` to every process of the group.
    pub fn signal_group(&self, signal: Signal) -> Result<(), ProcessError> {
        signal_group(self.id(), signal)?;
        Ok(())
    }

    /// Kills the leader only, at once, and reaps it; the rest of its group keeps running.
    pub fn kill_leader(&mut self) -> Result<ExitStatus, ProcessError> {
        self.signal(Signal::Kill)?;
        self.reap_after_kill()
    }

    /// Stops the whole group: SIGTERM, up to the grace period, then SIGKILL; reaps the leader.
    pub fn stop(&mut self) -> Result<ExitStatus, ProcessError> {
        self.signal_group(Signal::Term)?;
        if let Some(status) = self.wait_timeout(self.grace)? {
            // Stragglers of the group get no grace once the leader is gone.
            self.signal_group(Signal::Kill)?;
            return Ok(status);
        }
        self.kill()
    }

    /// Kills the whole group at once (SIGKILL) and reaps the leader.
    pub fn kill(&mut self) -> Result<ExitStatus, ProcessError> {
        self.signal_group(Signal::Kill)?;
        self.reap_after_kill()
    }

    /// Waits for a leader that was sent SIGKILL.
    fn reap_after_kill(&mut self) -> Result<ExitStatus, ProcessError> {
        self.wait_timeout(Duration::from_secs(10))?
            .ok_or_else(|| ProcessError::Unkillable(self.name.clone()))
    }

    /// Wraps an error of `wait`.
    fn wait_error(&self, source: std::io::Error) -> ProcessError {
        ProcessError::Wait {
            name: self.name.clone(),
            source,
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("r1-e2e: stopping {}: {error}", self.name);
        }
    }
}

/// Opens (appending) the log file twice, once for stdout and once for stderr.
fn log_files(path: &Path) -> Result<(File, File), ProcessError> {
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ProcessError::Log {
                path: path.to_owned(),
                source,
            })
    };
    Ok((open()?, open()?))
}

/// The last `lines` lines of a text file; empty when it cannot be read.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let text = text.unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The path of workspace binary `name` (e.g. `r1-node`) in the target directory this test
/// executable was built into: tests live in `<target>/<profile>/deps/`, binaries one level up.
pub fn bin_path(name: &str) -> Result<PathBuf, ProcessError> {
    let exe = std::env::current_exe().map_err(ProcessError::CurrentExe)?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|file| file == "deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ProcessError::BinaryMissing {
            name: name.to_owned(),
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_guard_ends_the_whole_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pid_file = dir.path().join("grandchild");
        let script = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
        let guard = ChildGuard::spawn_logged(
            Command::new("sh").args(["-c", &script]),
            "group",
            dir.path(),
        )
        .expect("spawn");
        assert!(wait::until(Duration::from_secs(5), || pid_file.exists()));
        let grandchild: u32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        drop(guard);
        assert!(wait::until(Duration::from_secs(5), || {
            !Path::new(&format!("/proc/{grandchild}")).exists()
                || std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                    .is_ok_and(|stat| stat.contains(") Z "))
        }));
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let error = bin_path("no-such-r1-binary").expect_err("missing");
        assert!(error.to_string().contains("no-such-r1-binary"));
    }
}
