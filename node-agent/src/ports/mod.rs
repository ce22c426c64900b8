//! Exposing workload ports on the node. Each container has its own network namespace, so two
//! replicas listening on the same container port never clash; the agent listens on each host
//! port and forwards every TCP connection into the container's namespace, dialling from a
//! short-lived thread that has entered it. UDP ports are forwarded per client ([`udp`]).
//!
//! Generations of one job may claim the same fixed host port (a rollout runs the new replica
//! beside the old one). The listener stays open across them and each new connection goes to
//! the oldest claimant that is running: the old replica until it stops, then the new one, with
//! no moment where the port is closed.

pub mod udp;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use r1_protocol::messages::{PortProtocol, WorkloadId};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
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
    #[error("no free {protocol} host port in {first}-{last}")]
    Exhausted {
        /// The protocol of the port looked for.
        protocol: PortProtocol,
        /// Range start.
        first: u16,
        /// Range end.
        last: u16,
    },
}

/// Opens a TCP connection to `port` on the loopback of the network namespace of process `pid`.
pub async fn dial_in_namespace(pid: u32, port: u16) -> std::io::Result<TcpStream> {
    let stream = crate::network::namespace::open_in(pid, "r1-netns-dial", move || {
        let stream = std::net::TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            std::time::Duration::from_secs(5),
        )?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    })
    .await?;
    TcpStream::from_std(stream)
}

/// Workloads claiming one host port, oldest claim first, each with its container port.
pub(crate) type Claimants = Arc<Mutex<Vec<(WorkloadId, u16)>>>;

/// One listening host port forwarding to the container port of its first running claimant.
struct Forward {
    claimants: Claimants,
    task: JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port of the host: its protocol and number.
pub type HostPort = (PortProtocol, u16);

/// The node's open host ports, kept equal to what the desired workloads need.
pub struct PortForwarder {
    bind: IpAddr,
    pids: PidTable,
    open: BTreeMap<HostPort, Forward>,
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
    /// the ports nobody claims any more, opens the missing ones, and keeps each port's claimants
    /// in claim order. Returns the claims whose port could not be opened.
    pub async fn sync(
        &mut self,
        wanted: &BTreeMap<WorkloadId, BTreeMap<HostPort, u16>>,
    ) -> Vec<(WorkloadId, PortError)> {
        let mut claims: BTreeMap<HostPort, Vec<(WorkloadId, u16)>> = BTreeMap::new();
        for (&workload, ports) in wanted {
            for (&host, &container_port) in ports {
                claims
                    .entry(host)
                    .or_default()
                    .push((workload, container_port));
            }
        }
        self.open.retain(|host, _| claims.contains_key(host));
        let mut failures = Vec::new();
        for (host, wanted_claims) in claims {
            if let Some(forward) = self.open.get(&host) {
                if let Ok(mut claimants) = forward.claimants.lock() {
                    *claimants = in_claim_order(&claimants, wanted_claims);
                }
                continue;
            }
            let (protocol, port) = host;
            let addr = SocketAddr::new(self.bind, port);
            let claimants: Claimants = Arc::new(Mutex::new(wanted_claims.clone()));
            let pids = self.pids.clone();
            let task = match protocol {
                PortProtocol::Tcp => TcpListener::bind(addr)
                    .await
                    .map(|listener| tokio::spawn(serve(listener, claimants.clone(), pids))),
                PortProtocol::Udp => UdpSocket::bind(addr).await.map(|socket| {
                    let limits = udp::Limits::default();
                    tokio::spawn(udp::serve(socket, claimants.clone(), pids, limits))
                }),
            };
            match task {
                Ok(task) => {
                    self.open.insert(host, Forward { claimants, task });
                }
                Err(source) => {
                    let reason = source.to_string();
                    for (workload, _) in wanted_claims {
                        failures.push((
                            workload,
                            PortError::Bind {
                                addr,
                                source: std::io::Error::new(source.kind(), reason.clone()),
                            },
                        ));
                    }
                }
            }
        }
        failures
    }
}

/// The claims of `wanted` ordered by age: those already in `current` keep their order (with
/// their container port as now wanted), new ones follow in the order given.
fn in_claim_order(
    current: &[(WorkloadId, u16)],
    mut wanted: Vec<(WorkloadId, u16)>,
) -> Vec<(WorkloadId, u16)> {
    let mut ordered: Vec<(WorkloadId, u16)> = current
        .iter()
        .filter_map(|(id, _)| wanted.iter().find(|(w, _)| w == id).copied())
        .collect();
    wanted.retain(|claim| !ordered.contains(claim));
    ordered.extend(wanted);
    ordered
}

/// The claimant a new connection goes to: the oldest one whose container is running.
pub(crate) fn first_running(
    claimants: &Claimants,
    pids: &PidTable,
) -> Option<(WorkloadId, u32, u16)> {
    let claimants = claimants.lock().ok()?;
    let pids = pids.lock().ok()?;
    claimants
        .iter()
        .find_map(|&(id, port)| pids.get(&id).map(|&pid| (id, pid, port)))
}

async fn serve(listener: TcpListener, claimants: Claimants, pids: PidTable) {
    loop {
        let Ok((mut inbound, peer)) = listener.accept().await else {
            continue;
        };
        let target = first_running(&claimants, &pids);
        tokio::spawn(async move {
            let Some((workload, pid, port)) = target else {
                tracing::debug!(%peer, "connection refused: no claimant of the port is running");
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

/// Picks a free `protocol` port on `bind` in `first..=last`, skipping `taken`, starting from a
/// place derived from `seed` so concurrent choosers rarely collide.
pub fn choose_host_port(
    protocol: PortProtocol,
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
        let addr = SocketAddr::new(bind, port);
        let free = match protocol {
            PortProtocol::Tcp => std::net::TcpListener::bind(addr).is_ok(),
            PortProtocol::Udp => std::net::UdpSocket::bind(addr).is_ok(),
        };
        if free {
            return Ok(port);
        }
    }
    Err(PortError::Exhausted {
        protocol,
        first,
        last,
    })
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
        let tcp = PortProtocol::Tcp;
        let chosen = choose_host_port(tcp, bind, busy_port, busy_port.saturating_add(2), &taken, 0);
        let chosen = chosen.unwrap();
        assert_ne!(chosen, busy_port);
        assert!(!taken.contains(&chosen));
        let none = choose_host_port(tcp, bind, busy_port, busy_port, &Default::default(), 0);
        assert!(matches!(none, Err(PortError::Exhausted { .. })));
        // A port taken for TCP is free for UDP, and one taken for UDP is not.
        let udp = PortProtocol::Udp;
        assert_eq!(
            choose_host_port(udp, bind, busy_port, busy_port, &Default::default(), 0).unwrap(),
            busy_port
        );
        let busy_udp = std::net::UdpSocket::bind((bind, 0)).unwrap();
        let udp_port = busy_udp.local_addr().unwrap().port();
        let none = choose_host_port(udp, bind, udp_port, udp_port, &Default::default(), 0);
        assert!(matches!(none, Err(PortError::Exhausted { .. })));
    }

    fn id(replica: u32) -> WorkloadId {
        WorkloadId { job: 3, replica }
    }

    #[test]
    fn claims_keep_their_age_and_new_ones_queue_behind() {
        let current = vec![(id(20_000), 80), (id(10_000), 80)];
        let wanted = vec![(id(10_000), 80), (id(20_000), 8080), (id(30_000), 80)];
        assert_eq!(
            in_claim_order(&current, wanted),
            vec![(id(20_000), 8080), (id(10_000), 80), (id(30_000), 80)]
        );
        assert_eq!(
            in_claim_order(&current, vec![(id(10_000), 80)]),
            vec![(id(10_000), 80)]
        );
    }

    #[test]
    fn connections_go_to_the_oldest_running_claimant() {
        let claimants: Claimants = Arc::new(Mutex::new(vec![(id(1), 80), (id(2), 8080)]));
        let pids: PidTable = Arc::default();
        assert_eq!(first_running(&claimants, &pids), None);
        pids.lock().unwrap().insert(id(2), 200);
        assert_eq!(first_running(&claimants, &pids), Some((id(2), 200, 8080)));
        pids.lock().unwrap().insert(id(1), 100);
        assert_eq!(first_running(&claimants, &pids), Some((id(1), 100, 80)));
    }
}
