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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: HashSet<u16> = (0..200).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 200);
    }
}
