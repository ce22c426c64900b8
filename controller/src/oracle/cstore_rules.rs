//! Publishes the CSTORE access rules ([`crate::decide::cstore_rules`]) to the nodes over MQTT
//! (`{root}/oracles/{me}/cstore`), as system-namespace entries sealed by this oracle: what
//! changed as soon as it changes, and everything again every [`REPUBLISH_MS`] for nodes that
//! joined since (nodes also pass the entries on to each other by anti-entropy).

use std::collections::BTreeMap;

use r1_cstore::seal::seal_batch;
use r1_cstore::{Entry, Key, Stamp, delta};
use r1_protocol::Identity;

use crate::decide::cstore_rules::changes;

/// How often every rule is published again.
pub const REPUBLISH_MS: u64 = 60_000;
/// How long a deleted rule's tombstone keeps being published.
const TOMBSTONE_MS: u64 = 24 * 3600 * 1000;
/// Largest message (well inside the brokers' packet limits).
const MAX_MESSAGE: usize = 60_000;

/// The rules this oracle published, sealed, and when it last published them all.
pub struct RulesPublisher {
    identity: Identity,
    published: BTreeMap<Key, Vec<u8>>,
    entries: BTreeMap<Key, Entry>,
    last_stamp: Stamp,
    last_full_ms: Option<u64>,
}

impl RulesPublisher {
    /// A publisher sealing as `identity`, that has published nothing yet.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            published: BTreeMap::new(),
            entries: BTreeMap::new(),
            last_stamp: Stamp::default(),
            last_full_ms: None,
        }
    }

    fn stamp(&mut self, now_ms: u64) -> Stamp {
        self.last_stamp = if now_ms > self.last_stamp.wall_ms {
            Stamp {
                wall_ms: now_ms,
                logical: 0,
            }
        } else {
            Stamp {
                wall_ms: self.last_stamp.wall_ms,
                logical: self.last_stamp.logical.saturating_add(1),
            }
        };
        self.last_stamp
    }

    /// The messages to publish at `now_ms` for the rules `desired`: the changed entries, or
    /// every entry when a full publication is due. Empty when nothing is due.
    pub fn due(
        &mut self,
        desired: &BTreeMap<Key, Vec<u8>>,
        now_ms: u64,
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut fresh = Vec::new();
        for (key, value) in changes(desired, &self.published) {
            let stamp = self.stamp(now_ms);
            let entry = Entry::unsealed(key, value, None, stamp, self.identity.address())
                .map_err(|e| e.to_string())?;
            fresh.push(entry);
        }
        if !fresh.is_empty() {
            let digests: Vec<_> = fresh.iter().map(Entry::digest).collect();
            let seals = seal_batch(&digests, &self.identity)?;
            fresh = fresh
                .into_iter()
                .zip(seals)
                .map(|(entry, seal)| entry.with_seal(seal))
                .collect();
            for entry in &fresh {
                self.entries.insert(entry.key.clone(), entry.clone());
            }
            self.published = desired.clone();
        }
        self.entries
            .retain(|_, e| e.value.is_some() || e.stamp.wall_ms + TOMBSTONE_MS > now_ms);
        let full = self
            .last_full_ms
            .is_none_or(|last| now_ms >= last + REPUBLISH_MS);
        if full {
            self.last_full_ms = Some(now_ms);
            let all: Vec<Entry> = self.entries.values().cloned().collect();
            return Ok(delta::encode(&all, MAX_MESSAGE));
        }
        Ok(delta::encode(&fresh, MAX_MESSAGE))
    }
}

#[cfg(test)]
mod tests {
    use r1_cstore::access::job_key;

    use super::*;

    fn entries(messages: &[Vec<u8>]) -> Vec<Entry> {
        messages
            .iter()
            .flat_map(|m| delta::decode(m).unwrap().entries)
            .collect()
    }

    #[test]
    fn changes_go_out_at_once_sealed_and_everything_again_when_due() {
        let oracle = Identity::generate();
        let mut publisher = RulesPublisher::new(oracle.clone());
        let mut desired = BTreeMap::from([(job_key(1), b"p.a.x".to_vec())]);
        let first = entries(&publisher.due(&desired, 1_000).unwrap());
        assert_eq!(first.len(), 1);
        first[0].verify().unwrap();
        assert_eq!(first[0].writer, oracle.address());
        assert!(
            publisher.due(&desired, 2_000).unwrap().is_empty(),
            "nothing changed"
        );

        desired.remove(&job_key(1));
        desired.insert(job_key(2), b"p.a.y".to_vec());
        let second = entries(&publisher.due(&desired, 3_000).unwrap());
        assert_eq!(second.len(), 2);
        let deleted = second.iter().find(|e| e.key == job_key(1)).unwrap();
        assert_eq!(deleted.value, None, "a dropped rule is deleted");
        assert!(deleted.stamp > first[0].stamp);

        let full = entries(&publisher.due(&desired, 1_000 + REPUBLISH_MS).unwrap());
        assert_eq!(full.len(), 2, "the rule and the tombstone, again");
    }
}
