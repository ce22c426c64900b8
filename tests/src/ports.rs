//! Free TCP ports on 127.0.0.1, so parallel tests never fight over a listener.
//!
//! Every port handed out lies below Linux's ephemeral range (32768 and up): a port drawn from
//! that range and released could be taken by any outgoing connection's local end before the
//! test's process binds it. Host ports for node agents come from 10000-21999, listener ports
//! from 22000-32767, so the two never meet either.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

/// Why no port could be found.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Binding on 127.0.0.1 failed for another reason than the port being in use.
    #[error("cannot bind on 127.0.0.1 to find a free port: {0}")]
    Bind(#[from] std::io::Error),
    /// Every listener port is in use or handed out.
    #[error("none of the {0} listener ports is free")]
    Exhausted(usize),
}

/// Ports already handed out by this process; a port is never handed out twice.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// First listener port handed out.
const LISTENERS_FIRST: u16 = 22_000;
/// How many listener ports there are (up to the ephemeral range).
const LISTENERS: u32 = 32_768 - LISTENERS_FIRST as u32;

/// A port on 127.0.0.1 that was free a moment ago and that no other caller in this process got.
///
/// The port is released before returning, so the caller's process can bind it; another test
/// process could still take it in between, which a per-process starting point makes rare.
pub fn try_free_port() -> Result<u16, PortError> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7919);
    for _ in 0..LISTENERS {
        let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let step = u16::try_from(offset.wrapping_add(index) % LISTENERS).unwrap_or(0);
        let port = LISTENERS_FIRST + step;
        let mut ports = handed_out()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if ports.contains(&port) {
            continue;
        }
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(_) => {
                ports.insert(port);
                return Ok(port);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(PortError::Exhausted(LISTENERS as usize))
}

/// Like [`try_free_port`], for tests: panics when the machine has no free port at all.
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(error) => panic!("no free port on 127.0.0.1: {error}"),
    }
}

/// First host port handed to node agents; below the listener ports [`free_port`] hands out.
const HOST_PORTS_FIRST: u16 = 10_000;
/// Ports per node agent.
const HOST_PORTS_PER_NODE: u16 = 50;
/// How many per-node blocks fit below the listener ports.
const HOST_PORT_BLOCKS: u32 = 240;

/// A range of host ports for one node agent (`ports.first`, `ports.last`), distinct from every
/// other range this process handed out (until 240 have been) and, by a per-process offset, most
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
        assert!(
            ports.iter().all(|p| (22_000..32_768).contains(p)),
            "outside the ephemeral range and the host ports"
        );
        let (first, last) = host_port_range();
        assert!(first >= 10_000 && last < 22_000);
    }
}
