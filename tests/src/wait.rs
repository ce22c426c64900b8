//! Polling helpers: wait until a condition holds or a deadline passes.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` until it returns true (→ `true`) or `timeout` passes (→ `false`).
pub fn until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    until_every(timeout, POLL, condition)
}

/// [`until`], polling every `interval`: for conditions that ask an API whose rate limit a
/// 20 ms poll would exhaust (then every later ask is refused until the polling stops).
pub fn until_every(
    timeout: Duration,
    interval: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(interval);
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub fn tcp_accepts(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}
