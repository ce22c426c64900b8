//! UDP host ports. UDP has no connections, so the forwarder keeps a *flow* per client address:
//! a socket inside the claimant's network namespace, connected to the container port, made on
//! the client's first datagram. Datagrams from the client go out through it; what the container
//! answers on it goes back to that client from the host port. A flow ends after
//! [`Limits::idle`] without a datagram either way, or when the container refuses (its port
//! closed, its replica gone), and the next datagram opens a new one to the oldest running
//! claimant, as a new TCP connection would. A port holds at most [`Limits::max_flows`]: past
//! that, datagrams of new clients are dropped, so a flood from spoofed addresses costs bounded
//! memory and threads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::{Claimants, PidTable, first_running};

/// The largest datagram forwarded (the largest UDP payload over IPv4).
const MAX_DATAGRAM: usize = 65_507;

/// How long flows live and how many a port keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A flow without a datagram either way for this long ends.
    pub idle: Duration,
    /// Flows one host port keeps at once.
    pub max_flows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(60),
            max_flows: 1024,
        }
    }
}

/// One client's flow: the socket in the container's namespace and the task relaying its
/// answers back.
struct Flow {
    inner: Arc<UdpSocket>,
    last_active: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards the datagrams arriving on `socket` to the claimants' container ports, until aborted.
pub async fn serve(socket: UdpSocket, claimants: Claimants, pids: PidTable, limits: Limits) {
    let outer = Arc::new(socket);
    let started = Instant::now();
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((len, client)) = outer.recv_from(&mut buf).await else {
            continue;
        };
        flows.retain(|_, flow| !flow.task.is_finished());
        if !flows.contains_key(&client) {
            if flows.len() >= limits.max_flows {
                tracing::debug!(%client, "UDP datagram dropped: the port's flows are full");
                continue;
            }
            let Some((workload, pid, port)) = first_running(&claimants, &pids) else {
                tracing::debug!(%client, "UDP datagram dropped: no claimant of the port runs");
                continue;
            };
            match connect_in_namespace(pid, port).await {
                Ok(inner) => {
                    let flow = start_flow(inner, outer.clone(), client, started, limits.idle);
                    flows.insert(client, flow);
                }
                Err(e) => {
                    tracing::debug!(?workload, %client, "cannot reach UDP port {port}: {e}");
                    continue;
                }
            }
        }
        if let Some(flow) = flows.get(&client) {
            flow.last_active
                .store(elapsed_ms(started), Ordering::Relaxed);
            if let Err(e) = flow.inner.send(&buf[..len]).await {
                tracing::debug!(%client, "UDP datagram not delivered to the container: {e}");
            }
        }
    }
}

/// Starts relaying what the container sends on `inner` back to `client` through `outer`.
fn start_flow(
    inner: UdpSocket,
    outer: Arc<UdpSocket>,
    client: SocketAddr,
    started: Instant,
    idle: Duration,
) -> Flow {
    let inner = Arc::new(inner);
    let last_active = Arc::new(AtomicU64::new(elapsed_ms(started)));
    let task = tokio::spawn(relay_answers(
        inner.clone(),
        outer,
        client,
        last_active.clone(),
        started,
        idle,
    ));
    Flow {
        inner,
        last_active,
        task,
    }
}

/// The flow's task: answers go back to the client until the flow is idle or refused.
async fn relay_answers(
    inner: Arc<UdpSocket>,
    outer: Arc<UdpSocket>,
    client: SocketAddr,
    last_active: Arc<AtomicU64>,
    started: Instant,
    idle: Duration,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let quiet_for = Duration::from_millis(
            elapsed_ms(started).saturating_sub(last_active.load(Ordering::Relaxed)),
        );
        let Some(wait) = idle.checked_sub(quiet_for).filter(|w| !w.is_zero()) else {
            return;
        };
        match tokio::time::timeout(wait, inner.recv(&mut buf)).await {
            Ok(Ok(len)) => {
                last_active.store(elapsed_ms(started), Ordering::Relaxed);
                if let Err(e) = outer.send_to(&buf[..len], client).await {
                    tracing::debug!(%client, "UDP answer not delivered: {e}");
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(%client, "UDP flow ended: {e}");
                return;
            }
            Err(_) => {}
        }
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A UDP socket in the network namespace of process `pid`, connected to `port` on its loopback,
/// made from a short-lived thread that entered the namespace (the socket stays in it).
pub async fn connect_in_namespace(pid: u32, port: u16) -> std::io::Result<UdpSocket> {
    let socket = crate::network::namespace::open_in(pid, "r1-netns-udp", move || {
        let socket = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    })
    .await?;
    UdpSocket::from_std(socket)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use r1_protocol::messages::WorkloadId;

    use super::*;

    /// A UDP server on loopback that answers each datagram with its sender's port, then the
    /// datagram.
    async fn echo_server() -> u16 {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let mut answer = format!("{}:", from.port()).into_bytes();
                answer.extend_from_slice(&buf[..len]);
                let _ = socket.send_to(&answer, from).await;
            }
        });
        port
    }

    /// A host port forwarding to `target` in this process's own namespace.
    async fn forwarder(target: u16, limits: Limits) -> (SocketAddr, JoinHandle<()>) {
        let id = WorkloadId { job: 1, replica: 0 };
        let claimants: Claimants = Arc::new(Mutex::new(vec![(id, target)]));
        let pids: PidTable = Arc::new(Mutex::new(BTreeMap::from([(id, std::process::id())])));
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        (addr, tokio::spawn(serve(socket, claimants, pids, limits)))
    }

    /// Sends `text` from `client` to `to`; the answer, if one comes within 500 ms.
    async fn ask(client: &UdpSocket, to: SocketAddr, text: &str) -> Option<String> {
        client.send_to(text.as_bytes(), to).await.unwrap();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let wait = tokio::time::timeout(Duration::from_millis(500), client.recv_from(&mut buf));
        let (len, from) = wait.await.ok()?.ok()?;
        assert_eq!(from, to, "answers come from the host port");
        Some(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// The port the echo server saw the flow come from, and the text echoed.
    fn split(answer: &str) -> (u16, &str) {
        let (port, text) = answer.split_once(':').unwrap();
        (port.parse().unwrap(), text)
    }

    #[tokio::test]
    async fn each_client_gets_its_own_answers_through_its_own_flow() {
        let (addr, _task) = forwarder(echo_server().await, Limits::default()).await;
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let answer_a = ask(&a, addr, "from a").await.unwrap();
        let (a_flow, text) = split(&answer_a);
        assert_eq!(text, "from a");
        let answer_b = ask(&b, addr, "from b").await.unwrap();
        let (b_flow, text) = split(&answer_b);
        assert_eq!(text, "from b");
        assert_ne!(a_flow, b_flow, "two clients, two flows");
        let again = ask(&a, addr, "again").await.unwrap();
        assert_eq!(split(&again), (a_flow, "again"), "a client keeps its flow");
        let big = "x".repeat(60_000);
        let answer = ask(&a, addr, &big).await.unwrap();
        assert_eq!(
            split(&answer).1.len(),
            big.len(),
            "large datagrams pass whole"
        );
    }

    #[tokio::test]
    async fn new_clients_past_the_limit_are_dropped_and_idle_flows_end() {
        let limits = Limits {
            idle: Duration::from_millis(1000),
            max_flows: 1,
        };
        let (addr, _task) = forwarder(echo_server().await, limits).await;
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let first = ask(&a, addr, "a").await.unwrap();
        assert_eq!(ask(&b, addr, "b").await, None, "the port's one flow is a's");
        assert_eq!(
            split(&ask(&a, addr, "a").await.unwrap()).0,
            split(&first).0,
            "a is still served"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later = ask(&b, addr, "b").await.expect("a's idle flow ended");
        assert_eq!(split(&later).1, "b");
        assert_ne!(split(&later).0, split(&first).0);
    }

    #[tokio::test]
    async fn nothing_is_forwarded_while_no_claimant_runs() {
        let claimants: Claimants =
            Arc::new(Mutex::new(vec![(WorkloadId { job: 1, replica: 0 }, 9)]));
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let _task = tokio::spawn(serve(
            socket,
            claimants,
            PidTable::default(),
            Limits::default(),
        ));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(ask(&client, addr, "anyone?").await, None);
    }
}
