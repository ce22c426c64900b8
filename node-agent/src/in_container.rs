//! Services the agent offers each running container on its own loopback: for every container
//! with a running task, a listener bound to 127.0.0.1:`port` inside the container's network
//! namespace (nothing outside the container reaches it, and the agent knows which workload
//! every connection comes from), opened when the task starts and closed when it stops. The
//! R1FS workload API and CSTORE's Redis port are served this way.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use r1_protocol::messages::WorkloadId;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::ports::PidTable;

/// How often the running containers are checked for listeners to open or close.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Keeps a listener on `port` in every running container and runs `serve(workload,
/// listener)` on each, until the task is dropped. `what` names the service in logs.
pub async fn serve_each<F, S>(pids: PidTable, port: u16, what: &'static str, serve: S)
where
    S: Fn(WorkloadId, TcpListener) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut open: BTreeMap<WorkloadId, (u32, JoinHandle<()>)> = BTreeMap::new();
    let mut failed: BTreeMap<WorkloadId, u32> = BTreeMap::new();
    loop {
        let running: BTreeMap<WorkloadId, u32> = pids.lock().map(|p| p.clone()).unwrap_or_default();
        open.retain(|id, (pid, task)| {
            let keep = running.get(id) == Some(pid);
            if !keep {
                task.abort();
            }
            keep
        });
        failed.retain(|id, pid| running.get(id) == Some(pid));
        for (&id, &pid) in &running {
            if open.contains_key(&id) || failed.contains_key(&id) {
                continue;
            }
            match listen_in_namespace(pid, port).await {
                Ok(listener) => {
                    open.insert(id, (pid, tokio::spawn(serve(id, listener))));
                }
                Err(e) => {
                    tracing::warn!(
                        job = id.job,
                        replica = id.replica,
                        port,
                        "cannot open the {what} in the container: {e}"
                    );
                    failed.insert(id, pid);
                }
            }
        }
        tokio::time::sleep(SYNC_EVERY).await;
    }
}

/// Binds 127.0.0.1:`port` inside the network namespace of process `pid`; the socket stays in
/// that namespace, the agent accepts on it from its own.
async fn listen_in_namespace(pid: u32, port: u16) -> io::Result<TcpListener> {
    let listener = crate::network::namespace::open_in(pid, "r1-netns-listen", move || {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .await?;
    TcpListener::from_std(listener)
}
