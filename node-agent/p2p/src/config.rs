//! What a node's peer-to-peer layer is started with: its identity, where it listens, the
//! network's protocol prefix, the application protocols it serves, and its limits.

use std::time::Duration;

use libp2p::Multiaddr;
use r1_protocol::{Freshness, Identity};

/// How to start the peer-to-peer layer.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node's key: its libp2p peer id carries the same secp256k1 key.
    pub identity: Identity,
    /// Listen multiaddrs, e.g. `/ip4/0.0.0.0/tcp/4001` and `/ip4/0.0.0.0/udp/4001/quic-v1`
    /// (port 0 picks a free port; [`Client::listen_addrs`](crate::Client::listen_addrs) says
    /// which).
    pub listen: Vec<Multiaddr>,
    /// Prefix of every libp2p protocol and gossip topic, `/r1/<network>/`: nodes of another
    /// network cannot negotiate a single protocol with this one.
    pub protocol_prefix: String,
    /// Application protocols this node answers requests for (`r1fs`, `cstore`, …); requests
    /// for others are answered "unknown protocol" without reaching the application.
    pub request_protocols: Vec<String>,
    /// Sizes, timeouts and backoffs.
    pub limits: Limits,
}

impl Config {
    /// A configuration for `identity` on network `network` (`devnet`, `mainnet`, …), with the
    /// default limits and no listen address or application protocol yet.
    pub fn new(identity: Identity, network: &str) -> Self {
        Self {
            identity,
            listen: Vec::new(),
            protocol_prefix: format!("/r1/{network}/"),
            request_protocols: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// Sizes, timeouts and backoffs of the peer-to-peer layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request payload sent or accepted.
    pub max_request_bytes: usize,
    /// Largest response payload sent or accepted.
    pub max_response_bytes: usize,
    /// How long a request may take, from being sent to its answer (also bounds how long the
    /// application may take to answer an inbound one).
    pub request_timeout: Duration,
    /// Largest gossip message (gossipsub's `max_transmit_size`): gossip is for small
    /// announcements, bulk data goes by request.
    pub max_gossip_bytes: usize,
    /// How long a connection nobody uses stays open. Roster peers are meant to stay connected:
    /// libp2p's default (10 s) would close every quiet connection between two nodes and
    /// redial it on the next request, and each such drop costs the gossip mesh its peer (a
    /// pruned peer waits out gossipsub's backoff before it is grafted again). An hour keeps
    /// connections up; the roster gate, not idleness, decides who stays.
    pub idle_connection_timeout: Duration,
    /// First wait before redialing a roster peer after a failed dial; doubles per failure.
    pub dial_backoff_initial: Duration,
    /// Longest wait between redials.
    pub dial_backoff_max: Duration,
    /// How long the node with the larger address waits before dialing a new roster peer, so
    /// two nodes that learn of each other at once usually open one connection, not two.
    pub dial_grace: Duration,
    /// Streams per connection for requests at once, inbound and outbound.
    pub max_concurrent_streams: usize,
    /// Inbound connections still in their handshake at once (before the gate knows who).
    pub max_pending_incoming: u32,
    /// Open connections to one peer at once.
    pub max_connections_per_peer: u32,
    /// Events buffered for the application before new ones are dropped (and counted).
    pub event_buffer: usize,
    /// Freshness window of roster envelopes.
    pub roster_freshness: Freshness,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1 << 20,
            max_response_bytes: 8 << 20,
            request_timeout: Duration::from_secs(10),
            max_gossip_bytes: 64 << 10,
            idle_connection_timeout: Duration::from_secs(3600),
            dial_backoff_initial: Duration::from_secs(1),
            dial_backoff_max: Duration::from_secs(60),
            dial_grace: Duration::from_secs(1),
            max_concurrent_streams: 64,
            max_pending_incoming: 64,
            max_connections_per_peer: 4,
            event_buffer: 1024,
            roster_freshness: Freshness::default(),
        }
    }
}
