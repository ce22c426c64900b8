//! The roster this oracle publishes to the nodes: who may talk peer to peer (every licensed
//! node it knows, with the listen addresses its latest heartbeat announced), and when to
//! publish it again: at once when it changes, else every [`REPUBLISH_MS`] so a node that
//! (re)joins learns it soon (the broker keeps no retained messages).

use alloy_primitives::Address;
use r1_protocol::messages::{Roster, RosterEntry};

/// How often an unchanged roster is published again.
pub const REPUBLISH_MS: u64 = 30_000;

/// A roster entry for `node` announcing `addrs`: at most as many addresses as a roster holds,
/// each within the length limit (longer ones dropped), duplicates removed.
pub fn entry(node: Address, addrs: &[String]) -> RosterEntry {
    let mut kept: Vec<String> = Vec::new();
    for addr in addrs {
        if addr.len() <= Roster::MAX_ADDR_LEN && !kept.contains(addr) {
            kept.push(addr.clone());
        }
    }
    kept.truncate(Roster::MAX_ADDRS_PER_NODE);
    RosterEntry {
        address: node,
        addrs: kept,
    }
}

/// What was last published, to decide when to publish again.
#[derive(Debug, Default)]
pub struct RosterSchedule {
    last: Option<(Vec<RosterEntry>, u64)>,
}

impl RosterSchedule {
    /// The roster to publish at `now_ms` with `nodes` on it (sorted by address, at most
    /// [`Roster::MAX_NODES`]), or `None` when the last one published is the same and recent.
    pub fn due(&self, mut nodes: Vec<RosterEntry>, now_ms: u64) -> Option<Roster> {
        nodes.sort_by_key(|entry| entry.address);
        nodes.dedup_by_key(|entry| entry.address);
        nodes.truncate(Roster::MAX_NODES);
        match &self.last {
            Some((last, at)) if *last == nodes && now_ms.saturating_sub(*at) < REPUBLISH_MS => None,
            _ => Some(Roster {
                issued_ms: now_ms,
                nodes,
            }),
        }
    }

    /// Records that `roster` went out.
    pub fn published(&mut self, roster: Roster) {
        self.last = Some((roster.nodes, roster.issued_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8, addr: &str) -> RosterEntry {
        entry(Address::repeat_byte(byte), &[addr.to_owned()])
    }

    #[test]
    fn published_on_change_and_every_thirty_seconds_otherwise() {
        let mut schedule = RosterSchedule::default();
        let nodes = vec![
            node(2, "/ip4/127.0.0.1/tcp/2"),
            node(1, "/ip4/127.0.0.1/tcp/1"),
        ];
        let first = schedule
            .due(nodes.clone(), 1_000)
            .expect("nothing published yet");
        assert_eq!(first.nodes[0].address, Address::repeat_byte(1), "sorted");
        assert!(first.nodes.len() == 2 && first.issued_ms == 1_000);
        schedule.published(first);
        assert!(
            schedule
                .due(nodes.clone(), 1_000 + REPUBLISH_MS - 1)
                .is_none()
        );
        assert!(schedule.due(nodes.clone(), 1_000 + REPUBLISH_MS).is_some());
        let moved = vec![
            node(1, "/ip4/127.0.0.1/tcp/9"),
            node(2, "/ip4/127.0.0.1/tcp/2"),
        ];
        assert!(schedule.due(moved, 2_000).is_some(), "an address changed");
    }

    #[test]
    fn entries_keep_within_the_roster_limits() {
        let mut addrs: Vec<String> = (0..6).map(|i| format!("/ip4/10.0.0.{i}/tcp/1")).collect();
        addrs.insert(0, "x".repeat(Roster::MAX_ADDR_LEN + 1));
        addrs.insert(1, addrs[1].clone());
        let entry = entry(Address::repeat_byte(3), &addrs);
        assert_eq!(entry.addrs.len(), Roster::MAX_ADDRS_PER_NODE);
        assert_eq!(entry.addrs[0], "/ip4/10.0.0.0/tcp/1");
        let roster = Roster {
            issued_ms: 1,
            nodes: vec![entry],
        };
        assert!(roster.check().is_ok());
    }
}
