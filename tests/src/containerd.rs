//! A private containerd per test: its own root, state, socket and namespace under a short temp
//! dir, so tests run in parallel with each other and with a system containerd, and leave nothing
//! behind (no processes, mounts, cgroups or runc state) when they end.

pub(crate) mod cleanup;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::process::{ChildGuard, ProcessError};

/// How long containerd gets to answer after being started.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a private containerd could not be started, used or cleaned up.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// The temp dir or config file could not be created.
    #[error("cannot prepare containerd's directory: {0}")]
    Setup(std::io::Error),
    /// Starting or stopping the daemon failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// containerd did not answer in time.
    #[error("containerd did not become ready within {timeout:?}; log tail:\n{log}")]
    NotReady {
        /// How long was waited.
        timeout: Duration,
        /// The end of containerd's log.
        log: String,
    },
    /// `ctr` could not be run.
    #[error("cannot run ctr: {0}")]
    Ctr(std::io::Error),
    /// A `ctr` command exited non-zero.
    #[error("ctr {args} failed ({status}): {stderr}")]
    CtrFailed {
        /// The arguments after the address and namespace.
        args: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Something was left behind by the cleanup.
    #[error("containerd cleanup incomplete: {}", .0.join("; "))]
    Cleanup(Vec<String>),
}

/// A containerd daemon private to one test, killed and cleaned up on drop.
#[derive(Debug)]
pub struct PrivateContainerd {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    socket: PathBuf,
    config: PathBuf,
    namespace: String,
    daemon: Option<ChildGuard>,
}

impl PrivateContainerd {
    /// Starts containerd under a fresh `/tmp/r1c…` dir and waits until `ctr version` answers.
    pub fn start() -> Result<Self, ContainerdError> {
        // Unix socket paths are limited to 108 bytes: keep the directory short.
        let dir = tempfile::Builder::new()
            .prefix("r1c")
            .tempdir_in("/tmp")
            .map_err(ContainerdError::Setup)?;
        let root = dir.path().to_owned();
        let socket = root.join("containerd.sock");
        let config = root.join("config.toml");
        std::fs::write(&config, config_text(&root, &socket)).map_err(ContainerdError::Setup)?;
        let namespace = format!("r1t-{:08x}", rand::random::<u32>());
        let mut containerd = Self {
            dir: Some(dir),
            root,
            socket,
            config,
            namespace,
            daemon: None,
        };
        containerd.spawn()?;
        Ok(containerd)
    }

    /// The gRPC socket (what `ctr -a` and the agent connect to).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The namespace tests use; unique per instance, and the top of its containers' cgroups.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The temp dir holding root, state, socket, config and log.
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// containerd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("containerd.log")
    }

    /// Runs `ctr -a <socket> -n <namespace> <args>` and returns its output whatever its status.
    pub fn ctr<S: AsRef<str>>(&self, args: &[S]) -> Result<Output, ContainerdError> {
        self.ctr_command(args)
            .output()
            .map_err(ContainerdError::Ctr)
    }

    /// Like [`PrivateContainerd::ctr`], but fails unless ctr exits 0; returns its stdout.
    pub fn ctr_ok<S: AsRef<str>>(&self, args: &[S]) -> Result<String, ContainerdError> {
        let output = self.ctr(args)?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(ContainerdError::CtrFailed {
            args: args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" "),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }

    /// A `ctr` command bound to this instance, for callers that need to set stdio themselves.
    ///
    /// `run`, `tasks start` and `tasks exec` get `--fifo-dir <root_dir>/fifo`, so the stdio
    /// FIFOs of detached tasks are removed with the instance instead of piling up in
    /// `/run/containerd/fifo`.
    pub fn ctr_command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let mut command = Command::new("ctr");
        command
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", &self.namespace]);
        let verb_len = match args.as_slice() {
            ["run" | "r", ..] => 1,
            ["tasks" | "task" | "t", "start" | "exec", ..] => 2,
            _ => 0,
        };
        command.args(&args[..verb_len]);
        if verb_len > 0 {
            command.arg("--fifo-dir").arg(self.root.join("fifo"));
        }
        command.args(&args[verb_len..]).stdin(Stdio::null());
        command
    }

    /// Imports an OCI archive (e.g. from [`crate::images::OciImageBuilder::write_archive`]).
    pub fn import(&self, archive: &Path) -> Result<(), ContainerdError> {
        let archive = archive.to_string_lossy();
        self.ctr_ok(&["images", "import", archive.as_ref()])?;
        Ok(())
    }

    /// Kills containerd alone (SIGKILL) and starts it again on the same root, state and socket;
    /// running containers and their shims survive, as after a real containerd crash.
    pub fn restart(&mut self) -> Result<(), ContainerdError> {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.kill_leader()?;
        }
        self.spawn()
    }

    /// Stops everything and removes every trace, reporting what could not be cleaned.
    pub fn shutdown(mut self) -> Result<(), ContainerdError> {
        let problems = self.cleanup();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ContainerdError::Cleanup(problems))
        }
    }

    /// Starts the daemon and waits until it answers.
    fn spawn(&mut self) -> Result<(), ContainerdError> {
        let mut command = Command::new("containerd");
        command.arg("--config").arg(&self.config);
        let mut daemon = ChildGuard::spawn_logged(&mut command, "containerd", &self.root)?;
        let ready = crate::wait::until(READY_TIMEOUT, || {
            !daemon.is_running() || (self.socket.exists() && self.answers())
        });
        if ready && daemon.is_running() {
            self.daemon = Some(daemon);
            return Ok(());
        }
        let log = daemon.log_tail(30);
        drop(daemon);
        Err(ContainerdError::NotReady {
            timeout: READY_TIMEOUT,
            log,
        })
    }

    /// Whether `ctr version` gets an answer from the daemon.
    fn answers(&self) -> bool {
        let mut command = self.ctr_command(&["--connect-timeout", "1s", "version"]);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        // Global flags must precede the subcommand; ctr_command put -a/-n first, which is fine.
        command.status().is_ok_and(|status| status.success())
    }

    /// Kills everything this instance started and removes its traces; returns what failed.
    fn cleanup(&mut self) -> Vec<String> {
        let Some(dir) = self.dir.take() else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        // containerd first, so it cannot start new shims (or `shim delete`) while we clean up.
        if let Some(mut daemon) = self.daemon.take()
            && let Err(error) = daemon.kill()
        {
            problems.push(error.to_string());
        }
        problems.extend(cleanup::kill_containers(&self.socket, &self.namespace));
        problems.extend(cleanup::unmount_all(&self.root));
        problems.extend(cleanup::remove_cgroups(&self.namespace));
        problems.extend(cleanup::remove_runc_state(&self.namespace));
        if let Err(error) = dir.close() {
            problems.push(format!("removing {}: {error}", self.root.display()));
        }
        problems
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        for problem in self.cleanup() {
            eprintln!("r1-e2e: containerd cleanup: {problem}");
        }
    }
}

/// The daemon's config: everything under `root`, CRI off.
fn config_text(root: &Path, socket: &Path) -> String {
    let root_display = root.display();
    let socket_display = socket.display();
    format!(
        r#"version = 2
root = "{root_display}/root"
state = "{root_display}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{socket_display}"

[ttrpc]
  address = "{socket_display}.ttrpc"
"#
    )
}
