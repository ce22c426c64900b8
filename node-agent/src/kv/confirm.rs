//! Confirmed writes (Redis's `WAIT`) over the peer-to-peer layer: the node asks each connected
//! peer whether it holds a connection's latest writes (their keys and versions, over the
//! `cstore-confirm` protocol) until enough peers say yes or the time is up. A peer that lacks
//! some answers no and pulls from the asker at once, so the next question usually gets a yes;
//! fresh writes normally reach it by gossip within milliseconds anyway.
//!
//! A question (big-endian, every length checked before anything is allocated):
//!
//! ```text
//! 0x01 | u16 count | count × (u8 ns_len ns | u16 key_len key | 0|1 [u16 field_len field]
//!                             | u64 wall_ms | u32 logical | writer (20))
//! ```
//!
//! The answer is one byte: 1 when every write asked about is held (that version or newer).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use r1_cstore::engine::Written;
use r1_cstore::replicas::{Confirming, Replicas};
use r1_cstore::{Key, Stamp};
use r1_p2p::Client;
use r1_protocol::Address;
use tokio::task::JoinSet;

/// The request-response protocol of the questions.
pub const PROTOCOL: &str = "cstore-confirm";

const FORMAT: u8 = 1;
/// Largest question; more writes are asked about in several.
const MAX_QUESTION: usize = 256 << 10;
/// How long a peer that said no is left before it is asked again.
const ASK_AGAIN: Duration = Duration::from_millis(20);

/// Encodes questions about `writes`, each at most [`MAX_QUESTION`] bytes.
pub fn questions(writes: &[Written]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current = vec![FORMAT, 0, 0];
    let mut count: u16 = 0;
    for write in writes {
        let mut item = Vec::with_capacity(64 + write.key.key.len());
        let key = &write.key;
        // Lengths are bounded by `Key::new`: a namespace of at most 128 bytes, keys and
        // fields of at most 4096.
        item.push(key.namespace.len() as u8);
        item.extend_from_slice(key.namespace.as_bytes());
        item.extend_from_slice(&(key.key.len() as u16).to_be_bytes());
        item.extend_from_slice(&key.key);
        match &key.field {
            Some(field) => {
                item.push(1);
                item.extend_from_slice(&(field.len() as u16).to_be_bytes());
                item.extend_from_slice(field);
            }
            None => item.push(0),
        }
        let (stamp, writer) = write.version;
        item.extend_from_slice(&stamp.wall_ms.to_be_bytes());
        item.extend_from_slice(&stamp.logical.to_be_bytes());
        item.extend_from_slice(writer.as_slice());
        if current.len() + item.len() > MAX_QUESTION || count == u16::MAX {
            current[1..3].copy_from_slice(&count.to_be_bytes());
            out.push(std::mem::replace(&mut current, vec![FORMAT, 0, 0]));
            count = 0;
        }
        current.extend_from_slice(&item);
        count += 1;
    }
    if count > 0 {
        current[1..3].copy_from_slice(&count.to_be_bytes());
        out.push(current);
    }
    out
}

/// Reads a question; `None` when it is malformed.
pub fn read_question(bytes: &[u8]) -> Option<Vec<Written>> {
    let mut r = Reader(bytes);
    if r.take(1)? != [FORMAT] {
        return None;
    }
    let count = usize::from(r.u16()?);
    let mut writes = Vec::with_capacity(count.min(bytes.len() / 40));
    for _ in 0..count {
        let ns_len = usize::from(r.take(1)?[0]);
        let namespace = std::str::from_utf8(r.take(ns_len)?).ok()?.to_owned();
        let key_len = usize::from(r.u16()?);
        let key = r.take(key_len)?.to_vec();
        let field = match r.take(1)? {
            [0] => None,
            [1] => {
                let len = usize::from(r.u16()?);
                Some(r.take(len)?.to_vec())
            }
            _ => return None,
        };
        let wall_ms = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
        let logical = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        let writer = Address::from_slice(r.take(20)?);
        writes.push(Written {
            key: Key::new(&namespace, key, field).ok()?,
            version: (Stamp { wall_ms, logical }, writer),
        });
    }
    r.0.is_empty().then_some(writes)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
}

/// Asks the connected peers, for the Redis server's `WAIT`.
#[derive(Clone)]
pub struct Confirmer {
    client: Client,
}

impl Confirmer {
    /// Asks over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Whether `peer` holds everything `questions` ask about, asking again after a no until
    /// the caller stops waiting.
    async fn peer_holds(client: Client, peer: Address, questions: Arc<Vec<Vec<u8>>>) {
        let mut next = 0;
        while next < questions.len() {
            match client
                .request(peer, PROTOCOL, questions[next].clone())
                .await
            {
                Ok(answer) if answer == [1] => next += 1,
                _ => tokio::time::sleep(ASK_AGAIN).await,
            }
        }
    }
}

impl Replicas for Confirmer {
    fn confirm(&self, writes: Vec<Written>, wanted: usize, timeout: Duration) -> Confirming<'_> {
        // `WAIT 0 …` asks for no replica: it answers at once with those that hold them already.
        let timeout = if wanted == 0 { Duration::ZERO } else { timeout };
        Box::pin(async move {
            let held = Arc::new(AtomicUsize::new(0));
            let peers = self.client.connected_peers().await.unwrap_or_default();
            let questions = Arc::new(questions(&writes));
            let mut asks = JoinSet::new();
            for peer in peers {
                let (client, questions) = (self.client.clone(), questions.clone());
                asks.spawn(Self::peer_holds(client, peer, questions));
            }
            let counted = held.clone();
            let counting = async move {
                while let Some(done) = asks.join_next().await {
                    if done.is_ok() && counted.fetch_add(1, Ordering::Relaxed) + 1 >= wanted {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(timeout, counting).await;
            held.load(Ordering::Relaxed)
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn written(i: u32) -> Written {
        Written {
            key: Key::new(
                "p.a.b",
                format!("key-{i}").into_bytes(),
                (i % 2 == 0).then(|| b"f".to_vec()),
            )
            .unwrap(),
            version: (
                Stamp {
                    wall_ms: u64::from(i) * 7,
                    logical: i,
                },
                Address::repeat_byte(i as u8),
            ),
        }
    }

    #[test]
    fn questions_round_trip_and_split_when_large() {
        let few: Vec<Written> = (0..5).map(written).collect();
        let asked = questions(&few);
        assert_eq!(asked.len(), 1);
        assert_eq!(read_question(&asked[0]).unwrap(), few);
        let many: Vec<Written> = (0..20_000).map(written).collect();
        let asked = questions(&many);
        assert!(asked.len() > 1 && asked.iter().all(|q| q.len() <= MAX_QUESTION));
        let back: Vec<Written> = asked
            .iter()
            .flat_map(|q| read_question(q).unwrap())
            .collect();
        assert_eq!(back, many);
    }

    #[test]
    fn cut_or_padded_questions_are_refused() {
        let asked = questions(&[written(1), written(2)]).remove(0);
        for cut in 0..asked.len() {
            assert!(read_question(&asked[..cut]).is_none(), "cut at {cut}");
        }
        let mut padded = asked;
        padded.push(0);
        assert!(read_question(&padded).is_none());
    }

    proptest! {
        #[test]
        fn no_bytes_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = read_question(&bytes);
        }
    }
}
