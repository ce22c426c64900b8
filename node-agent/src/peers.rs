//! The node on the peer-to-peer layer (`r1-p2p`): started from the config, fed the oracles'
//! rosters as they arrive over MQTT, and saying where peers reach this node, which heartbeats
//! announce so the oracles can put it on their rosters.

use std::collections::HashSet;

use prometheus_client::registry::Registry;
use r1_p2p::{Client, Event, Multiaddr, P2p};
use r1_protocol::messages::Roster;
use r1_protocol::{Address, Identity};
use tokio::sync::mpsc;

use crate::config::NodeConfig;

/// The running peer-to-peer layer of this node.
#[derive(Clone)]
pub struct Peers {
    client: Client,
    oracles: HashSet<Address>,
    announce: Vec<String>,
}

impl Peers {
    /// Starts listening where the config says, for the network named by the topic root, and
    /// registers the layer's metrics in `registry`.
    pub async fn start(
        config: &NodeConfig,
        identity: Identity,
        registry: &mut Registry,
    ) -> Result<(Self, mpsc::Receiver<Event>), r1_p2p::Error> {
        let mut p2p = r1_p2p::Config::new(identity, &network_name(&config.broker.topic_root));
        p2p.listen = parse_all(&config.p2p.listen)?;
        p2p.request_protocols = vec![
            crate::files::net::PROTOCOL.into(),
            crate::kv::replication::PROTOCOL.into(),
            crate::kv::confirm::PROTOCOL.into(),
            crate::images::share::PROTOCOL.into(),
        ];
        let (client, events) = P2p::start(p2p, registry).await?;
        let announce = if config.p2p.announce.is_empty() {
            announced(&client.listen_addrs().await?)
        } else {
            config.p2p.announce.clone()
        };
        tracing::info!(?announce, "peer-to-peer layer listening");
        let peers = Self {
            client,
            oracles: config.oracles.iter().copied().collect(),
            announce,
        };
        Ok((peers, events))
    }

    /// The layer's client, for the services that talk to peers.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The addresses heartbeats announce.
    pub fn announce(&self) -> &[String] {
        &self.announce
    }

    /// Offers a roster envelope from MQTT: applied when one of this node's oracles signed it
    /// and it is newer than the current one; refusals are logged and counted by the layer.
    pub async fn offer_roster(&self, bytes: Vec<u8>, now_ms: u64) {
        match self
            .client
            .offer_roster(bytes, now_ms, self.oracles.clone())
            .await
        {
            Ok(changed) => tracing::debug!(?changed, "roster offered"),
            Err(e) => tracing::info!("roster refused: {e}"),
        }
    }
}

/// Hands each peer-to-peer event to the service it is for: R1FS block requests to `files`,
/// image-blob requests to `images`, CSTORE requests, deltas and peer arrivals to `kv`; peers
/// coming and going are logged.
pub async fn route(
    mut events: mpsc::Receiver<Event>,
    files: mpsc::Sender<Event>,
    kv: mpsc::Sender<Event>,
    images: mpsc::Sender<Event>,
) {
    while let Some(event) = events.recv().await {
        let to = match &event {
            Event::Request { protocol, .. } if protocol == crate::files::net::PROTOCOL => &files,
            Event::Request { protocol, .. } if protocol == crate::images::share::PROTOCOL => {
                &images
            }
            Event::PeerConnected(peer) => {
                tracing::info!(%peer, "peer connected");
                &kv
            }
            Event::PeerDisconnected(peer) => {
                tracing::info!(%peer, "peer disconnected");
                continue;
            }
            _ => &kv,
        };
        if to.send(event).await.is_err() {
            return;
        }
    }
}

/// The network's name in libp2p protocol ids: the topic root with `/` as `-`
/// (`r1/devnet` → `r1-devnet`), so nodes of two networks cannot talk.
fn network_name(topic_root: &str) -> String {
    topic_root.trim_matches('/').replace('/', "-")
}

fn parse_all(texts: &[String]) -> Result<Vec<Multiaddr>, r1_p2p::Error> {
    texts
        .iter()
        .map(|text| {
            text.parse()
                .map_err(|e| r1_p2p::Error::Config(format!("{text:?} is not a multiaddr: {e}")))
        })
        .collect()
}

/// What to announce of the addresses the node listens on: reachable ones before loopback, at
/// most as many as a roster entry holds.
fn announced(listening: &[Multiaddr]) -> Vec<String> {
    let mut texts: Vec<(bool, String)> = listening
        .iter()
        .map(|addr| (is_loopback(addr), addr.to_string()))
        .collect();
    texts.sort();
    texts
        .into_iter()
        .map(|(_, text)| text)
        .filter(|text| text.len() <= Roster::MAX_ADDR_LEN)
        .take(Roster::MAX_ADDRS_PER_NODE)
        .collect()
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|part| match part {
        r1_p2p::multiaddr::Protocol::Ip4(ip) => ip.is_loopback(),
        r1_p2p::multiaddr::Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_named_by_their_topic_root() {
        assert_eq!(network_name("r1/devnet"), "r1-devnet");
        assert_eq!(network_name("/r1/mainnet/"), "r1-mainnet");
    }

    #[test]
    fn reachable_addresses_come_first_and_at_most_four() {
        let addrs: Vec<Multiaddr> = [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/10.0.0.5/tcp/4001",
            "/ip4/127.0.0.1/udp/4001/quic-v1",
            "/ip4/10.0.0.5/udp/4001/quic-v1",
            "/ip4/192.168.1.9/tcp/4001",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let announced = announced(&addrs);
        assert_eq!(announced.len(), 4);
        assert!(
            announced[..3].iter().all(|a| !a.contains("127.0.0.1")),
            "{announced:?}"
        );
    }
}
