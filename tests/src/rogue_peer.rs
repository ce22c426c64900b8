//! A peer-to-peer node run by a test, answering requests however the test says: put on the
//! roster it plays a licensed node gone bad (serving wrong bytes), left off it a stranger.

use prometheus_client::registry::Registry;
use r1_p2p::{Client, Event, Multiaddr, P2p, ParsedRoster};
use r1_protocol::Identity;
use r1_protocol::messages::RosterEntry;

/// The libp2p network name the harness's nodes use (their topic root `r1/test`).
pub const NETWORK: &str = "r1-test";

/// How a rogue answers a request: `(protocol, request)` to the answer, `None` for none.
pub type Answer = Box<dyn Fn(&str, &[u8]) -> Option<Vec<u8>> + Send>;

/// A running rogue peer.
pub struct RoguePeer {
    /// Its key.
    pub identity: Identity,
    /// Its peer-to-peer client, to set its roster and send requests.
    pub client: Client,
    addrs: Vec<Multiaddr>,
}

impl RoguePeer {
    /// Starts a peer on 127.0.0.1 serving `protocols` with `answer`. Call from a tokio
    /// runtime.
    pub async fn start(protocols: &[&str], answer: Answer) -> Result<Self, r1_p2p::Error> {
        let identity = Identity::generate();
        let mut config = r1_p2p::Config::new(identity.clone(), NETWORK);
        config.listen = vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .map_err(|e| r1_p2p::Error::Config(format!("loopback multiaddr: {e}")))?,
        ];
        config.request_protocols = protocols.iter().map(|p| (*p).to_owned()).collect();
        let (client, mut events) = P2p::start(config, &mut Registry::default()).await?;
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Event::Request {
                    protocol,
                    bytes,
                    reply,
                    ..
                } = event
                    && let Some(answer) = answer(&protocol, &bytes)
                {
                    let _ = reply.send(answer);
                }
            }
        });
        let addrs = client.listen_addrs().await?;
        Ok(Self {
            identity,
            client,
            addrs,
        })
    }

    /// Its roster entry.
    pub fn entry(&self) -> RosterEntry {
        RosterEntry {
            address: self.identity.address(),
            addrs: self.addrs.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A roster of `entries`, issued now, as a rogue's own client takes it.
pub fn roster_of(entries: &[RosterEntry]) -> ParsedRoster {
    ParsedRoster::new(
        r1_protocol::now_ms(),
        entries.iter().map(|e| {
            (
                e.address,
                e.addrs.iter().filter_map(|a| a.parse().ok()).collect(),
            )
        }),
    )
}
