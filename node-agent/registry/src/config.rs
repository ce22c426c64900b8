//! The limits and timeouts a node pulls with.

use std::time::Duration;

/// Longest a manifest or token request may take in all; a blob has no such limit (it may be
/// large), only [`Config::read_timeout`] between its bytes.
pub(crate) const OVERALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How a [`Client`](crate::Client) talks to registries; [`Config::default`] suits a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Registries spoken to over plain HTTP, as `host[:port]` (an entry without a port matches
    /// every port of that host). Loopback hosts (`localhost`, `127.0.0.0/8`, `[::1]`) always
    /// are; every other registry is HTTPS.
    pub plain_http: Vec<String>,
    /// Longest wait for a TCP connection (and TLS handshake).
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response: a stalled transfer fails after this.
    pub read_timeout: Duration,
    /// Largest manifest or index accepted.
    pub max_manifest_bytes: usize,
    /// Tries per request, the first included, when the registry is unreachable, overloaded
    /// (429) or failing (5xx).
    pub attempts: u32,
    /// Wait before the second try; it doubles for each further one, up to 30 s.
    pub first_backoff: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            plain_http: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_manifest_bytes: 4 << 20,
            attempts: 4,
            first_backoff: Duration::from_millis(500),
        }
    }
}
