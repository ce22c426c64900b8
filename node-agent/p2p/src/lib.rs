//! r1's peer-to-peer layer: libp2p between the licensed nodes of one network, and nobody
//! else, for the node agent's storage features (R1FS content-addressed files, CSTORE
//! replicated KV).
//!
//! A node's libp2p key is its r1 key, so every peer id names an EVM address; the oracles sign
//! a roster of licensed nodes and their listen addresses, and a node talks only to the peers
//! on the newest roster it accepted. On top: request-response (one request, one answer, sizes
//! and time bounded) and signed gossip.
//!
//! * [`identity`]: the libp2p keypair from the node's secp256k1 key; peer id ↔ EVM address.
//! * [`roster`]: which roster envelopes are accepted, and the parsed roster (pure logic).
//! * [`gate`]: the behaviour that refuses connections from or to peers off the roster.
//! * [`codec`]: the request-response byte codec with its size limits.
//! * [`config`]: identity, listen addresses, protocol prefix, served protocols, limits.
//! * `swarm`: transports, behaviours and the gossipsub tuning (internal; see [`P2p::start`]).
//! * [`client`]: the cloneable [`Client`] and the [`Event`]s the application receives.
//! * `event_loop`: the task that owns the swarm and runs the clients' commands (internal).
//! * [`metrics`]: Prometheus metrics, registered in the registry passed to [`P2p::start`].
//! * [`error`]: the [`Error`] every call returns.
//!
//! ```no_run
//! # async fn run(identity: r1_protocol::Identity) -> Result<(), r1_p2p::Error> {
//! let mut registry = prometheus_client::registry::Registry::default();
//! let mut config = r1_p2p::Config::new(identity, "devnet");
//! config.listen = vec!["/ip4/0.0.0.0/tcp/4001".parse().expect("a multiaddr")];
//! config.request_protocols = vec!["r1fs".into()];
//! let (client, mut events) = r1_p2p::P2p::start(config, &mut registry).await?;
//! client.subscribe("cstore").await?;
//! while let Some(event) = events.recv().await {
//!     if let r1_p2p::Event::Request { reply, .. } = event {
//!         let _ = reply.send(b"answer".to_vec());
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod client;
pub mod codec;
pub mod config;
pub mod error;
mod event_loop;
pub mod gate;
pub mod identity;
pub mod metrics;
pub mod roster;
mod swarm;

use std::collections::HashSet;
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

pub use client::{Client, Event, IncomingStreams};
pub use config::{Config, Limits};
pub use error::Error;
pub use libp2p::Stream;
pub use libp2p::{Multiaddr, multiaddr};
pub use roster::{Changed, ParsedRoster, Refusal, RosterBook};

/// How long [`P2p::start`] waits for the listeners to open.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Commands queued from clients before they wait for the event loop.
const COMMAND_BUFFER: usize = 256;

/// Starts the peer-to-peer layer.
#[derive(Debug)]
pub struct P2p;

impl P2p {
    /// Builds the swarm for `config`, registers its metrics in `registry`, opens every listen
    /// address, and runs the event loop on the current tokio runtime. Returns once every
    /// listener is open, with the client and the application's events. The node admits no
    /// peer until a roster is applied ([`Client::offer_roster`] or [`Client::set_roster`]).
    pub async fn start(
        config: Config,
        registry: &mut Registry,
    ) -> Result<(Client, mpsc::Receiver<Event>), Error> {
        if !config.protocol_prefix.starts_with('/') || !config.protocol_prefix.ends_with('/') {
            return Err(Error::Config(format!(
                "protocol prefix {:?} must start and end with '/'",
                config.protocol_prefix
            )));
        }
        if let Some(bad) = config
            .request_protocols
            .iter()
            .find(|p| !event_loop::valid_name(p))
        {
            return Err(Error::BadName(bad.clone()));
        }
        let metrics = metrics::Metrics::register(registry);
        let keypair = identity::keypair(&config.identity)?;
        let mut swarm = swarm::build(keypair, &config, &metrics)?;

        let mut opening = HashSet::new();
        for addr in &config.listen {
            let id = swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
            opening.insert((id, addr.to_string()));
        }
        let deadline = tokio::time::sleep(LISTEN_TIMEOUT);
        tokio::pin!(deadline);
        while !opening.is_empty() {
            tokio::select! {
                event = swarm.select_next_some() => match event {
                    SwarmEvent::NewListenAddr { listener_id, address } => {
                        tracing::info!(%address, "listening");
                        opening.retain(|(id, _)| *id != listener_id);
                    }
                    SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                        if let Some((_, addr)) = opening.iter().find(|(id, _)| *id == listener_id) {
                            return Err(Error::Listen {
                                addr: addr.clone(),
                                reason: format!("{reason:?}"),
                            });
                        }
                    }
                    SwarmEvent::ListenerError { listener_id, error } => {
                        if let Some((_, addr)) = opening.iter().find(|(id, _)| *id == listener_id) {
                            return Err(Error::Listen {
                                addr: addr.clone(),
                                reason: error.to_string(),
                            });
                        }
                    }
                    _ => {}
                },
                () = &mut deadline => {
                    let addrs: Vec<&str> = opening.iter().map(|(_, a)| a.as_str()).collect();
                    return Err(Error::Listen {
                        addr: addrs.join(", "),
                        reason: "not open in time".into(),
                    });
                }
            }
        }

        let streams = swarm.behaviour().stream.new_control();
        let (commands, command_rx) = mpsc::channel(COMMAND_BUFFER);
        let (event_tx, events) = mpsc::channel(config.limits.event_buffer.max(1));
        let event_loop = event_loop::EventLoop::new(swarm, command_rx, event_tx, &config, metrics);
        tokio::spawn(event_loop.run());
        Ok((
            Client::new(commands, streams, config.protocol_prefix.clone()),
            events,
        ))
    }
}
