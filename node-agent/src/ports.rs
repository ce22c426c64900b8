//! Exposing workload ports on the node. Each container has its own network namespace (only
//! loopback), so two replicas listening on the same container port never clash; the agent
//! listens on each host port and forwards every TCP connection into the container's
//! namespace, dialling from a short-lived thread that has entered it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use r1_protocol::messages::WorkloadId;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Where each workload's container currently runs (its init pid), shared with the forwarders.
pub type PidTable = Arc<Mutex<BTreeMap<WorkloadId, u32>>>;

/// Why a port cannot be exposed.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The host port is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No free port is left in the node's range.
    #[error("no free host port in {first}-{last}")]
    Exhausted {
        /// Range start.
        first: u16,
        /// Range end.
        last: u16,
    },
}

/// Opens a TCP connection to `port` on the loopback of the network namespace of process `pid`.
pub async fn dial_in_namespace(pid: u32, port: u16) -> std::io::Result<TcpStream> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("r1-netns-dial".into())
        .spawn(move || {
            let result = (|| -> std::io::Result<std::net::TcpStream> {
                let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                let stream = std::net::TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], port)),
                    std::time::Duration::from_secs(5),
                )?;
                stream.set_nonblocking(true)?;
                Ok(stream)
            })();
            let _ = reply.send(result);
        })?;
    let stream = answer
        .await
        .map_err(|_| std::io::Error::other("namespace dialler thread vanished"))??;
    TcpStream::from_std(stream)
}

/// One listening host port forwarding to one container port.
struct Forward {
    container_port: u16,
    task: JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The node's open host ports, kept equal to what the desired workloads need.
pub struct PortForwarder {
    bind: IpAddr,
    pids: PidTable,
    open: BTreeMap<(WorkloadId, u16), Forward>,
}

impl PortForwarder {
    /// Forwarders listening on `bind`, reaching containers through `pids`.
    pub fn new(bind: IpAddr, pids: PidTable) -> Self {
        Self {
            bind,
            pids,
            open: BTreeMap::new(),
        }
    }

    /// Makes the open ports exactly `wanted` (workload → host port → container port): closes
    /// the others and opens the missing ones. Returns the ports that could not be opened.
    pub async fn sync(
        &mut self,
        wanted: &BTreeMap<WorkloadId, BTreeMap<u16, u16>>,
    ) -> Vec<(WorkloadId, PortError)> {
        self.open.retain(|(workload, host), forward| {
            wanted
                .get(workload)
                .and_then(|ports| ports.get(host))
                .is_some_and(|&c| c == forward.container_port)
        });
        let mut failures = Vec::new();
        for (&workload, ports) in wanted {
            for (&host, &container_port) in ports {
                if self.open.contains_key(&(workload, host)) {
                    continue;
                }
                let addr = SocketAddr::new(self.bind, host);
                match TcpListener::bind(addr).await {
                    Ok(listener) => {
                        let task = tokio::spawn(serve(
                            listener,
                            workload,
                            container_port,
                            self.pids.clone(),
                        ));
                        self.open.insert(
                            (workload, host),
                            Forward {
                                container_port,
                                task,
                            },
                        );
                    }
                    Err(source) => failures.push((workload, PortError::Bind { addr, source })),
                }
            }
        }
        failures
    }
}

async fn serve(listener: TcpListener, workload: WorkloadId, port: u16, pids: PidTable) {
    loop {
        let Ok((mut inbound, peer)) = listener.accept().await else {
            continue;
        };
        let pid = pids
            .lock()
            .ok()
            .and_then(|table| table.get(&workload).copied());
        tokio::spawn(async move {
            let Some(pid) = pid else {
                tracing::debug!(?workload, %peer, "connection refused: workload not running");
                return;
            };
            match dial_in_namespace(pid, port).await {
                Ok(mut outbound) => {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => {
                    tracing::debug!(?workload, %peer, "cannot reach container port {port}: {e}")
                }
            }
        });
    }
}

/// Picks a free TCP port on `bind` in `first..=last`, skipping `taken`, starting from a place
/// derived from `seed` so concurrent choosers rarely collide.
pub fn choose_host_port(
    bind: IpAddr,
    first: u16,
    last: u16,
    taken: &std::collections::BTreeSet<u16>,
    seed: u64,
) -> Result<u16, PortError> {
    let span = u64::from(last.saturating_sub(first)) + 1;
    for step in 0..span {
        let offset = (seed.wrapping_add(step)) % span;
        let Ok(port) = u16::try_from(u64::from(first) + offset) else {
            continue;
        };
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(SocketAddr::new(bind, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(PortError::Exhausted { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_a_free_port_in_range_skipping_taken_ones() {
        let bind: IpAddr = [127, 0, 0, 1].into();
        let busy = std::net::TcpListener::bind((bind, 0)).unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let taken = std::collections::BTreeSet::from([busy_port.wrapping_add(1)]);
        let chosen = choose_host_port(bind, busy_port, busy_port.saturating_add(2), &taken, 0);
        let chosen = chosen.unwrap();
        assert_ne!(chosen, busy_port);
        assert!(!taken.contains(&chosen));
        let none = choose_host_port(bind, busy_port, busy_port, &Default::default(), 0);
        assert!(matches!(none, Err(PortError::Exhausted { .. })));
    }
}
