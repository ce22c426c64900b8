//! Commands run inside a running container with their input and output attached, for a CSP's
//! exec session: containerd's shim connects the process to named pipes the agent creates (one
//! per stream; with a terminal, stdout carries stderr too) and the agent reads and writes the
//! other ends. The process is one more process of the container's task, confined exactly like
//! the workload (see [`super::exec`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use containerd_client::services::v1::{
    CloseIoRequest, ExecProcessRequest, KillRequest, ResizePtyRequest, StartRequest, WaitRequest,
};
use nix::sys::stat::Mode;
use serde_json::{Value, json};
use tokio::net::unix::pipe;
use tonic::Code;

use super::containerd::{Containerd, RuntimeError};
use super::exec::PROCESS_TYPE;

/// Makes attached exec ids unique within the agent.
static NEXT_ATTACHED: AtomicU64 = AtomicU64::new(0);

/// How to run an attached command.
#[derive(Debug, Clone)]
pub struct AttachSpec {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// On a terminal of this size (columns, rows); `None`: plain pipes.
    pub terminal: Option<(u16, u16)>,
    /// Whether the command gets a stdin pipe (else its stdin is empty).
    pub stdin: bool,
}

/// A started attached command: its pipes and how to reach it.
pub struct Attached {
    /// The container it runs in.
    pub container: String,
    /// Its exec id.
    pub exec_id: String,
    /// Where the pipes live (removed by [`Containerd::finish_attached`]).
    pub dir: PathBuf,
    /// Its standard input, when asked for.
    pub stdin: Option<pipe::Sender>,
    /// Its standard output (or terminal).
    pub stdout: pipe::Receiver,
    /// Its standard error (none on a terminal).
    pub stderr: Option<pipe::Receiver>,
}

/// The process spec for `spec` run in a container whose OCI runtime spec is `container`: the
/// container's own process with the arguments replaced and the terminal as asked. `None` when
/// the container's spec has no process object.
pub fn attached_process(container: &Value, spec: &AttachSpec) -> Option<Value> {
    let mut process = container.get("process")?.clone();
    let fields = process.as_object_mut()?;
    fields.insert("args".into(), json!(spec.args));
    fields.insert("terminal".into(), json!(spec.terminal.is_some()));
    match spec.terminal {
        Some((columns, rows)) => {
            fields.insert(
                "consoleSize".into(),
                json!({"width": columns, "height": rows}),
            );
        }
        None => {
            fields.remove("consoleSize");
        }
    }
    Some(process)
}

/// Makes a named pipe at `path`, readable and writable by the agent only.
fn make_fifo(path: &Path) -> Result<(), RuntimeError> {
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|e| RuntimeError::Exec {
        container: String::new(),
        reason: format!("cannot make pipe {}: {e}", path.display()),
    })
}

/// Opens the agent's end of a pipe for both reading and writing, so that opening never waits
/// for the shim's end.
fn agent_end() -> pipe::OpenOptions {
    let mut options = pipe::OpenOptions::new();
    options.read_write(true);
    options
}

impl Containerd {
    /// Starts `spec` inside container `id`'s running task with its streams on pipes made in
    /// `dir` (which must not exist yet).
    pub async fn exec_attached(
        &self,
        id: &str,
        spec: &AttachSpec,
        dir: &Path,
    ) -> Result<Attached, RuntimeError> {
        let refuse = |reason: String| RuntimeError::Exec {
            container: id.to_owned(),
            reason,
        };
        if spec.args.is_empty() {
            return Err(refuse("no command to run".into()));
        }
        let runtime_spec = self.runtime_spec(id).await?;
        let process = attached_process(&runtime_spec, spec)
            .ok_or_else(|| refuse("the runtime spec has no process".into()))?;

        std::fs::create_dir_all(dir)
            .map_err(|e| refuse(format!("cannot make {}: {e}", dir.display())))?;
        let path = |name: &str| dir.join(name);
        make_fifo(&path("stdout"))?;
        let stdout = agent_end()
            .open_receiver(path("stdout"))
            .map_err(|e| refuse(format!("cannot open stdout pipe: {e}")))?;
        let stderr = if spec.terminal.is_none() {
            make_fifo(&path("stderr"))?;
            Some(
                agent_end()
                    .open_receiver(path("stderr"))
                    .map_err(|e| refuse(format!("cannot open stderr pipe: {e}")))?,
            )
        } else {
            None
        };
        let stdin = if spec.stdin {
            make_fifo(&path("stdin"))?;
            Some(
                agent_end()
                    .open_sender(path("stdin"))
                    .map_err(|e| refuse(format!("cannot open stdin pipe: {e}")))?,
            )
        } else {
            None
        };
        let text = |name: &str| path(name).to_string_lossy().into_owned();
        let exec_id = format!(
            "r1-session-{}",
            NEXT_ATTACHED.fetch_add(1, Ordering::Relaxed)
        );
        self.client
            .tasks()
            .exec(self.request(ExecProcessRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.clone(),
                stdin: if spec.stdin {
                    text("stdin")
                } else {
                    String::new()
                },
                stdout: text("stdout"),
                stderr: if spec.terminal.is_none() {
                    text("stderr")
                } else {
                    String::new()
                },
                terminal: spec.terminal.is_some(),
                spec: Some(prost_types::Any {
                    type_url: PROCESS_TYPE.into(),
                    value: process.to_string().into_bytes(),
                }),
            }))
            .await
            .map_err(RuntimeError::rpc("exec"))?;
        let attached = Attached {
            container: id.to_owned(),
            exec_id,
            dir: dir.to_owned(),
            stdin,
            stdout,
            stderr,
        };
        if let Err(e) = self
            .client
            .tasks()
            .start(self.request(StartRequest {
                container_id: id.to_owned(),
                exec_id: attached.exec_id.clone(),
            }))
            .await
        {
            self.finish_attached(&attached.container, &attached.exec_id, &attached.dir)
                .await;
            return Err(RuntimeError::rpc("start exec")(e));
        }
        Ok(attached)
    }

    /// Waits for attached process `exec_id` in container `id` to exit; its status (128 + signal
    /// when a signal ended it).
    pub async fn wait_attached(&self, id: &str, exec_id: &str) -> Result<u32, RuntimeError> {
        let status = self
            .client
            .tasks()
            .wait(self.request(WaitRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            }))
            .await
            .map_err(RuntimeError::rpc("wait exec"))?;
        Ok(status.into_inner().exit_status)
    }

    /// Resizes the terminal of attached process `exec_id`.
    pub async fn resize_attached(
        &self,
        id: &str,
        exec_id: &str,
        (columns, rows): (u16, u16),
    ) -> Result<(), RuntimeError> {
        self.client
            .tasks()
            .resize_pty(self.request(ResizePtyRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.to_owned(),
                width: u32::from(columns),
                height: u32::from(rows),
            }))
            .await
            .map_err(RuntimeError::rpc("resize exec"))?;
        Ok(())
    }

    /// Closes the stdin of attached process `exec_id` (the command reads end of file).
    pub async fn close_attached_stdin(&self, id: &str, exec_id: &str) -> Result<(), RuntimeError> {
        self.client
            .tasks()
            .close_io(self.request(CloseIoRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.to_owned(),
                stdin: true,
            }))
            .await
            .map_err(RuntimeError::rpc("close exec stdin"))?;
        Ok(())
    }

    /// Kills attached process `exec_id` (SIGKILL); a process already gone is not an error.
    pub async fn kill_attached(&self, id: &str, exec_id: &str) -> Result<(), RuntimeError> {
        match self
            .client
            .tasks()
            .kill(self.request(KillRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.to_owned(),
                signal: 9,
                all: false,
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(RuntimeError::rpc("kill exec")(status)),
        }
    }

    /// Deletes the record of attached process `exec_id` and its pipes in `dir`.
    pub async fn finish_attached(&self, id: &str, exec_id: &str, dir: &Path) {
        self.delete_exec(id, exec_id).await;
        if let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), "cannot remove session pipes: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_replaces_the_args_and_asks_for_the_terminal_it_wants() {
        let container = json!({
            "process": {
                "terminal": false,
                "user": {"uid": 1000, "gid": 1000},
                "args": ["httpd", "-f"],
                "env": ["PATH=/bin"],
                "cwd": "/www"
            }
        });
        let spec = AttachSpec {
            args: vec!["sh".into()],
            terminal: Some((120, 40)),
            stdin: true,
        };
        let process = attached_process(&container, &spec).expect("process");
        assert_eq!(process["args"], json!(["sh"]));
        assert_eq!(process["terminal"], json!(true));
        assert_eq!(process["consoleSize"], json!({"width": 120, "height": 40}));
        assert_eq!(process["user"], container["process"]["user"]);
        let plain = AttachSpec {
            terminal: None,
            ..spec
        };
        let process = attached_process(&container, &plain).expect("process");
        assert_eq!(process["terminal"], json!(false));
        assert!(process.get("consoleSize").is_none());
        assert_eq!(attached_process(&json!({}), &plain), None);
    }
}
