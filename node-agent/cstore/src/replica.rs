//! One node's copy of the store and the merge every replica runs: for each key (or hash field)
//! the entry with the highest version wins, a version being (stamp, writer); deletes are
//! tombstones that win like any write. Equal versions with different contents (only a writer
//! signing two entries with one stamp makes them) are settled by their bytes, so every replica
//! picks the same one.
//!
//! The merge is commutative, associative and idempotent (property-tested below), so replicas
//! that received the same entries, in any order and any number of times, are equal.
//!
//! Tombstones are collected once older than a horizon. A replica cut off for longer than the
//! horizon can still hold the value a collected tombstone deleted; when it reconnects, that
//! value spreads again (a delete is lost). The node agent's horizon is set well above any
//! partition it should ride out.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::entry::{Entry, Key};

/// What applying an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The entry is new here, or newer than what was held: it replaced it.
    New,
    /// The replica already held this entry or a newer one: nothing changed.
    Stale,
}

/// A replica's entries, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replica {
    entries: BTreeMap<Key, Entry>,
}

/// Whether `a` wins over `b` for the same key.
fn wins(a: &Entry, b: &Entry) -> bool {
    match a.version().cmp(&b.version()) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => a.to_bytes() > b.to_bytes(),
    }
}

impl Replica {
    /// An empty replica.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges one entry in (its signature is the caller's to check, before).
    pub fn apply(&mut self, entry: Entry) -> Applied {
        match self.entries.get(&entry.key) {
            Some(held) if !wins(&entry, held) => Applied::Stale,
            _ => {
                self.entries.insert(entry.key.clone(), entry);
                Applied::New
            }
        }
    }

    /// Merges every entry of `other` in.
    pub fn merge(&mut self, other: &Replica) {
        for entry in other.entries.values() {
            self.apply(entry.clone());
        }
    }

    /// The entry held for `key`, tombstone or not.
    pub fn entry(&self, key: &Key) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The value at `key` at `now_ms`, unless deleted or expired.
    pub fn get(&self, key: &Key, now_ms: u64) -> Option<&[u8]> {
        self.entries
            .get(key)
            .filter(|e| e.is_live(now_ms))
            .and_then(|e| e.value.as_deref())
    }

    /// The live fields of the hash at (`namespace`, `key`), by field.
    pub fn hash(&self, namespace: &str, key: &[u8], now_ms: u64) -> Vec<(&[u8], &[u8])> {
        let from = Key {
            namespace: namespace.to_owned(),
            key: key.to_vec(),
            field: Some(Vec::new()),
        };
        self.entries
            .range(from..)
            .take_while(|(k, _)| k.namespace == namespace && k.key == key)
            .filter(|(_, e)| e.is_live(now_ms))
            .filter_map(|(k, e)| Some((k.field.as_deref()?, e.value.as_deref()?)))
            .collect()
    }

    /// The entries of one namespace, in key order.
    pub fn namespace<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        let from = Key {
            namespace: namespace.to_owned(),
            key: Vec::new(),
            field: None,
        };
        let name = namespace.to_owned();
        self.entries
            .range(from..)
            .take_while(move |(k, _)| k.namespace == name)
            .map(|(_, e)| e)
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// How many entries (tombstones included) are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops the tombstones stamped before `horizon_ms`; returns how many.
    pub fn collect_tombstones(&mut self, horizon_ms: u64) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| e.value.is_some() || e.stamp.wall_ms >= horizon_ms);
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use r1_protocol::Identity;

    use super::*;
    use crate::clock::Stamp;

    static NODES: LazyLock<Vec<Identity>> =
        LazyLock::new(|| (0..3).map(|_| Identity::generate()).collect());

    /// A write by one of three nodes to one of a few keys and fields, at a small stamp, so
    /// conflicts and equal stamps are common.
    fn write() -> impl Strategy<Value = Entry> {
        (
            0usize..3,
            0u8..3,
            prop::option::of(0u8..2),
            prop::option::of(0u8..4),
            0u64..6,
            0u32..2,
        )
            .prop_map(|(node, key, field, value, wall_ms, logical)| {
                let key = Key::new("app", vec![b'k', key], field.map(|f| vec![b'f', f])).unwrap();
                Entry::signed(
                    key,
                    value.map(|v| vec![v]),
                    None,
                    Stamp { wall_ms, logical },
                    &NODES[node],
                )
                .unwrap()
            })
    }

    fn replica_of(entries: &[Entry]) -> Replica {
        let mut replica = Replica::new();
        for e in entries {
            replica.apply(e.clone());
        }
        replica
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn merging_is_commutative(a in proptest::collection::vec(write(), 0..12),
                                  b in proptest::collection::vec(write(), 0..12)) {
            let (ra, rb) = (replica_of(&a), replica_of(&b));
            let mut ab = ra.clone();
            ab.merge(&rb);
            let mut ba = rb;
            ba.merge(&ra);
            prop_assert_eq!(ab, ba);
        }

        #[test]
        fn merging_is_associative(a in proptest::collection::vec(write(), 0..8),
                                  b in proptest::collection::vec(write(), 0..8),
                                  c in proptest::collection::vec(write(), 0..8)) {
            let (ra, rb, rc) = (replica_of(&a), replica_of(&b), replica_of(&c));
            let mut left = ra.clone();
            left.merge(&rb);
            left.merge(&rc);
            let mut right = rb;
            right.merge(&rc);
            let mut a_right = ra;
            a_right.merge(&right);
            prop_assert_eq!(left, a_right);
        }

        #[test]
        fn merging_is_idempotent(a in proptest::collection::vec(write(), 0..12)) {
            let ra = replica_of(&a);
            let mut twice = ra.clone();
            twice.merge(&ra);
            prop_assert_eq!(twice, ra);
        }

        #[test]
        fn any_order_and_duplication_of_the_same_writes_converges(
            writes in proptest::collection::vec(write(), 1..16),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 1..48),
        ) {
            let delivered: Vec<Entry> = order
                .iter()
                .map(|i| writes[i.index(writes.len())].clone())
                .chain(writes.iter().cloned())
                .collect();
            let mut expected = replica_of(&writes);
            let reordered = replica_of(&delivered);
            prop_assert_eq!(&reordered, &expected);
            expected.merge(&reordered);
            prop_assert_eq!(reordered, expected);
        }
    }

    fn at(node: usize, key: &Key, value: Option<&[u8]>, wall_ms: u64) -> Entry {
        Entry::signed(
            key.clone(),
            value.map(<[u8]>::to_vec),
            None,
            Stamp {
                wall_ms,
                logical: 0,
            },
            &NODES[node],
        )
        .unwrap()
    }

    #[test]
    fn the_latest_write_wins_and_a_delete_is_a_write() {
        let key = Key::new("app", b"k".to_vec(), None).unwrap();
        let mut replica = Replica::new();
        assert_eq!(replica.apply(at(0, &key, Some(b"a"), 5)), Applied::New);
        assert_eq!(replica.apply(at(1, &key, Some(b"old"), 4)), Applied::Stale);
        assert_eq!(replica.get(&key, 0), Some(&b"a"[..]));
        assert_eq!(replica.apply(at(1, &key, None, 6)), Applied::New);
        assert_eq!(replica.get(&key, 0), None);
        assert_eq!(replica.apply(at(0, &key, Some(b"late"), 5)), Applied::Stale);
        assert_eq!(
            replica.get(&key, 0),
            None,
            "the delete holds against an older write"
        );
    }

    #[test]
    fn hashes_list_their_live_fields_and_expired_values_vanish() {
        let mut replica = Replica::new();
        for (field, value) in [(b"a", Some(&b"1"[..])), (b"b", Some(b"2")), (b"c", None)] {
            let key = Key::new("app", b"h".to_vec(), Some(field.to_vec())).unwrap();
            replica.apply(at(0, &key, value, 1));
        }
        let other = Key::new("app", b"h2".to_vec(), Some(b"a".to_vec())).unwrap();
        replica.apply(at(0, &other, Some(b"x"), 1));
        let fields = replica.hash("app", b"h", 0);
        assert_eq!(fields, vec![(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])]);

        let key = Key::new("app", b"ttl".to_vec(), None).unwrap();
        let expiring = Entry::signed(
            key.clone(),
            Some(b"v".to_vec()),
            Some(100),
            Stamp {
                wall_ms: 2,
                logical: 0,
            },
            &NODES[0],
        )
        .unwrap();
        replica.apply(expiring);
        assert_eq!(replica.get(&key, 99), Some(&b"v"[..]));
        assert_eq!(replica.get(&key, 100), None);
    }

    #[test]
    fn tombstones_older_than_the_horizon_are_collected() {
        let mut replica = Replica::new();
        let old = Key::new("app", b"old".to_vec(), None).unwrap();
        let new = Key::new("app", b"new".to_vec(), None).unwrap();
        let kept = Key::new("app", b"kept".to_vec(), None).unwrap();
        replica.apply(at(0, &old, None, 10));
        replica.apply(at(0, &new, None, 50));
        replica.apply(at(0, &kept, Some(b"v"), 10));
        assert_eq!(replica.collect_tombstones(20), 1);
        assert!(replica.entry(&old).is_none());
        assert!(replica.entry(&new).is_some() && replica.entry(&kept).is_some());
    }
}
