//! Commands run inside a running container, for exec health checks. containerd's shim starts
//! the command as one more process of the container's task: in its namespaces and cgroup, with
//! its user, environment, capabilities and working directory, so a check is confined exactly
//! like the workload. Its output is discarded; only the exit status counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use containerd_client::services::v1::{
    DeleteProcessRequest, ExecProcessRequest, GetContainerRequest, KillRequest, StartRequest,
    WaitRequest,
};
use serde_json::Value;
use tonic::Code;

use super::attach::{AttachSpec, attached_process};
use super::containerd::{Containerd, RuntimeError};

/// Type URL of an OCI process spec in containerd's `Any`.
pub(super) const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// How long a killed command has to be reaped before its record is deleted anyway.
const REAP_WAIT: Duration = Duration::from_secs(2);

/// Makes exec ids unique within the agent (containerd needs one per live process).
static NEXT_EXEC: AtomicU64 = AtomicU64::new(0);

/// How a command run inside a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    /// It exited with this status (128 + signal when a signal ended it).
    Exited(u32),
    /// It was still running at the deadline, and was killed.
    TimedOut,
}

/// The process spec that runs `args` in a container whose OCI runtime spec is `spec`: the
/// container's own process with its arguments replaced and no terminal. `None` when the spec
/// has no process object.
pub fn process_spec(spec: &Value, args: &[String]) -> Option<Value> {
    let plain = AttachSpec {
        args: args.to_vec(),
        terminal: None,
        stdin: false,
    };
    attached_process(spec, &plain)
}

impl Containerd {
    /// Runs `args` inside container `id`'s running task, waiting up to `timeout` for it to
    /// exit; a command still running then is killed. The process record is always deleted.
    pub async fn exec(
        &self,
        id: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError> {
        let refuse = |reason: &str| RuntimeError::Exec {
            container: id.to_owned(),
            reason: reason.to_owned(),
        };
        if args.is_empty() {
            return Err(refuse("no command to run"));
        }
        let spec = self.runtime_spec(id).await?;
        let process =
            process_spec(&spec, args).ok_or_else(|| refuse("the runtime spec has no process"))?;
        let exec_id = format!("r1-exec-{}", NEXT_EXEC.fetch_add(1, Ordering::Relaxed));
        self.client
            .tasks()
            .exec(self.request(ExecProcessRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.clone(),
                spec: Some(prost_types::Any {
                    type_url: PROCESS_TYPE.into(),
                    value: process.to_string().into_bytes(),
                }),
                ..Default::default()
            }))
            .await
            .map_err(RuntimeError::rpc("exec"))?;
        let outcome = self.start_and_wait(id, &exec_id, timeout).await;
        self.delete_exec(id, &exec_id).await;
        outcome
    }

    /// The OCI runtime spec of container `id`, as containerd holds it.
    pub(super) async fn runtime_spec(&self, id: &str) -> Result<Value, RuntimeError> {
        let refuse = |reason: &str| RuntimeError::Exec {
            container: id.to_owned(),
            reason: reason.to_owned(),
        };
        let container = self
            .client
            .containers()
            .get(self.request(GetContainerRequest { id: id.to_owned() }))
            .await
            .map_err(RuntimeError::rpc("get container"))?
            .into_inner()
            .container
            .ok_or_else(|| refuse("containerd returned no container"))?;
        container
            .spec
            .as_ref()
            .and_then(|any| serde_json::from_slice(&any.value).ok())
            .ok_or_else(|| refuse("the container has no readable runtime spec"))
    }

    /// Deletes the record of exec process `exec_id` in container `id` (one already gone is
    /// fine; another failure is logged).
    pub(super) async fn delete_exec(&self, id: &str, exec_id: &str) {
        if let Err(status) = self
            .client
            .tasks()
            .delete_process(self.request(DeleteProcessRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            }))
            .await
            && status.code() != Code::NotFound
        {
            tracing::warn!(
                container = id,
                exec_id,
                "cannot delete exec process: {status}"
            );
        }
    }

    async fn start_and_wait(
        &self,
        id: &str,
        exec_id: &str,
        timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError> {
        self.client
            .tasks()
            .start(self.request(StartRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            }))
            .await
            .map_err(RuntimeError::rpc("start exec"))?;
        let wait = || {
            let mut tasks = self.client.tasks();
            let request = self.request(WaitRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            });
            async move { tasks.wait(request).await }
        };
        if let Ok(exited) = tokio::time::timeout(timeout, wait()).await {
            let status = exited.map_err(RuntimeError::rpc("wait exec"))?;
            return Ok(ExecOutcome::Exited(status.into_inner().exit_status));
        }
        self.client
            .tasks()
            .kill(self.request(KillRequest {
                container_id: id.to_owned(),
                exec_id: exec_id.to_owned(),
                signal: 9,
                all: false,
            }))
            .await
            .map_err(RuntimeError::rpc("kill exec"))?;
        if tokio::time::timeout(REAP_WAIT, wait()).await.is_err() {
            tracing::warn!(
                container = id,
                exec_id,
                "killed exec process not reaped in time"
            );
        }
        Ok(ExecOutcome::TimedOut)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_command_replaces_the_args_and_keeps_the_rest_of_the_process() {
        let spec = json!({
            "ociVersion": "1.1.0",
            "process": {
                "terminal": true,
                "consoleSize": {"height": 24, "width": 80},
                "user": {"uid": 1000, "gid": 1000},
                "args": ["httpd", "-f"],
                "env": ["PATH=/bin"],
                "cwd": "/www",
                "noNewPrivileges": true
            }
        });
        let process =
            process_spec(&spec, &["test".into(), "-f".into(), "/x".into()]).expect("process");
        assert_eq!(process["args"], json!(["test", "-f", "/x"]));
        assert_eq!(process["terminal"], json!(false));
        assert!(process.get("consoleSize").is_none());
        assert_eq!(process["user"], spec["process"]["user"]);
        assert_eq!(process["env"], spec["process"]["env"]);
        assert_eq!(process["cwd"], json!("/www"));
        assert_eq!(process["noNewPrivileges"], json!(true));
    }

    #[test]
    fn a_spec_without_a_process_has_no_exec_process() {
        assert_eq!(
            process_spec(&json!({"ociVersion": "1.1.0"}), &["true".into()]),
            None
        );
        assert_eq!(
            process_spec(&json!({"process": "odd"}), &["true".into()]),
            None
        );
    }
}
