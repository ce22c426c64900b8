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
//!
//! For anti-entropy, a replica keeps each entry's digest and answers, for any key range, how
//! many entries it holds there and their [`Fingerprint`]: two replicas holding the same writes
//! in a range (whatever their seals) have the same fingerprint there, and (barring a SHA-256
//! collision) only those.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map;
use std::ops::Bound;

use alloy_primitives::Address;
use sha2::{Digest, Sha256};

use crate::clock::Stamp;
use crate::entry::{Entry, Key};
use crate::seal::Seal;

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
    entries: BTreeMap<Key, Held>,
}

/// An entry and its digest, computed once so that fingerprints never rehash. A local write
/// is held without it until it is sealed (the sealer hashes it anyway, beside the write path,
/// and a key written again before then is hashed once); a fingerprint over such a write
/// hashes it on the spot. The digest is a function of the entry, so comparing `Held`s
/// compares entries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    entry: Entry,
    digest: Option<[u8; 32]>,
}

/// What a replica holds in a key range, in 24 bytes: how many entries, and a hash of them all.
///
/// The hash is SHA-256 of (the sum modulo 2^256 of the entries' digests, read as big-endian
/// numbers || the count as a big-endian u64), truncated to 16 bytes. The digests are summed
/// rather than XORed: XOR is linear, so a writer who can make entries (any node) could pick,
/// by Gaussian elimination over a few hundred of its own entries, a subset whose digests XOR
/// to any value and make two different ranges look equal; a modular sum has no such shortcut
/// (this is the fingerprint of range-based set reconciliation, as in Negentropy). Summing
/// makes the fingerprint independent of order, and the final hash hides the sum's structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// How many entries (tombstones included) the range holds.
    pub count: u64,
    /// The hash of their digests' sum and of the count.
    pub hash: [u8; 16],
}

/// A sum of digests modulo 2^256, as four u64 limbs, least significant first.
#[derive(Default)]
struct DigestSum([u64; 4]);

impl DigestSum {
    /// Adds a digest read as a big-endian 256-bit number, dropping the final carry.
    fn add(&mut self, digest: &[u8; 32]) {
        let mut carry = false;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let end = 32 - 8 * i;
            let mut word = [0u8; 8];
            word.copy_from_slice(&digest[end - 8..end]);
            let (sum, over) = limb.overflowing_add(u64::from_be_bytes(word));
            let (sum, over_carry) = sum.overflowing_add(u64::from(carry));
            *limb = sum;
            carry = over || over_carry;
        }
    }

    /// The sum as 32 big-endian bytes.
    fn to_be_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            let end = 32 - 8 * i;
            out[end - 8..end].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// The fingerprint of `count` entries summing to this.
    fn fingerprint(&self, count: u64) -> Fingerprint {
        let mut hasher = Sha256::new();
        hasher.update(self.to_be_bytes());
        hasher.update(count.to_be_bytes());
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&hasher.finalize()[..16]);
        Fingerprint { count, hash }
    }
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
        if self.is_stale(&entry) {
            return Applied::Stale;
        }
        let digest = Some(entry.digest());
        self.insert(entry, digest)
    }

    /// As [`apply`](Self::apply) for a local write, not hashed until it is sealed (see
    /// [`Replica::attach_seal`]).
    pub fn apply_local(&mut self, entry: Entry) -> Applied {
        self.insert(entry, None)
    }

    fn is_stale(&self, entry: &Entry) -> bool {
        self.entries
            .get(&entry.key)
            .is_some_and(|held| !wins(entry, &held.entry))
    }

    /// Puts `entry` in unless what is held wins over it; a held key is kept rather than cloned
    /// again (a key written often is found once and its entry replaced in place).
    fn insert(&mut self, entry: Entry, digest: Option<[u8; 32]>) -> Applied {
        match self.entries.get_mut(&entry.key) {
            Some(held) if !wins(&entry, &held.entry) => Applied::Stale,
            Some(held) => {
                *held = Held { entry, digest };
                Applied::New
            }
            None => {
                self.entries
                    .insert(entry.key.clone(), Held { entry, digest });
                Applied::New
            }
        }
    }

    /// Seals the entry held at `key` in place when it is still `version` and unsealed, and
    /// keeps its `digest` (which leaves the seal out, so sealing does not change it); whether
    /// it did.
    pub fn attach_seal(
        &mut self,
        key: &Key,
        version: (Stamp, Address),
        seal: Seal,
        digest: [u8; 32],
    ) -> bool {
        match self.entries.get_mut(key) {
            Some(held) if !held.entry.is_sealed() && held.entry.version() == version => {
                held.entry.set_seal(seal);
                held.digest = Some(digest);
                true
            }
            _ => false,
        }
    }

    /// Merges every entry of `other` in.
    pub fn merge(&mut self, other: &Replica) {
        for entry in other.entries() {
            self.apply(entry.clone());
        }
    }

    /// The entry held for `key`, tombstone or not.
    pub fn entry(&self, key: &Key) -> Option<&Entry> {
        self.entries.get(key).map(|held| &held.entry)
    }

    /// The value at `key` at `now_ms`, unless deleted or expired.
    pub fn get(&self, key: &Key, now_ms: u64) -> Option<&[u8]> {
        self.entry(key)
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
            .filter(|(_, held)| held.entry.is_live(now_ms))
            .filter_map(|(k, held)| Some((k.field.as_deref()?, held.entry.value.as_deref()?)))
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
            .map(|(_, held)| &held.entry)
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().map(|held| &held.entry)
    }

    /// The entries with keys in `[lo, hi)`, in key order: `None` for `lo` is from the first
    /// key, for `hi` to the last. Anti-entropy sends these; a range with `hi` before `lo` is
    /// empty.
    pub fn range<'a>(
        &'a self,
        lo: Option<&Key>,
        hi: Option<&Key>,
    ) -> impl Iterator<Item = &'a Entry> + use<'a> {
        self.held(lo, hi).map(|(_, held)| &held.entry)
    }

    /// How many entries `[lo, hi)` holds and their fingerprint (bounds as for
    /// [`Replica::range`]), summed from the stored digests: O(entries in the range).
    pub fn fingerprint(&self, lo: Option<&Key>, hi: Option<&Key>) -> Fingerprint {
        let mut sum = DigestSum::default();
        let mut count = 0u64;
        for (_, held) in self.held(lo, hi) {
            sum.add(&held.digest.unwrap_or_else(|| held.entry.digest()));
            count += 1;
        }
        sum.fingerprint(count)
    }

    /// The held entries of `[lo, hi)`; empty, rather than a panic, when `hi < lo`.
    fn held(&self, lo: Option<&Key>, hi: Option<&Key>) -> btree_map::Range<'_, Key, Held> {
        let start = lo.map_or(Bound::Unbounded, Bound::Included);
        let end = match (lo, hi) {
            (Some(lo), Some(hi)) if hi < lo => Bound::Excluded(lo),
            (_, Some(hi)) => Bound::Excluded(hi),
            (_, None) => Bound::Unbounded,
        };
        self.entries.range::<Key, _>((start, end))
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
            .retain(|_, held| held.entry.value.is_some() || held.entry.stamp.wall_ms >= horizon_ms);
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

    #[allow(clippy::unwrap_used)] // test fixtures
    fn key(name: &str) -> Key {
        Key::new("app", name.as_bytes().to_vec(), None).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn replicas_with_the_same_entries_have_the_same_fingerprints(
            writes in proptest::collection::vec(write(), 0..16),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..32),
        ) {
            let shuffled: Vec<Entry> = order
                .iter()
                .filter(|_| !writes.is_empty())
                .map(|i| writes[i.index(writes.len())].clone())
                .chain(writes.iter().rev().cloned())
                .collect();
            let (a, b) = (replica_of(&writes), replica_of(&shuffled));
            prop_assert_eq!(a.fingerprint(None, None), b.fingerprint(None, None));
            prop_assert_eq!(a.fingerprint(None, None).count, a.len() as u64);
        }
    }

    #[test]
    fn a_fingerprint_changes_with_any_entry_and_counts_its_range() {
        let mut replica = Replica::new();
        let empty = replica.fingerprint(None, None);
        assert_eq!(empty.count, 0);
        for name in ["a", "b", "c"] {
            replica.apply(at(0, &key(name), Some(b"v"), 1));
        }
        let all = replica.fingerprint(None, None);
        assert_eq!(all.count, 3);
        assert_ne!(all, empty);

        let (a, b, c) = (key("a"), key("b"), key("c"));
        assert_eq!(
            replica.fingerprint(Some(&b), None).count,
            2,
            "lo is inclusive"
        );
        assert_eq!(
            replica.fingerprint(None, Some(&b)).count,
            1,
            "hi is exclusive"
        );
        assert_eq!(replica.fingerprint(Some(&b), Some(&c)).count, 1);
        assert_eq!(replica.fingerprint(Some(&b), Some(&b)), empty);
        assert_eq!(
            replica.fingerprint(Some(&c), Some(&a)),
            empty,
            "hi before lo"
        );
        assert_eq!(replica.range(Some(&c), Some(&a)).count(), 0);
        let keys: Vec<&Key> = replica.range(Some(&b), None).map(|e| &e.key).collect();
        assert_eq!(keys, vec![&b, &c]);

        let mut newer = replica.clone();
        newer.apply(at(1, &b, Some(b"v"), 2));
        assert_ne!(
            newer.fingerprint(None, None),
            all,
            "a newer version changes it"
        );
        assert_eq!(newer.fingerprint(None, None).count, 3);
        assert_eq!(
            newer.fingerprint(None, Some(&b)),
            replica.fingerprint(None, Some(&b))
        );
    }

    #[test]
    fn digests_sum_modulo_2_256_with_carries() {
        let mut sum = DigestSum::default();
        sum.add(&[0xff; 32]);
        let mut one = [0u8; 32];
        one[31] = 1;
        sum.add(&one);
        assert_eq!(
            sum.to_be_bytes(),
            [0u8; 32],
            "all ones plus one wraps to zero"
        );
        let mut low = [0u8; 32];
        low[24..].copy_from_slice(&[0xff; 8]);
        sum.add(&low);
        sum.add(&one);
        let mut carried = [0u8; 32];
        carried[23] = 1;
        assert_eq!(sum.to_be_bytes(), carried, "a carry crosses limbs");
    }
}
