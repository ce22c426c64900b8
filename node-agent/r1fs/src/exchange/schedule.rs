//! Which blocks to ask which provider for, as pure bookkeeping: a fetch starts from a root,
//! learns the rest of the DAG from each dag-pb block that arrives, keeps at most `window`
//! blocks in flight per provider, checks every block against its CID, and moves a block to
//! another provider when one fails, lacks it or sends wrong bytes (a provider that sends wrong
//! bytes is dropped for the rest of the fetch).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use alloy_primitives::Address;

use crate::unixfs::dag_pb;
use crate::unixfs::{Cid, Codec, verify};

/// How many failed requests (timeouts, refusals) a provider may have before the fetch stops
/// asking it.
pub const MAX_FAILURES: u32 = 3;

/// One provider's standing in a fetch.
#[derive(Debug, Clone, Default)]
struct Provider {
    in_flight: usize,
    failures: u32,
    dropped: bool,
    lacks: BTreeSet<Cid>,
}

/// Why a fetch cannot finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stuck {
    /// No provider left that might have the block.
    #[error("no provider has block {0}")]
    NoProvider(Cid),
}

/// What one answer did to the fetch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Blocks that verified, to store.
    pub accepted: Vec<(Cid, Vec<u8>)>,
    /// Whether the provider sent wrong bytes and was dropped.
    pub penalised: bool,
}

/// The state of fetching one DAG.
#[derive(Debug)]
pub struct Schedule {
    window: usize,
    providers: BTreeMap<Address, Provider>,
    pending: VecDeque<Cid>,
    in_flight: BTreeMap<Cid, Address>,
    known: BTreeSet<[u8; 32]>,
    done: usize,
}

impl Schedule {
    /// A fetch of the DAG under `root` from `providers`, at most `window` blocks in flight per
    /// provider.
    pub fn new(root: Cid, providers: impl IntoIterator<Item = Address>, window: usize) -> Self {
        Self {
            window: window.max(1),
            providers: providers
                .into_iter()
                .map(|p| (p, Provider::default()))
                .collect(),
            pending: VecDeque::from([root]),
            in_flight: BTreeMap::new(),
            known: BTreeSet::from([*root.digest()]),
            done: 0,
        }
    }

    /// A block the node already has, found before asking anyone (a resumed fetch): counted as
    /// done, and its links (when it is dag-pb) queued. `false` when the bytes do not match the
    /// CID, and the block stays queued.
    pub fn held(&mut self, cid: Cid, bytes: &[u8]) -> bool {
        if !verify(&cid, bytes) {
            return false;
        }
        self.pending.retain(|c| *c != cid);
        self.done += 1;
        self.follow(&cid, bytes);
        true
    }

    /// The blocks waiting to be asked for, oldest first (for checking the local store before
    /// asking peers).
    pub fn pending(&self) -> impl Iterator<Item = &Cid> {
        self.pending.iter()
    }

    /// The requests to send now: each provider with room gets up to its free window of pending
    /// blocks it has not said it lacks, least-loaded provider first.
    pub fn next_requests(&mut self) -> Result<Vec<(Address, Vec<Cid>)>, Stuck> {
        let mut requests: BTreeMap<Address, Vec<Cid>> = BTreeMap::new();
        let mut waiting = VecDeque::new();
        while let Some(cid) = self.pending.pop_front() {
            let candidates: Vec<Address> = self
                .providers
                .iter()
                .filter(|(_, p)| !p.dropped && !p.lacks.contains(&cid))
                .map(|(a, _)| *a)
                .collect();
            if candidates.is_empty() {
                return Err(Stuck::NoProvider(cid));
            }
            let chosen = candidates
                .into_iter()
                .filter(|a| self.providers[a].in_flight < self.window)
                .min_by_key(|a| self.providers[a].in_flight);
            match chosen {
                Some(provider) => {
                    if let Some(p) = self.providers.get_mut(&provider) {
                        p.in_flight += 1;
                    }
                    self.in_flight.insert(cid, provider);
                    requests.entry(provider).or_default().push(cid);
                }
                None => waiting.push_back(cid),
            }
        }
        self.pending = waiting;
        Ok(requests.into_iter().collect())
    }

    /// An answer from `provider` to a request for `asked`: `found` blocks it sent, the rest it
    /// lacks. A block that does not match its CID drops the provider and goes back to the queue.
    pub fn answered(
        &mut self,
        provider: Address,
        asked: &[Cid],
        found: Vec<(Cid, Vec<u8>)>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let mut answered = BTreeSet::new();
        for (cid, bytes) in found {
            if !asked.contains(&cid) || !answered.insert(cid) {
                continue;
            }
            if !verify(&cid, &bytes) {
                outcome.penalised = true;
                continue;
            }
            self.release(provider, &cid);
            self.done += 1;
            self.follow(&cid, &bytes);
            outcome.accepted.push((cid, bytes));
        }
        for cid in asked.iter().filter(|c| !answered.contains(c)) {
            self.release(provider, cid);
            if let Some(p) = self.providers.get_mut(&provider) {
                p.lacks.insert(*cid);
            }
            self.pending.push_back(*cid);
        }
        if outcome.penalised {
            self.drop_provider(provider);
            for cid in asked.iter().filter(|c| answered.contains(c)) {
                if !outcome.accepted.iter().any(|(a, _)| a == cid) {
                    self.release(provider, cid);
                    self.pending.push_back(*cid);
                }
            }
        }
        outcome
    }

    /// A request to `provider` for `asked` failed (timeout, disconnect): the blocks go back to
    /// the queue; after [`MAX_FAILURES`] the provider is no longer asked.
    pub fn failed(&mut self, provider: Address, asked: &[Cid]) {
        for cid in asked {
            self.release(provider, cid);
            self.pending.push_back(*cid);
        }
        if let Some(p) = self.providers.get_mut(&provider) {
            p.failures += 1;
            if p.failures >= MAX_FAILURES {
                p.dropped = true;
            }
        }
    }

    /// Whether every block of the DAG has arrived.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty()
    }

    /// Blocks fetched (or found held) so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Providers still asked.
    pub fn providers_left(&self) -> usize {
        self.providers.values().filter(|p| !p.dropped).count()
    }

    fn drop_provider(&mut self, provider: Address) {
        if let Some(p) = self.providers.get_mut(&provider) {
            p.dropped = true;
        }
    }

    fn release(&mut self, provider: Address, cid: &Cid) {
        if self.in_flight.get(cid) == Some(&provider) {
            self.in_flight.remove(cid);
            if let Some(p) = self.providers.get_mut(&provider) {
                p.in_flight = p.in_flight.saturating_sub(1);
            }
        }
    }

    /// Queues the links of a dag-pb block not seen before in this fetch.
    fn follow(&mut self, cid: &Cid, bytes: &[u8]) {
        if cid.codec() != Codec::DagPb {
            return;
        }
        let Ok(node) = dag_pb::decode(bytes) else {
            return;
        };
        for link in node.links {
            if self.known.insert(*link.cid.digest()) {
                self.pending.push_back(link.cid);
            }
        }
    }
}

#[cfg(test)]
mod tests;
