//! Fetching a DAG from other nodes into the local store, and answering their requests from it.
//!
//! The network is a [`Peers`] implementation (the node agent's is `r1-p2p`), so this module is
//! the same whatever carries the bytes. A fetch asks one block per request, keeps a window of
//! requests in flight per provider, stores each verified block under a [`Lease`] as it
//! arrives, and pins the root at the end; blocks already in the store are not asked for again,
//! so a fetch that was interrupted resumes where it stopped.

use std::collections::BTreeMap;
use std::future::Future;

use alloy_primitives::Address;
use tokio::task::JoinSet;

use super::schedule::{Schedule, Stuck};
use super::wire::{self, WireError};
use crate::blocks::{BlockStore, Lease, StoreError};
use crate::unixfs::Cid;

/// The network as a fetch uses it: one request to one peer, one answer back.
pub trait Peers: Clone + Send + Sync + 'static {
    /// Why a request failed (timeout, disconnect, refusal).
    type Error: std::fmt::Display + Send;

    /// Sends `bytes` to `peer` over the `r1fs` protocol and returns its answer.
    fn request(
        &self,
        peer: Address,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send;
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Some block is on no provider that is left.
    #[error(transparent)]
    Stuck(#[from] Stuck),
    /// The local store refused or failed (quota, disk).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Blocks received from each provider.
    pub from: BTreeMap<Address, usize>,
    /// Blocks that were already in the store.
    pub held: usize,
    /// Providers dropped for sending bytes that do not match their CID.
    pub penalised: Vec<Address>,
    /// Requests that failed (timeouts, disconnects, malformed answers).
    pub failed_requests: usize,
}

/// Fetches the DAG under `root` from `providers` into `store` with at most `window` requests
/// in flight per provider, and pins it for `owner`.
pub async fn fetch<P: Peers>(
    store: &BlockStore,
    peers: &P,
    root: Cid,
    providers: Vec<Address>,
    window: usize,
    owner: &str,
) -> Result<Fetched, FetchError> {
    let mut schedule = Schedule::new(root, providers, window);
    let mut lease = store.lease();
    let mut fetched = Fetched {
        held: take_held(store, &mut lease, &mut schedule)?,
        ..Fetched::default()
    };
    let mut requests = JoinSet::new();
    while !schedule.is_done() {
        for (provider, asked) in schedule.next_requests()? {
            for cid in asked {
                let peers = peers.clone();
                let bytes = wire::encode_request(&[cid]);
                requests.spawn(async move {
                    let answer = peers.request(provider, bytes).await;
                    (provider, cid, answer.map_err(|e| e.to_string()))
                });
            }
        }
        let Some(joined) = requests.join_next().await else {
            // Nothing in flight and nothing could be asked: every provider's window is empty
            // yet blocks are queued, which `next_requests` reports as stuck; defensive stop.
            break;
        };
        let Ok((provider, cid, answer)) = joined else {
            continue;
        };
        match answer.and_then(|bytes| wire::decode_answer(&bytes).map_err(|e| e.to_string())) {
            Ok(found) => {
                let outcome = schedule.answered(provider, &[cid], found);
                if outcome.penalised {
                    tracing::warn!(%provider, %cid, "provider sent a block that does not match its CID; dropped");
                    fetched.penalised.push(provider);
                }
                for (cid, bytes) in outcome.accepted {
                    lease.put(&cid, &bytes)?;
                    *fetched.from.entry(provider).or_default() += 1;
                }
                fetched.held += take_held(store, &mut lease, &mut schedule)?;
            }
            Err(reason) => {
                tracing::debug!(%provider, %cid, "block request failed: {reason}");
                fetched.failed_requests += 1;
                schedule.failed(provider, &[cid]);
            }
        }
    }
    store.pin(&root, owner)?;
    Ok(fetched)
}

/// Counts as done every queued block the store already has (holding it under `lease`).
fn take_held(
    store: &BlockStore,
    lease: &mut Lease<'_>,
    schedule: &mut Schedule,
) -> Result<usize, StoreError> {
    let mut held = 0;
    loop {
        let pending: Vec<Cid> = schedule.pending().copied().collect();
        let mut found = false;
        for cid in pending {
            if let Some(bytes) = store.get(&cid)? {
                lease.hold(&cid);
                if schedule.held(cid, &bytes) {
                    held += 1;
                    found = true;
                }
            }
        }
        if !found {
            return Ok(held);
        }
    }
}

/// The answer to a peer's request: the asked blocks this store has, up to `max_bytes` in all
/// (the rest the peer will ask again, or elsewhere).
pub fn answer(store: &BlockStore, request: &[u8], max_bytes: usize) -> Result<Vec<u8>, WireError> {
    let wanted = wire::decode_request(request)?;
    let mut found = Vec::new();
    let mut total = 0;
    for cid in wanted {
        let Ok(Some(bytes)) = store.get(&cid) else {
            continue;
        };
        total += bytes.len() + 80;
        if total > max_bytes {
            break;
        }
        found.push((cid, bytes));
    }
    Ok(wire::encode_answer(&found))
}

#[cfg(test)]
mod tests;
