//! A TCP proxy on 127.0.0.1 that a test can cut and restore, to play an outage of whatever sits
//! behind it (a chain RPC, a broker) without stopping that part.
//!
//! While cut, every forwarded connection is dropped and new ones are either refused (the
//! listening socket is closed, so connecting fails at once) or blackholed (accepted and never
//! answered, so a client only notices through its own timeouts). [`Proxy::restore`] forwards
//! again on the same port. [`Proxy::start_throttled`] also holds everything the target sends
//! to a bandwidth shared by all connections (a distant registry, say) and counts it.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a forwarded connection may take to reach the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the accept loop looks for new connections and mode changes.
const POLL: Duration = Duration::from_millis(10);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No free port was found.
    #[error(transparent)]
    Port(#[from] crate::ports::PortError),
    /// The listening socket could not be set up.
    #[error("proxy listener on 127.0.0.1:{port}: {source}")]
    Listen {
        /// The port.
        port: u16,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// How a cut proxy treats new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Nothing listens: connecting fails at once (as when the process behind is down).
    Refuse,
    /// Connections are accepted and never answered (as when the network drops packets).
    Blackhole,
}

/// The proxy's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Cut(Outage),
}

/// What the accept loop and the test share.
struct Shared {
    mode: Mutex<Mode>,
    /// Both sockets of every live connection (forwarded or blackholed), by connection number.
    connections: Mutex<HashMap<u64, Vec<TcpStream>>>,
    next: AtomicU64,
    accepted: AtomicU64,
    stopping: AtomicBool,
    /// Bytes the target sent through the proxy.
    served: AtomicU64,
    /// The bandwidth those bytes share, when limited.
    limit: Option<Mutex<Bucket>>,
}

/// A token bucket: `rate` bytes per second, bursts of at most a tenth of a second's worth.
struct Bucket {
    rate: u64,
    tokens: f64,
    refilled: std::time::Instant,
}

impl Bucket {
    /// How long to wait before sending `bytes`, taking them from the bucket now.
    fn take(&mut self, bytes: usize) -> Duration {
        let now = std::time::Instant::now();
        let rate = self.rate as f64;
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate / 10.0);
        self.refilled = now;
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    /// Shuts down every live connection.
    fn drop_connections(&self) {
        for (_, sockets) in lock(&self.connections).drain() {
            for socket in sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A cuttable TCP proxy from 127.0.0.1:[`Proxy::port`] to a target; stops when dropped.
pub struct Proxy {
    port: u16,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding a free port on 127.0.0.1 to `target`.
    pub fn start(target: SocketAddr) -> Result<Self, ProxyError> {
        Self::start_limited(target, None)
    }

    /// Starts forwarding as [`Proxy::start`], with everything `target` sends held to
    /// `bytes_per_second` across all connections.
    pub fn start_throttled(target: SocketAddr, bytes_per_second: u64) -> Result<Self, ProxyError> {
        Self::start_limited(target, Some(bytes_per_second.max(1)))
    }

    fn start_limited(target: SocketAddr, rate: Option<u64>) -> Result<Self, ProxyError> {
        let port = crate::ports::try_free_port()?;
        let listener = listen(port)?;
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Forward),
            connections: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            served: AtomicU64::new(0),
            limit: rate.map(|rate| {
                Mutex::new(Bucket {
                    rate,
                    tokens: 0.0,
                    refilled: std::time::Instant::now(),
                })
            }),
        });
        let thread_shared = shared.clone();
        let acceptor =
            std::thread::spawn(move || accept_loop(listener, port, target, &thread_shared));
        Ok(Self {
            port,
            target,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where connections are forwarded.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Bytes the target has sent through the proxy so far.
    pub fn served_bytes(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// Connections accepted so far (forwarded or blackholed).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        self.shared.mode() != Mode::Forward
    }

    /// Drops every connection and treats new ones as `outage` says until [`Proxy::restore`].
    pub fn cut(&self, outage: Outage) {
        *lock(&self.shared.mode) = Mode::Cut(outage);
        self.shared.drop_connections();
    }

    /// Forwards again on the same port; blackholed connections are dropped.
    pub fn restore(&self) {
        let mut mode = lock(&self.shared.mode);
        if *mode == Mode::Cut(Outage::Blackhole) {
            self.shared.drop_connections();
        }
        *mode = Mode::Forward;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.shared.drop_connections();
    }
}

fn listen(port: u16) -> Result<TcpListener, ProxyError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| ProxyError::Listen { port, source })?;
    Ok(listener)
}

/// Accepts connections and handles them by mode; closes the listener while refusing and
/// opens it again (same port) when the mode changes back.
fn accept_loop(listener: TcpListener, port: u16, target: SocketAddr, shared: &Arc<Shared>) {
    let mut listener = Some(listener);
    while !shared.stopping.load(Ordering::Relaxed) {
        let mode = shared.mode();
        if mode == Mode::Cut(Outage::Refuse) {
            listener = None;
            std::thread::sleep(POLL);
            continue;
        }
        let Some(open) = listener.as_ref() else {
            match listen(port) {
                Ok(reopened) => listener = Some(reopened),
                Err(e) => {
                    tracing::warn!(error = %e, "proxy cannot listen again; retrying");
                    std::thread::sleep(POLL);
                }
            }
            continue;
        };
        match open.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let _ = client.set_nonblocking(false);
                match mode {
                    Mode::Forward => forward(client, target, shared),
                    Mode::Cut(_) => hold(client, shared),
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Keeps a blackholed connection open and silent until it is dropped.
fn hold(client: TcpStream, shared: &Shared) {
    let id = shared.next.fetch_add(1, Ordering::Relaxed);
    lock(&shared.connections).insert(id, vec![client]);
}

/// Connects to `target` and copies bytes both ways on two threads; the connection is
/// forgotten once both directions have ended.
fn forward(client: TcpStream, target: SocketAddr, shared: &Arc<Shared>) {
    let Ok(server) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let clones = (|| {
        Ok::<_, std::io::Error>((
            client.try_clone()?,
            server.try_clone()?,
            client.try_clone()?,
            server.try_clone()?,
        ))
    })();
    let Ok((client_out, server_in, client_kept, server_kept)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let id = shared.next.fetch_add(1, Ordering::Relaxed);
    lock(&shared.connections).insert(id, vec![client_kept, server_kept]);
    let ended = Arc::new(AtomicU8::new(0));
    pump(client, server, id, ended.clone(), shared.clone(), false);
    pump(server_in, client_out, id, ended, shared.clone(), true);
}

/// Copies `from` into `to` on a thread until either side ends, then closes `to` for writing;
/// the second direction to end forgets the connection. What the target sends (`served`) is
/// counted and held to the proxy's bandwidth.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    id: u64,
    ended: Arc<AtomicU8>,
    shared: Arc<Shared>,
    served: bool,
) {
    std::thread::spawn(move || {
        if served {
            let _ = copy_served(&mut from, &mut to, &shared);
        } else {
            let _ = std::io::copy(&mut from, &mut to);
        }
        let _ = to.shutdown(Shutdown::Write);
        if ended.fetch_add(1, Ordering::AcqRel) == 1 {
            lock(&shared.connections).remove(&id);
        }
    });
}

/// Copies what the target sends, counting it and waiting out the bandwidth limit.
fn copy_served(from: &mut TcpStream, to: &mut TcpStream, shared: &Shared) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut buffer = vec![0; 64 << 10];
    loop {
        let read = from.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        if let Some(limit) = &shared.limit {
            let wait = lock(limit).take(read);
            std::thread::sleep(wait);
        }
        shared.served.fetch_add(read as u64, Ordering::Relaxed);
        to.write_all(&buffer[..read])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An echo server on a free port; returns its address.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut reader = stream.try_clone().expect("clone");
                    let _ = std::io::copy(&mut reader, &mut stream);
                });
            }
        });
        address
    }

    fn connect(proxy: &Proxy) -> std::io::Result<TcpStream> {
        let stream = TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, proxy.port())),
            Duration::from_secs(1),
        )?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(stream)
    }

    fn echoes(stream: &mut TcpStream) -> bool {
        let mut answer = [0u8; 4];
        stream.write_all(b"ping").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"ping"
    }

    #[test]
    fn forwards_until_cut_and_again_after_restore() {
        let proxy = Proxy::start(echo_server()).expect("proxy");
        let mut before = connect(&proxy).expect("connect");
        assert!(echoes(&mut before));

        proxy.cut(Outage::Refuse);
        assert!(proxy.is_cut());
        let mut rest = [0u8; 1];
        assert!(
            matches!(before.read(&mut rest), Ok(0) | Err(_)),
            "a live connection is dropped by the cut"
        );
        assert!(crate::wait::until(Duration::from_secs(2), || connect(
            &proxy
        )
        .is_err()));

        proxy.restore();
        let mut after = None;
        assert!(crate::wait::until(Duration::from_secs(2), || {
            after = connect(&proxy).ok();
            after.is_some()
        }));
        assert!(echoes(after.as_mut().expect("connected")));
    }

    #[test]
    fn a_throttled_proxy_holds_the_target_to_its_bandwidth_and_counts_it() {
        let proxy = Proxy::start_throttled(echo_server(), 1 << 20).expect("proxy");
        let mut stream = connect(&proxy).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let sent = vec![7u8; 512 << 10];
        let started = std::time::Instant::now();
        let mut writer = stream.try_clone().expect("clone");
        let writing = std::thread::spawn(move || writer.write_all(&sent));
        let mut echoed = vec![0u8; 512 << 10];
        stream.read_exact(&mut echoed).expect("echo");
        writing.join().expect("writer").expect("write");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(350),
            "512 KiB at 1 MiB/s took {took:?}"
        );
        assert_eq!(proxy.served_bytes(), 512 << 10);
    }

    #[test]
    fn a_blackhole_accepts_and_never_answers() {
        let proxy = Proxy::start(echo_server()).expect("proxy");
        proxy.cut(Outage::Blackhole);
        let mut held = connect(&proxy).expect("a blackhole still accepts");
        assert!(!echoes(&mut held), "nothing comes back through a blackhole");

        proxy.restore();
        let mut rest = [0u8; 1];
        assert!(
            matches!(held.read(&mut rest), Ok(0) | Err(_)),
            "held connections are dropped on restore"
        );
        let mut fresh = connect(&proxy).expect("connect");
        assert!(echoes(&mut fresh));
        assert!(proxy.accepted() >= 2);
    }
}
