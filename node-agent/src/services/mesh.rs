//! The node's part in calls between a project's jobs: it keeps the listeners and `/etc/hosts`
//! of every local replica as [`super::plan`] says (rechecked every second and at once when a
//! table arrives). A service's address and port are not bound as such (the replica may listen
//! on the same port on all its addresses): the listener takes a free loopback port of the
//! replica's namespace, and an iptables rule there redirects the service's address and port to
//! it. The mesh forwards each call a replica makes to a ready replica of the service — in
//! its namespace when it runs here, else over a peer-to-peer stream to its node — trying the
//! next one when one cannot be reached, and serves the calls other nodes forward here once
//! [`ServiceBook::admit`] lets them in.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use r1_protocol::Address;
use r1_protocol::messages::WorkloadId;
use r1_protocol::services::ServiceTable;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::book::ServiceBook;
use super::plan::{Listener, plan};
use super::wire::{self, CallHead};
use crate::metrics::{CommandLabels, Metrics};
use crate::ports::dial_in_namespace;
use crate::state::NodeState;

/// How often listeners are checked against the plan without a new table.
const RECHECK: Duration = Duration::from_secs(1);

/// What the mesh needs from the node.
#[derive(Clone)]
pub struct MeshParts {
    /// This node.
    pub me: Address,
    /// The peer-to-peer layer, for calls to other nodes (none: only local replicas are reached).
    pub p2p: Option<r1_p2p::Client>,
    /// The running replicas and their pids.
    pub state: Arc<NodeState>,
    /// Where each replica's `/etc/hosts` is kept.
    pub hosts_dir: PathBuf,
    /// Counts calls.
    pub metrics: Arc<Metrics>,
}

/// The node's service mesh.
#[derive(Clone)]
pub struct ServiceMesh {
    parts: MeshParts,
    book: Arc<Mutex<ServiceBook>>,
    wake: Arc<Notify>,
    next: Arc<AtomicUsize>,
}

impl ServiceMesh {
    /// A mesh with no tables yet; its hosts directory is made.
    pub fn new(parts: MeshParts) -> std::io::Result<Self> {
        std::fs::create_dir_all(&parts.hosts_dir)?;
        Ok(Self {
            parts,
            book: Arc::default(),
            wake: Arc::default(),
            next: Arc::default(),
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, ServiceBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a checked table; listeners follow at once when it is newer than the one held.
    pub fn offer(&self, table: ServiceTable) -> bool {
        let taken = self.book().offer(table);
        if taken {
            self.wake.notify_one();
        }
        taken
    }

    /// The `/etc/hosts` of replica `workload`, made (naming localhost only) if missing, for its
    /// container to mount; the path and the error when it cannot be made.
    pub fn hosts_file(&self, workload: WorkloadId) -> Result<PathBuf, (PathBuf, std::io::Error)> {
        let path = self.hosts_path(workload);
        if !path.exists()
            && let Err(e) = std::fs::write(&path, "127.0.0.1\tlocalhost\n::1\tlocalhost\n")
        {
            return Err((path, e));
        }
        Ok(path)
    }

    /// Deletes the `/etc/hosts` of replica `workload`, once no container of it is left.
    pub fn forget(&self, workload: WorkloadId) {
        match std::fs::remove_file(self.hosts_path(workload)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(?workload, "cannot delete the hosts file: {e}"),
        }
    }

    fn hosts_path(&self, workload: WorkloadId) -> PathBuf {
        self.parts
            .hosts_dir
            .join(format!("{}-{}.hosts", workload.job, workload.replica))
    }

    /// Keeps listeners and hosts files as the plan says, and serves calls from other nodes,
    /// until the process ends.
    pub async fn run(self) {
        tokio::spawn(self.clone().serve_peers());
        let mut open: HashMap<Listener, Open> = HashMap::new();
        loop {
            self.reconcile(&mut open).await;
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(RECHECK) => {}
            }
        }
    }

    async fn reconcile(&self, open: &mut HashMap<Listener, Open>) {
        let running: BTreeMap<WorkloadId, u32> = self
            .parts
            .state
            .pids
            .lock()
            .map(|pids| pids.clone())
            .unwrap_or_default();
        let (wanted, hosts) = plan(&self.book(), &running);
        let gone: Vec<Listener> = open
            .iter()
            .filter(|(listener, held)| !wanted.contains(listener) || held.task.is_finished())
            .map(|(listener, _)| *listener)
            .collect();
        for listener in gone {
            if let Some(held) = open.remove(&listener) {
                held.task.abort();
                // The namespace may be gone with its container: then so is the rule.
                let _ = redirect(&listener, held.local_port, "-D").await;
            }
        }
        for listener in wanted {
            if open.contains_key(&listener) {
                continue;
            }
            let local = SocketAddr::from(([127, 0, 0, 1], 0));
            let opened = async {
                let socket = bind_in_namespace(listener.pid, local).await?;
                let local_port = socket.local_addr()?.port();
                redirect(&listener, local_port, "-A").await?;
                Ok::<_, std::io::Error>((socket, local_port))
            };
            match opened.await {
                Ok((socket, local_port)) => {
                    let task = tokio::spawn(self.clone().accept(socket, listener));
                    open.insert(listener, Open { task, local_port });
                }
                Err(e) => tracing::warn!(?listener, "cannot listen for a service: {e}"),
            }
        }
        self.parts.metrics.service_listeners.set(open.len() as i64);
        for (workload, text) in hosts {
            let path = self.hosts_path(workload);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                // Written in place: the container's bind mount follows the file's inode.
                if let Err(e) = std::fs::write(&path, text) {
                    tracing::warn!(?workload, "cannot write the hosts file: {e}");
                }
            }
        }
    }

    async fn accept(self, socket: TcpListener, listener: Listener) {
        loop {
            let Ok((conn, _)) = socket.accept().await else {
                return;
            };
            tokio::spawn(self.clone().forward(conn, listener));
        }
    }

    fn count(&self, direction: &str, outcome: &str) {
        self.parts
            .metrics
            .service_calls
            .get_or_create(&CommandLabels {
                kind: direction.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Forwards `conn`, made by a local replica to `listener`, to a ready replica of the
    /// service: the next in turn, else the ones after it.
    pub async fn forward(self, mut conn: TcpStream, listener: Listener) {
        let mut replicas = self.book().ready(listener.job);
        if replicas.is_empty() {
            tracing::warn!(job = listener.job, "service call: no ready replica");
            self.count("out", "failed");
            return;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % replicas.len();
        replicas.rotate_left(start);
        for replica in replicas {
            if replica.node == self.parts.me {
                let pid = self
                    .parts
                    .state
                    .pids
                    .lock()
                    .ok()
                    .and_then(|p| p.get(&replica.workload).copied());
                let Some(pid) = pid else { continue };
                match dial_in_namespace(pid, listener.port).await {
                    Ok(mut target) => {
                        self.count("out", "local");
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut target).await;
                        return;
                    }
                    Err(e) => tracing::debug!(?replica, "service replica unreachable: {e}"),
                }
                continue;
            }
            let Some(p2p) = &self.parts.p2p else { continue };
            let head = CallHead {
                caller: listener.workload,
                target: replica.workload,
                port: listener.port,
            };
            match open_remote(p2p, replica.node, &head).await {
                Ok(mut stream) => {
                    self.count("out", "remote");
                    splice(&mut conn, &mut stream).await;
                    return;
                }
                Err(e) => {
                    tracing::info!(node = %replica.node, ?head, "service call not taken: {e}")
                }
            }
        }
        self.count("out", "failed");
    }

    /// Serves the calls other nodes forward here, until the peer-to-peer layer stops.
    pub async fn serve_peers(self) {
        let Some(p2p) = &self.parts.p2p else {
            return;
        };
        let mut incoming = match p2p.accept_streams(wire::PROTOCOL) {
            Ok(incoming) => incoming,
            Err(e) => {
                tracing::error!("service calls from peers cannot be served: {e}");
                return;
            }
        };
        while let Some((from, stream)) = incoming.next().await {
            tokio::spawn(self.clone().serve_peer(from, stream));
        }
    }

    /// Serves one call another node forwarded here.
    async fn serve_peer(self, from: Address, stream: r1_p2p::Stream) {
        let mut stream = stream.compat();
        let head = match wire::read_head(&mut stream).await {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(%from, "service call refused: {e}");
                self.count("in", "refused");
                return;
            }
        };
        let admitted = self
            .book()
            .admit(self.parts.me, from, head.caller, head.target, head.port)
            .map_err(|e| e.to_string());
        let pid = self
            .parts
            .state
            .pids
            .lock()
            .ok()
            .and_then(|p| p.get(&head.target).copied());
        let target = match (admitted, pid) {
            (Ok(()), Some(pid)) => dial_in_namespace(pid, head.port)
                .await
                .map_err(|e| e.to_string()),
            (Ok(()), None) => Err(format!("{:?} does not run here now", head.target)),
            (Err(why), _) => Err(why),
        };
        match target {
            Ok(mut target) => {
                if wire::write_answer(&mut stream, None).await.is_ok() {
                    self.count("in", "local");
                    splice(&mut stream, &mut target).await;
                }
            }
            Err(why) => {
                tracing::warn!(%from, ?head, "service call refused: {why}");
                self.count("in", "refused");
                let _ = wire::write_answer(&mut stream, Some(&why)).await;
            }
        }
    }
}

/// Buffer per direction of a call carried over a peer-to-peer stream: large, so that each
/// noise frame and yamux frame carries as much as it can.
const STREAM_BUFFER: usize = 64 << 10;

/// Copies both ways between a caller or served connection and a peer-to-peer stream until
/// both ends close.
async fn splice<A, B>(a: &mut A, b: &mut B)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = tokio::io::copy_bidirectional_with_sizes(a, b, STREAM_BUFFER, STREAM_BUFFER).await;
}

/// A listener the mesh keeps: its task and the loopback port the service is redirected to.
struct Open {
    task: JoinHandle<()>,
    local_port: u16,
}

/// Adds (`-A`) or deletes (`-D`) the rule in the namespace of `listener`'s replica that sends
/// its service address and port to `local_port`.
async fn redirect(listener: &Listener, local_port: u16, action: &str) -> std::io::Result<()> {
    let output = tokio::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", listener.pid))
        .args([
            "iptables", "-w", "-t", "nat", action, "OUTPUT", "-p", "tcp", "-d",
        ])
        .arg(format!("{}/32", listener.ip))
        .args([
            "--dport",
            &listener.port.to_string(),
            "-j",
            "REDIRECT",
            "--to-ports",
        ])
        .arg(local_port.to_string())
        .output()
        .await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "iptables in the replica's namespace: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A stream to `node` carrying the call `head`, once the node accepted it.
async fn open_remote(
    p2p: &r1_p2p::Client,
    node: Address,
    head: &CallHead,
) -> Result<tokio_util::compat::Compat<r1_p2p::Stream>, String> {
    let stream = p2p
        .open_stream(node, wire::PROTOCOL)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = stream.compat();
    wire::write_head(&mut stream, head)
        .await
        .map_err(|e| e.to_string())?;
    wire::read_answer(&mut stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A listener on `addr` inside the network namespace of process `pid`, made from a short-lived
/// thread that entered it (the socket stays in that namespace).
pub async fn bind_in_namespace(pid: u32, addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = crate::network::namespace::open_in(pid, "r1-netns-bind", move || {
        let socket = std::net::TcpListener::bind(addr)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    })
    .await?;
    TcpListener::from_std(socket)
}
