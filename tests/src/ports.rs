//! Free TCP ports on 127.0.0.1, so parallel tests never fight over a listener.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

/// Why no port could be found.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Binding port 0 on 127.0.0.1 failed.
    #[error("cannot bind 127.0.0.1:0 to find a free port: {0}")]
    Bind(#[from] std::io::Error),
    /// The kernel kept offering ports this process already handed out.
    #[error("no port not yet handed out after {0} attempts")]
    Exhausted(usize),
}

/// Ports already handed out by this process; a port is never handed out twice.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A port on 127.0.0.1 that was free a moment ago and that no other caller in this process got.
///
/// The port is released before returning, so the caller's process can bind it; another program
/// on the machine could still take it in between, which is rare enough for tests.
pub fn try_free_port() -> Result<u16, PortError> {
    const ATTEMPTS: usize = 1000;
    for _ in 0..ATTEMPTS {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let mut ports = handed_out()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if ports.insert(port) {
            return Ok(port);
        }
    }
    Err(PortError::Exhausted(ATTEMPTS))
}

/// Like [`try_free_port`], for tests: panics when the machine has no free port at all.
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(error) => panic!("no free port on 127.0.0.1: {error}"),
    }
}

/// First host port handed to node agents; below Linux's ephemeral range (32768 and up), from
/// which [`free_port`] draws, so the two never meet.
const HOST_PORTS_FIRST: u16 = 10_000;
/// Ports per node agent.
const HOST_PORTS_PER_NODE: u16 = 50;
/// How many per-node blocks fit below the ephemeral range.
const HOST_PORT_BLOCKS: u32 = 440;

/// A range of host ports for one node agent (`ports.first`, `ports.last`), distinct from every
/// other range this process handed out (until 440 have been) and, by a per-process offset, most
/// likely from those of other test processes. Node agents of networks running at once on this
/// one host would otherwise pick the same port for the same job and replica and race to bind it.
pub fn host_port_range() -> (u16, u16) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7919);
    let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let block = u16::try_from(offset.wrapping_add(index) % HOST_PORT_BLOCKS).unwrap_or(0);
    let first = HOST_PORTS_FIRST + block * HOST_PORTS_PER_NODE;
    (first, first + HOST_PORTS_PER_NODE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: HashSet<u16> = (0..200).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 200);
    }
}
