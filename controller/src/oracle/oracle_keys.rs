//! The public keys of the oracles, learned from the signatures of their messages (every
//! [`OraclePresence`](r1_protocol::messages::OraclePresence) each oracle publishes every
//! [`PRESENCE_INTERVAL_MS`], and any other message they sign), so the Deeploy API can list them
//! for `r1ctl secret seal`. Only keys of verified messages from oracles the chain lists are
//! learned, and only those the chain lists now are served.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};

use alloy_primitives::Address;
use r1_crds::api::wire::OracleKey;
use r1_protocol::sealed::PUBLIC_KEY_LEN;

/// How often an oracle tells the others it is there.
pub const PRESENCE_INTERVAL_MS: u64 = 30_000;

/// Known oracle keys, with the chain's current oracle set.
#[derive(Debug)]
pub struct OracleKeyBook {
    inner: Mutex<Book>,
}

#[derive(Debug)]
struct Book {
    keys: BTreeMap<Address, [u8; PUBLIC_KEY_LEN]>,
    oracles: HashSet<Address>,
    last_presence_ms: Option<u64>,
}

impl OracleKeyBook {
    /// A book that knows this oracle (`me` with key `key`) only.
    pub fn new(me: Address, key: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self {
            inner: Mutex::new(Book {
                keys: BTreeMap::from([(me, key)]),
                oracles: HashSet::from([me]),
                last_presence_ms: None,
            }),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `key` for `oracle`, recovered from a message that passed verification; true
    /// when the oracle was not known yet, so this one answers with a presence of its own at
    /// once (see [`OracleKeyBook::presence_due`]) and a newcomer learns every key in seconds.
    pub fn learn(&self, oracle: Address, key: [u8; PUBLIC_KEY_LEN]) -> bool {
        let mut book = self.book();
        let new = book.keys.insert(oracle, key).is_none();
        if new {
            book.last_presence_ms = None;
        }
        new
    }

    /// The oracles the chain lists now.
    pub fn set_oracles(&self, oracles: HashSet<Address>) {
        self.book().oracles = oracles;
    }

    /// The keys of the listed oracles, ordered by address.
    pub fn listed(&self) -> Vec<OracleKey> {
        let book = self.book();
        book.keys
            .iter()
            .filter(|(address, _)| book.oracles.contains(*address))
            .map(|(address, key)| OracleKey {
                address: *address,
                public_key: r1_protocol::hex::encode(key),
            })
            .collect()
    }

    /// Whether a presence message is due at `now_ms`; when it is, the time is recorded.
    pub fn presence_due(&self, now_ms: u64) -> bool {
        let mut book = self.book();
        let due = book
            .last_presence_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= PRESENCE_INTERVAL_MS);
        if due {
            book.last_presence_ms = Some(now_ms);
        }
        due
    }
}

impl crate::intake::http::OracleKeySource for OracleKeyBook {
    fn oracle_keys(&self) -> Vec<OracleKey> {
        self.listed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_the_oracles_the_chain_lists_now() {
        let me = Address::repeat_byte(1);
        let other = Address::repeat_byte(2);
        let book = OracleKeyBook::new(me, [2; PUBLIC_KEY_LEN]);
        assert!(book.learn(other, [3; PUBLIC_KEY_LEN]));
        assert!(!book.learn(other, [3; PUBLIC_KEY_LEN]));
        assert_eq!(book.listed().len(), 1, "not listed on chain yet");
        book.set_oracles(HashSet::from([me, other]));
        let listed = book.listed();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].address, other);
        assert_eq!(listed[1].public_key, format!("0x{}", "03".repeat(33)));
        book.set_oracles(HashSet::from([other]));
        assert_eq!(book.listed().len(), 1, "removed from the chain");
    }

    #[test]
    fn presence_is_due_at_start_then_every_interval() {
        let book = OracleKeyBook::new(Address::ZERO, [2; PUBLIC_KEY_LEN]);
        assert!(book.presence_due(1_000));
        assert!(!book.presence_due(1_000 + PRESENCE_INTERVAL_MS - 1));
        assert!(book.presence_due(1_000 + PRESENCE_INTERVAL_MS));
        book.learn(Address::repeat_byte(7), [2; PUBLIC_KEY_LEN]);
        assert!(
            book.presence_due(1_000 + PRESENCE_INTERVAL_MS + 1),
            "a newcomer is answered at once"
        );
    }
}
