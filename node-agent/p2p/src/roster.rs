//! Who may talk: the newest oracle-signed [`Roster`] a node accepted, parsed into peer
//! addresses and dialable multiaddrs. Pure logic; the swarm applies what it decides.
//!
//! [`RosterBook::offer`] accepts a roster envelope only when it passes r1-protocol's envelope
//! verification with a listed oracle as sender (signature, freshness, replay), respects the
//! [`Roster`] limits, was not issued beyond the clock skew in the future, and is strictly newer
//! than the one held. Anything else is refused with a [`Refusal`] whose [`label`](Refusal::label)
//! names the reason for metrics, and changes nothing.

use std::collections::{BTreeMap, HashSet};

use alloy_primitives::Address;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use r1_protocol::messages::{Roster, RosterLimit};
use r1_protocol::verify::SenderPolicy;
use r1_protocol::{Freshness, MessageKind, Verifier, VerifyError};

use crate::identity::address_of;

/// Largest roster envelope read: one MQTT packet.
pub const MAX_ENVELOPE_BYTES: usize = r1_protocol::mqtt::MAX_PACKET_BYTES;

/// A roster as the swarm uses it: allowed addresses and the multiaddrs to dial each at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedRoster {
    issued_ms: u64,
    peers: BTreeMap<Address, Vec<Multiaddr>>,
}

impl ParsedRoster {
    /// Parses `roster`'s multiaddrs; returns the roster and how many multiaddrs were dropped
    /// because they do not parse or name a peer id other than their entry's address.
    pub fn from_message(roster: &Roster) -> (Self, usize) {
        let mut dropped = 0;
        let mut peers = BTreeMap::new();
        for entry in &roster.nodes {
            let mut addrs = Vec::with_capacity(entry.addrs.len());
            for text in &entry.addrs {
                match parse_addr(text, &entry.address) {
                    Some(addr) if !addrs.contains(&addr) => addrs.push(addr),
                    Some(_) => {}
                    None => dropped += 1,
                }
            }
            peers.insert(entry.address, addrs);
        }
        let parsed = Self {
            issued_ms: roster.issued_ms,
            peers,
        };
        (parsed, dropped)
    }

    /// A roster issued at `issued_ms` allowing `peers` at the given multiaddrs (taken as
    /// they are: for callers that built them, e.g. tests).
    pub fn new(issued_ms: u64, peers: impl IntoIterator<Item = (Address, Vec<Multiaddr>)>) -> Self {
        Self {
            issued_ms,
            peers: peers.into_iter().collect(),
        }
    }

    /// When the oracle issued it (ms since the Unix epoch).
    pub fn issued_ms(&self) -> u64 {
        self.issued_ms
    }

    /// Whether `address` is on the roster.
    pub fn contains(&self, address: &Address) -> bool {
        self.peers.contains_key(address)
    }

    /// The multiaddrs `address` announced (empty when it is not on the roster).
    pub fn addrs(&self, address: &Address) -> &[Multiaddr] {
        self.peers.get(address).map_or(&[], Vec::as_slice)
    }

    /// Every allowed address with its multiaddrs, in address order.
    pub fn peers(&self) -> impl Iterator<Item = (&Address, &[Multiaddr])> {
        self.peers.iter().map(|(a, m)| (a, m.as_slice()))
    }

    /// How many nodes it lists.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether it lists no node.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// What changed from `self` to `next`.
    pub fn diff(&self, next: &Self) -> Changed {
        let added = next
            .peers
            .keys()
            .filter(|a| !self.peers.contains_key(*a))
            .copied()
            .collect();
        let removed = self
            .peers
            .keys()
            .filter(|a| !next.peers.contains_key(*a))
            .copied()
            .collect();
        let readdressed = next
            .peers
            .iter()
            .filter(|(a, m)| self.peers.get(*a).is_some_and(|old| old != *m))
            .map(|(a, _)| *a)
            .collect();
        Changed {
            issued_ms: next.issued_ms,
            added,
            removed,
            readdressed,
            dropped_addrs: 0,
        }
    }
}

/// A multiaddr of `owner`'s, without a trailing `/p2p/…`; `None` when it does not parse or
/// carries a peer id that is not `owner`'s (or one anywhere but at the end).
fn parse_addr(text: &str, owner: &Address) -> Option<Multiaddr> {
    let mut addr: Multiaddr = text.parse().ok()?;
    if let Some(Protocol::P2p(peer)) = addr.iter().last() {
        if address_of(&peer).as_ref() != Some(owner) {
            return None;
        }
        addr.pop();
    }
    if addr.is_empty() || addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
        return None;
    }
    Some(addr)
}

/// What an accepted roster changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    /// The accepted roster's issue time.
    pub issued_ms: u64,
    /// Nodes that joined.
    pub added: Vec<Address>,
    /// Nodes that left: their connections are closed.
    pub removed: Vec<Address>,
    /// Nodes still on it whose multiaddrs changed.
    pub readdressed: Vec<Address>,
    /// Multiaddrs dropped because they do not parse or name another peer.
    pub dropped_addrs: usize,
}

/// Why a roster was not accepted. Nothing changes on a refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The envelope is larger than [`MAX_ENVELOPE_BYTES`].
    #[error("roster envelope of {0} bytes is over the {MAX_ENVELOPE_BYTES}-byte limit")]
    TooLarge(usize),
    /// The envelope failed verification: malformed, not a roster, not signed by a listed
    /// oracle, forged, stale, from the future or replayed.
    #[error("roster envelope refused: {0}")]
    Envelope(#[from] VerifyError),
    /// The roster breaks its size limits or lists a node twice.
    #[error("roster refused: {0}")]
    Limit(#[from] RosterLimit),
    /// Issued further ahead of the local clock than the allowed skew.
    #[error("roster issued {ahead_ms} ms in the future")]
    IssuedInTheFuture {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// Issued at the same time as the roster held: the same roster again, ignored.
    #[error("roster issued at {issued_ms} is the one already held")]
    NotNewer {
        /// Its issue time.
        issued_ms: u64,
    },
    /// Older than the roster held.
    #[error("roster issued at {issued_ms} is older than the one held (issued at {current_ms})")]
    Older {
        /// Its issue time.
        issued_ms: u64,
        /// The issue time of the roster held.
        current_ms: u64,
    },
}

impl Refusal {
    /// A short label for metrics and logs: `unknown_sender`, `older`, …
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Envelope(e) => e.label(),
            Self::Limit(RosterLimit::Duplicate(_)) => "duplicate_node",
            Self::Limit(_) => "over_limit",
            Self::IssuedInTheFuture { .. } => "issued_in_the_future",
            Self::NotNewer { .. } => "not_newer",
            Self::Older { .. } => "older",
        }
    }
}

/// The oracles allowed to sign rosters, for the envelope verifier.
#[derive(Debug, Default)]
struct Oracles(HashSet<Address>);

impl SenderPolicy for Oracles {
    fn allows(&self, kind: MessageKind, sender: &Address) -> bool {
        kind == MessageKind::Roster && self.0.contains(sender)
    }
}

/// Holds the newest accepted roster and decides on offered ones.
#[derive(Debug)]
pub struct RosterBook {
    verifier: Verifier<Oracles>,
    max_future_ms: u64,
    current: Option<ParsedRoster>,
}

impl Default for RosterBook {
    fn default() -> Self {
        Self::new(Freshness::default())
    }
}

impl RosterBook {
    /// An empty book checking envelopes within `freshness`; `freshness.max_future_ms` also
    /// bounds how far ahead a roster's `issued_ms` may be.
    pub fn new(freshness: Freshness) -> Self {
        Self {
            verifier: Verifier::new(Oracles::default(), freshness),
            max_future_ms: freshness.max_future_ms,
            current: None,
        }
    }

    /// The roster held, once one was accepted.
    pub fn current(&self) -> Option<&ParsedRoster> {
        self.current.as_ref()
    }

    /// Offers the roster envelope `bytes`, received at `now_ms`, signed by one of `oracles`.
    pub fn offer(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        oracles: &HashSet<Address>,
    ) -> Result<Changed, Refusal> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(Refusal::TooLarge(bytes.len()));
        }
        if self.verifier.policy_mut().0 != *oracles {
            self.verifier.policy_mut().0.clone_from(oracles);
        }
        let roster = self.verifier.verify::<Roster>(bytes, now_ms)?.message;
        roster.check()?;
        if roster.issued_ms > now_ms.saturating_add(self.max_future_ms) {
            return Err(Refusal::IssuedInTheFuture {
                ahead_ms: roster.issued_ms - now_ms,
            });
        }
        if let Some(current) = &self.current {
            let current_ms = current.issued_ms;
            if roster.issued_ms == current_ms {
                return Err(Refusal::NotNewer {
                    issued_ms: current_ms,
                });
            }
            if roster.issued_ms < current_ms {
                return Err(Refusal::Older {
                    issued_ms: roster.issued_ms,
                    current_ms,
                });
            }
        }
        let (parsed, dropped) = ParsedRoster::from_message(&roster);
        let mut changed = self.current.clone().unwrap_or_default().diff(&parsed);
        changed.dropped_addrs = dropped;
        self.current = Some(parsed);
        Ok(changed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use r1_protocol::messages::RosterEntry;
    use r1_protocol::{Envelope, Identity};

    use super::*;
    use crate::identity::peer_id;

    const NOW: u64 = 1_800_000_000_000;

    struct Net {
        oracle: Identity,
        oracles: HashSet<Address>,
        nodes: Vec<Identity>,
        nonce: u64,
    }

    impl Net {
        fn new() -> Self {
            let oracle = Identity::generate();
            let oracles = HashSet::from([oracle.address()]);
            let nodes = (0..3).map(|_| Identity::generate()).collect();
            Self {
                oracle,
                oracles,
                nodes,
                nonce: 0,
            }
        }

        fn entry(&self, i: usize, addrs: &[&str]) -> RosterEntry {
            RosterEntry {
                address: self.nodes[i].address(),
                addrs: addrs.iter().map(|a| (*a).to_owned()).collect(),
            }
        }

        fn seal_by(&mut self, by: &Identity, roster: &Roster, ts: u64) -> Vec<u8> {
            self.nonce += 1;
            Envelope::seal(by, roster, self.nonce, ts)
                .unwrap()
                .to_bytes()
        }

        fn seal(&mut self, roster: &Roster) -> Vec<u8> {
            let oracle = self.oracle.clone();
            self.seal_by(&oracle, roster, NOW)
        }
    }

    fn roster(issued_ms: u64, nodes: Vec<RosterEntry>) -> Roster {
        Roster { issued_ms, nodes }
    }

    #[test]
    fn accepts_newer_and_reports_the_difference() {
        let mut net = Net::new();
        let mut book = RosterBook::default();
        let first = roster(
            NOW - 10,
            vec![
                net.entry(0, &["/ip4/127.0.0.1/tcp/4001"]),
                net.entry(1, &[]),
            ],
        );
        let bytes = net.seal(&first);
        let changed = book.offer(&bytes, NOW, &net.oracles).unwrap();
        assert_eq!(changed.issued_ms, NOW - 10);
        let mut both = vec![net.nodes[0].address(), net.nodes[1].address()];
        both.sort();
        assert_eq!(changed.added, both);
        assert!(changed.removed.is_empty());
        let current = book.current().unwrap();
        assert_eq!(current.len(), 2);
        assert_eq!(
            current.addrs(&net.nodes[0].address()),
            &["/ip4/127.0.0.1/tcp/4001".parse::<Multiaddr>().unwrap()]
        );

        let second = roster(
            NOW - 5,
            vec![
                net.entry(0, &["/ip4/127.0.0.1/tcp/4002"]),
                net.entry(2, &[]),
            ],
        );
        let bytes = net.seal(&second);
        let changed = book.offer(&bytes, NOW, &net.oracles).unwrap();
        assert_eq!(changed.added, vec![net.nodes[2].address()]);
        assert_eq!(changed.removed, vec![net.nodes[1].address()]);
        assert_eq!(changed.readdressed, vec![net.nodes[0].address()]);
        assert!(!book.current().unwrap().contains(&net.nodes[1].address()));
    }

    #[test]
    fn older_equal_and_foreign_rosters_change_nothing() {
        let mut net = Net::new();
        let mut book = RosterBook::default();
        let bytes = net.seal(&roster(NOW, vec![net.entry(0, &[])]));
        book.offer(&bytes, NOW, &net.oracles).unwrap();
        let held = book.current().cloned();

        let older = net.seal(&roster(NOW - 1, vec![net.entry(1, &[])]));
        let refusal = book.offer(&older, NOW, &net.oracles).unwrap_err();
        assert_eq!(refusal.label(), "older");
        let same = net.seal(&roster(NOW, vec![net.entry(1, &[])]));
        let refusal = book.offer(&same, NOW, &net.oracles).unwrap_err();
        assert_eq!(refusal.label(), "not_newer");

        let stranger = Identity::generate();
        let forged = net.seal_by(&stranger, &roster(NOW + 1, vec![net.entry(1, &[])]), NOW);
        let refusal = book.offer(&forged, NOW, &net.oracles).unwrap_err();
        assert_eq!(refusal.label(), "unknown_sender");

        // A node (licensed, but not an oracle) cannot issue one either.
        let node = net.nodes[0].clone();
        let by_node = net.seal_by(&node, &roster(NOW + 1, vec![net.entry(1, &[])]), NOW);
        let refusal = book.offer(&by_node, NOW, &net.oracles).unwrap_err();
        assert_eq!(refusal.label(), "unknown_sender");

        assert_eq!(book.current().cloned(), held);
    }

    #[test]
    fn envelope_checks_apply() {
        let mut net = Net::new();
        let mut book = RosterBook::default();
        let first = net.seal(&roster(NOW, vec![net.entry(0, &[])]));

        let mut tampered = String::from_utf8(first).unwrap();
        tampered = tampered.replace(&format!("{NOW}"), &format!("{}", NOW - 1));
        let refusal = book
            .offer(tampered.as_bytes(), NOW, &net.oracles)
            .unwrap_err();
        assert_eq!(refusal.label(), "bad_signature");

        let oracle = net.oracle.clone();
        let stale = net.seal_by(&oracle, &roster(NOW, vec![]), NOW - 61_000);
        assert_eq!(
            book.offer(&stale, NOW, &net.oracles).unwrap_err().label(),
            "stale"
        );
        let early = net.seal_by(&oracle, &roster(NOW, vec![]), NOW + 6_000);
        assert_eq!(
            book.offer(&early, NOW, &net.oracles).unwrap_err().label(),
            "from_the_future"
        );
        // Sealed now, but claiming to be issued beyond the skew.
        let ahead = net.seal(&roster(NOW + 6_000, vec![]));
        assert_eq!(
            book.offer(&ahead, NOW, &net.oracles).unwrap_err().label(),
            "issued_in_the_future"
        );
        assert_eq!(
            book.offer(b"{}", NOW, &net.oracles).unwrap_err().label(),
            "malformed"
        );
        assert_eq!(
            book.offer(&vec![b' '; MAX_ENVELOPE_BYTES + 1], NOW, &net.oracles)
                .unwrap_err()
                .label(),
            "too_large"
        );
        assert!(book.current().is_none());

        // The roster issued in the future passed the envelope checks, so its nonce is taken.
        let good = net.seal(&roster(NOW, vec![net.entry(0, &[])]));
        book.offer(&good, NOW, &net.oracles).unwrap();
        assert_eq!(
            book.offer(&good, NOW, &net.oracles).unwrap_err().label(),
            "replayed"
        );
    }

    #[test]
    fn limits_are_checked_on_receipt() {
        let mut net = Net::new();
        let mut book = RosterBook::default();
        let five = ["/ip4/127.0.0.1/tcp/1"; 5];
        let bytes = net.seal(&roster(NOW, vec![net.entry(0, &five)]));
        assert_eq!(
            book.offer(&bytes, NOW, &net.oracles).unwrap_err().label(),
            "over_limit"
        );
        let bytes = net.seal(&roster(NOW, vec![net.entry(0, &[]), net.entry(0, &[])]));
        assert_eq!(
            book.offer(&bytes, NOW, &net.oracles).unwrap_err().label(),
            "duplicate_node"
        );
        assert!(book.current().is_none());
    }

    #[test]
    fn bad_multiaddrs_are_dropped_and_counted() {
        let mut net = Net::new();
        let mut book = RosterBook::default();
        let own = format!(
            "/ip4/127.0.0.1/tcp/1/p2p/{}",
            peer_id(&net.nodes[0]).unwrap()
        );
        let other = format!(
            "/ip4/127.0.0.1/tcp/2/p2p/{}",
            peer_id(&net.nodes[1]).unwrap()
        );
        let middle = format!(
            "/p2p/{}/ip4/127.0.0.1/tcp/3",
            peer_id(&net.nodes[0]).unwrap()
        );
        let entry = net.entry(0, &[&own, &other, "not a multiaddr", &middle]);
        let bytes = net.seal(&roster(NOW, vec![entry]));
        let changed = book.offer(&bytes, NOW, &net.oracles).unwrap();
        assert_eq!(changed.dropped_addrs, 3);
        assert_eq!(
            book.current().unwrap().addrs(&net.nodes[0].address()),
            &["/ip4/127.0.0.1/tcp/1".parse::<Multiaddr>().unwrap()]
        );
    }
}
