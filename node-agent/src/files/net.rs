//! R1FS on the peer-to-peer layer: block requests to peers over the `r1fs` protocol, finding
//! which connected peers hold a root, and answering the peers' requests from this node's store.

use std::sync::Arc;
use std::time::Duration;

use r1_p2p::{Client, Event};
use r1_protocol::Address;
use r1_r1fs::exchange::{Peers, wire};
use r1_r1fs::unixfs::{Cid, verify};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::metrics::FilesMetrics;
use super::service::Files;

/// The request-response protocol R1FS blocks travel on.
pub const PROTOCOL: &str = "r1fs";

/// How long a peer may take to say whether it holds a root.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(3);

/// Peers' block requests answered at once; more wait (and time out at the asker's end).
const CONCURRENT_ANSWERS: usize = 16;

/// The `r1fs` protocol over this node's peer-to-peer client.
#[derive(Clone)]
pub struct Net {
    client: Client,
    metrics: Arc<FilesMetrics>,
}

impl Peers for Net {
    type Error = r1_p2p::Error;

    async fn request(&self, peer: Address, bytes: Vec<u8>) -> Result<Vec<u8>, r1_p2p::Error> {
        let answer = self.client.request(peer, PROTOCOL, bytes).await;
        let outcome = if answer.is_ok() { "answered" } else { "failed" };
        FilesMetrics::count(&self.metrics.block_requests, outcome);
        answer
    }
}

impl Net {
    /// Requests over `client`, counted in `metrics`.
    pub fn new(client: Client, metrics: Arc<FilesMetrics>) -> Self {
        Self { client, metrics }
    }

    /// The connected peers that answer a request for `root` with its block (a peer that holds
    /// the root is taken to hold, or be fetching, the rest; the fetch asks others for what it
    /// lacks).
    pub async fn providers(&self, root: Cid) -> Vec<Address> {
        let peers = match self.client.connected_peers().await {
            Ok(peers) => peers,
            Err(e) => {
                tracing::warn!("peer-to-peer layer: {e}");
                return Vec::new();
            }
        };
        let request = wire::encode_request(&[root]);
        let mut asks = JoinSet::new();
        for peer in peers {
            let net = self.clone();
            let request = request.clone();
            asks.spawn(async move {
                let answer =
                    tokio::time::timeout(PROVIDER_TIMEOUT, net.request(peer, request)).await;
                let holds = matches!(answer, Ok(Ok(bytes)) if wire::decode_answer(&bytes)
                    .is_ok_and(|blocks| blocks.iter().any(|(cid, data)| *cid == root && verify(cid, data))));
                (peer, holds)
            });
        }
        let mut providers = Vec::new();
        while let Some(joined) = asks.join_next().await {
            if let Ok((peer, true)) = joined {
                providers.push(peer);
            }
        }
        providers.sort();
        providers
    }
}

/// Takes R1FS's peer-to-peer events: block requests answered from `files`, at most
/// [`CONCURRENT_ANSWERS`] at a time.
pub async fn serve(mut events: mpsc::Receiver<Event>, files: Files) {
    let answering = Arc::new(Semaphore::new(CONCURRENT_ANSWERS));
    while let Some(event) = events.recv().await {
        match event {
            Event::Request {
                from,
                protocol,
                bytes,
                reply,
            } if protocol == PROTOCOL => {
                let Ok(permit) = answering.clone().acquire_owned().await else {
                    return;
                };
                let files = files.clone();
                tokio::spawn(async move {
                    match files.answer(bytes).await {
                        Some(answer) => {
                            let _ = reply.send(answer);
                        }
                        None => tracing::debug!(%from, "malformed block request; not answered"),
                    }
                    drop(permit);
                });
            }
            other => tracing::debug!(?other, "peer-to-peer event with no taker"),
        }
    }
}
