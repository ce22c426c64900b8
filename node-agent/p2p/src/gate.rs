//! The roster gate: a [`NetworkBehaviour`] that lets a connection through, inbound or
//! outbound, only when the remote's peer id is a secp256k1 key whose EVM address is on the
//! current roster, and closes the connections of peers a new roster drops.
//!
//! It sits first in the swarm's behaviour, so a refused connection never reaches gossipsub or
//! request-response. Inbound connections are checked once the security handshake named the
//! remote; before any roster was applied they are refused before the handshake. Every
//! refusal is counted by reason in [`Metrics::refused_connections`].

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll, Waker};

use alloy_primitives::Address;
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished};
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

use crate::identity::address_of;
use crate::metrics::Metrics;
use crate::roster::ParsedRoster;

/// Why the gate refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GateRefusal {
    /// No roster was applied yet: nobody may connect.
    #[error("no roster yet")]
    NoRoster,
    /// The peer id carries no secp256k1 key, so it names no EVM address.
    #[error("peer id is not a secp256k1 key")]
    NotSecp256k1,
    /// The peer's address is not on the roster.
    #[error("peer is not on the roster")]
    NotOnRoster,
    /// The peer is this node itself.
    #[error("peer is this node")]
    SelfDial,
}

impl GateRefusal {
    /// The metrics label: `no_roster`, `not_secp256k1`, `not_on_roster`, `self`.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoRoster => "no_roster",
            Self::NotSecp256k1 => "not_secp256k1",
            Self::NotOnRoster => "not_on_roster",
            Self::SelfDial => "self",
        }
    }
}

/// Label counted when a connection is closed because its peer left the roster.
pub const DROPPED_FROM_ROSTER: &str = "dropped_from_roster";

/// What the gate tells the swarm's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateEvent {
    /// The first connection to a roster peer opened.
    PeerConnected {
        /// Its peer id.
        peer: PeerId,
        /// Its address.
        address: Address,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// Its peer id.
        peer: PeerId,
        /// Its address.
        address: Address,
    },
}

/// The roster gate. See the module documentation.
pub struct Gate {
    local: Address,
    roster: Option<ParsedRoster>,
    /// Open connections per connected peer, with the peer's address.
    connected: HashMap<PeerId, (Address, usize)>,
    /// The connected peers by address.
    by_address: HashMap<Address, PeerId>,
    to_close: VecDeque<PeerId>,
    events: VecDeque<GateEvent>,
    waker: Option<Waker>,
    metrics: Metrics,
}

impl Gate {
    /// A gate for the node at `local` that admits nobody until a roster is applied.
    pub fn new(local: Address, metrics: Metrics) -> Self {
        Self {
            local,
            roster: None,
            connected: HashMap::new(),
            by_address: HashMap::new(),
            to_close: VecDeque::new(),
            events: VecDeque::new(),
            waker: None,
            metrics,
        }
    }

    /// Applies `roster`: from now on only its peers pass, and connected peers not on it are
    /// disconnected. Returns how many connected peers are being disconnected.
    pub fn set_roster(&mut self, roster: ParsedRoster) -> usize {
        let mut dropped = 0;
        for (peer, (address, connections)) in &self.connected {
            if !roster.contains(address) {
                tracing::info!(%peer, %address, "peer left the roster: disconnecting");
                for _ in 0..*connections {
                    self.metrics.refused(DROPPED_FROM_ROSTER);
                }
                self.to_close.push_back(*peer);
                dropped += 1;
            }
        }
        self.roster = Some(roster);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
        dropped
    }

    /// The roster applied, if any.
    pub fn roster(&self) -> Option<&ParsedRoster> {
        self.roster.as_ref()
    }

    /// The address of `peer` when it is connected.
    pub fn address_of_connected(&self, peer: &PeerId) -> Option<Address> {
        self.connected.get(peer).map(|(address, _)| *address)
    }

    /// The peer id of the connected peer at `address`.
    pub fn connected_peer(&self, address: &Address) -> Option<PeerId> {
        self.by_address.get(address).copied()
    }

    /// Addresses of every connected peer, sorted.
    pub fn connected_addresses(&self) -> Vec<Address> {
        let mut addresses: Vec<Address> = self.connected.values().map(|(a, _)| *a).collect();
        addresses.sort();
        addresses
    }

    /// Whether `peer` may be connected: its address, or why not.
    pub fn check(&self, peer: &PeerId) -> Result<Address, GateRefusal> {
        let roster = self.roster.as_ref().ok_or(GateRefusal::NoRoster)?;
        let address = address_of(peer).ok_or(GateRefusal::NotSecp256k1)?;
        if address == self.local {
            return Err(GateRefusal::SelfDial);
        }
        if !roster.contains(&address) {
            return Err(GateRefusal::NotOnRoster);
        }
        Ok(address)
    }

    fn admit(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        self.check(peer).map(|_| ()).map_err(|refusal| {
            self.metrics.refused(refusal.label());
            tracing::debug!(%peer, reason = refusal.label(), "connection refused");
            ConnectionDenied::new(refusal)
        })
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = GateEvent;

    fn handle_pending_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        match self.roster {
            Some(_) => Ok(()),
            None => {
                self.metrics.refused(GateRefusal::NoRoster.label());
                Err(ConnectionDenied::new(GateRefusal::NoRoster))
            }
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let Some(peer) = maybe_peer else {
            // Dialing an address: the peer is checked once the handshake names it.
            return Ok(Vec::new());
        };
        self.admit(&peer)?;
        // The roster's multiaddrs, so a request to a peer with no connection can dial it.
        let addrs = match (self.roster.as_ref(), address_of(&peer)) {
            (Some(roster), Some(address)) => roster.addrs(&address).to_vec(),
            _ => Vec::new(),
        };
        Ok(addrs)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished { peer_id, .. }) => {
                let Some(address) = address_of(&peer_id) else {
                    return;
                };
                let entry = self.connected.entry(peer_id).or_insert((address, 0));
                entry.1 += 1;
                if entry.1 == 1 {
                    self.by_address.insert(address, peer_id);
                    self.metrics
                        .connected_peers
                        .set(self.connected.len() as i64);
                    self.events.push_back(GateEvent::PeerConnected {
                        peer: peer_id,
                        address,
                    });
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                remaining_established,
                ..
            }) => {
                if remaining_established == 0 {
                    if let Some((address, _)) = self.connected.remove(&peer_id) {
                        self.by_address.remove(&address);
                        self.metrics
                            .connected_peers
                            .set(self.connected.len() as i64);
                        self.events.push_back(GateEvent::PeerDisconnected {
                            peer: peer_id,
                            address,
                        });
                    }
                } else if let Some(entry) = self.connected.get_mut(&peer_id) {
                    entry.1 = remaining_established;
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        let never: Infallible = event;
        match never {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<GateEvent, THandlerInEvent<Self>>> {
        if let Some(peer_id) = self.to_close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::All,
            });
        }
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(ToSwarm::GenerateEvent(event));
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use libp2p::identity::Keypair;
    use r1_protocol::Identity;

    use super::*;
    use crate::identity::peer_id;

    #[test]
    fn checks_roster_membership_and_key_type() {
        let me = Identity::generate();
        let friend = Identity::generate();
        let stranger = Identity::generate();
        let mut gate = Gate::new(me.address(), Metrics::default());
        let friend_peer = peer_id(&friend).unwrap();
        assert_eq!(gate.check(&friend_peer), Err(GateRefusal::NoRoster));

        gate.set_roster(ParsedRoster::new(
            1,
            [(me.address(), vec![]), (friend.address(), vec![])],
        ));
        assert_eq!(gate.check(&friend_peer), Ok(friend.address()));
        assert_eq!(
            gate.check(&peer_id(&stranger).unwrap()),
            Err(GateRefusal::NotOnRoster)
        );
        assert_eq!(
            gate.check(&peer_id(&me).unwrap()),
            Err(GateRefusal::SelfDial)
        );
        let ed25519 = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(gate.check(&ed25519), Err(GateRefusal::NotSecp256k1));
    }
}
