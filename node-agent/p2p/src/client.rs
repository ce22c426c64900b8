//! The handle the node agent holds: a cloneable [`Client`] that sends a [`Command`] to the
//! event loop and awaits its answer, and the [`Event`]s the event loop hands out. Raw byte
//! streams ([`Client::open_stream`], [`Client::accept_streams`]) go beside the event loop,
//! through libp2p-stream's control, over connections the roster gate admitted.

use std::collections::HashSet;

use alloy_primitives::Address;
use libp2p::futures::StreamExt;
use libp2p::{Multiaddr, PeerId, Stream};
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::identity::address_of;
use crate::roster::{Changed, ParsedRoster};
use crate::swarm::stream_protocol;

/// What the network tells the application.
#[derive(Debug)]
pub enum Event {
    /// A roster peer asks something. Send the answer on `reply` within the request timeout;
    /// dropping `reply` answers "no answer".
    Request {
        /// The asking node.
        from: Address,
        /// The application protocol (`r1fs`, `cstore`, …), one this node serves.
        protocol: String,
        /// The request payload.
        bytes: Vec<u8>,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// A gossip message signed by a roster peer.
    Gossip {
        /// The node that published it (its author, not the peer that forwarded it).
        from: Address,
        /// The topic, without the protocol prefix.
        topic: String,
        /// The payload.
        bytes: Vec<u8>,
    },
    /// A roster peer subscribed to a topic.
    Subscribed {
        /// The peer.
        from: Address,
        /// The topic, without the protocol prefix.
        topic: String,
    },
    /// The first connection to a roster peer opened.
    PeerConnected(Address),
    /// The last connection to a peer closed.
    PeerDisconnected(Address),
}

/// Reply channel of a command.
pub(crate) type Reply<T> = oneshot::Sender<T>;

/// What a [`Client`] asks the event loop.
#[derive(Debug)]
pub(crate) enum Command {
    SetRoster {
        roster: ParsedRoster,
        reply: Reply<Changed>,
    },
    OfferRoster {
        bytes: Vec<u8>,
        now_ms: u64,
        oracles: HashSet<Address>,
        reply: Reply<Result<Changed, Error>>,
    },
    Request {
        peer: Address,
        protocol: String,
        bytes: Vec<u8>,
        reply: Reply<Result<Vec<u8>, Error>>,
    },
    PeerId {
        peer: Address,
        reply: Reply<Result<PeerId, Error>>,
    },
    Publish {
        topic: String,
        bytes: Vec<u8>,
        reply: Reply<Result<(), Error>>,
    },
    Subscribe {
        topic: String,
        reply: Reply<Result<bool, Error>>,
    },
    ConnectedPeers {
        reply: Reply<Vec<Address>>,
    },
    ListenAddrs {
        reply: Reply<Vec<Multiaddr>>,
    },
}

/// A handle on the running peer-to-peer layer; clones share it, and the layer stops once
/// every clone is dropped.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    streams: libp2p_stream::Control,
    prefix: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Streams roster peers open to this node over one protocol, with the peer that opened each.
pub struct IncomingStreams {
    inner: libp2p_stream::IncomingStreams,
}

impl IncomingStreams {
    /// The next stream and its opener; `None` once the layer stopped.
    pub async fn next(&mut self) -> Option<(Address, Stream)> {
        loop {
            let (peer, stream) = self.inner.next().await?;
            // Every connection passed the roster gate, whose peers all name an address.
            if let Some(address) = address_of(&peer) {
                return Some((address, stream));
            }
        }
    }
}

impl Client {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        streams: libp2p_stream::Control,
        prefix: String,
    ) -> Self {
        Self {
            commands,
            streams,
            prefix,
        }
    }

    /// Opens a byte stream to roster peer `peer` over application stream protocol `protocol`
    /// (noise-encrypted, multiplexed on the connection); dials it when needed.
    pub async fn open_stream(&self, peer: Address, protocol: &str) -> Result<Stream, Error> {
        let wire = stream_protocol(&self.prefix, protocol)?;
        let peer_id = self.ask(|reply| Command::PeerId { peer, reply }).await??;
        self.streams
            .clone()
            .open_stream(peer_id, wire)
            .await
            .map_err(|e| Error::Stream {
                peer,
                protocol: protocol.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The streams roster peers open to this node over `protocol`; one caller per protocol.
    pub fn accept_streams(&self, protocol: &str) -> Result<IncomingStreams, Error> {
        let wire = stream_protocol(&self.prefix, protocol)?;
        let inner = self
            .streams
            .clone()
            .accept(wire)
            .map_err(|_| Error::AlreadyAccepting(protocol.to_owned()))?;
        Ok(IncomingStreams { inner })
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }

    /// Applies `roster` as it is (for callers that checked it themselves): only its peers may
    /// connect, the ones not connected are dialed, the ones it drops are disconnected.
    pub async fn set_roster(&self, roster: ParsedRoster) -> Result<Changed, Error> {
        self.ask(|reply| Command::SetRoster { roster, reply }).await
    }

    /// Offers a roster envelope received at `now_ms` (see
    /// [`RosterBook::offer`](crate::roster::RosterBook::offer)); when accepted, it is applied
    /// as by [`set_roster`](Self::set_roster). Accepted and refused rosters are counted.
    pub async fn offer_roster(
        &self,
        bytes: Vec<u8>,
        now_ms: u64,
        oracles: HashSet<Address>,
    ) -> Result<Changed, Error> {
        self.ask(|reply| Command::OfferRoster {
            bytes,
            now_ms,
            oracles,
            reply,
        })
        .await?
    }

    /// Asks roster peer `peer` over application protocol `protocol`; dials it when needed.
    /// Fails after the request timeout, or at once when the peer is not on the roster.
    pub async fn request(
        &self,
        peer: Address,
        protocol: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let protocol = protocol.to_owned();
        self.ask(|reply| Command::Request {
            peer,
            protocol,
            bytes,
            reply,
        })
        .await?
    }

    /// Publishes `bytes` on `topic` to every subscribed roster peer.
    pub async fn publish(&self, topic: &str, bytes: Vec<u8>) -> Result<(), Error> {
        let topic = topic.to_owned();
        self.ask(|reply| Command::Publish {
            topic,
            bytes,
            reply,
        })
        .await?
    }

    /// Subscribes to `topic`; its messages come out as [`Event::Gossip`]. `false` when
    /// already subscribed.
    pub async fn subscribe(&self, topic: &str) -> Result<bool, Error> {
        let topic = topic.to_owned();
        self.ask(|reply| Command::Subscribe { topic, reply })
            .await?
    }

    /// Addresses of the roster peers connected now, sorted.
    pub async fn connected_peers(&self) -> Result<Vec<Address>, Error> {
        self.ask(|reply| Command::ConnectedPeers { reply }).await
    }

    /// The multiaddrs this node listens on (with the ports chosen for port 0).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, Error> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }
}
