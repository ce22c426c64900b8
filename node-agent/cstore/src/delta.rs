//! The broadcast form of fresh writes: a writer's newly sealed entries, packed into messages
//! no larger than a limit (nodes gossip their writes in it; oracles publish their access rules
//! in it over MQTT). An entry too large for any message is left out; its message carries the
//! `pull` flag instead, and the peers pull from the writer at once.
//!
//! ```text
//! 0x01 | u8 flags (bit 0: pull from me) | u16 count | count × (u32 len | entry bytes)
//! ```

use thiserror::Error;

use crate::entry::{Entry, EntryError};

const FORMAT: u8 = 1;
const HEADER: usize = 4;
const PULL: u8 = 1;

/// Why a gossip message is not a delta.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeltaError {
    /// The bytes are cut, carry an unknown format or flag, or have bytes left over.
    #[error("malformed CSTORE delta")]
    Malformed,
    /// An entry inside does not decode.
    #[error("CSTORE delta entry: {0}")]
    Entry(#[from] EntryError),
}

/// A received delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The entries (their seals still to check).
    pub entries: Vec<Entry>,
    /// The publisher has writes too large to gossip: pull from it.
    pub pull: bool,
}

/// Packs `entries` into messages of at most `max_bytes` each, in order.
pub fn encode(entries: &[Entry], max_bytes: usize) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current = header(0);
    let mut count: u16 = 0;
    let mut pull = false;
    for entry in entries {
        let bytes = entry.to_bytes();
        let size = 4 + bytes.len();
        if HEADER + size > max_bytes {
            pull = true;
            continue;
        }
        if current.len() + size > max_bytes || count == u16::MAX {
            messages.push(finish(current, count, 0));
            current = header(0);
            count = 0;
        }
        current.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        current.extend_from_slice(&bytes);
        count += 1;
    }
    if count > 0 || pull {
        messages.push(finish(current, count, if pull { PULL } else { 0 }));
    }
    messages
}

fn header(flags: u8) -> Vec<u8> {
    vec![FORMAT, flags, 0, 0]
}

fn finish(mut message: Vec<u8>, count: u16, flags: u8) -> Vec<u8> {
    message[1] = flags;
    message[2..4].copy_from_slice(&count.to_be_bytes());
    message
}

/// Reads a delta message (bounded by its own length: counts and lengths are checked against
/// the bytes that are there before anything is allocated).
pub fn decode(bytes: &[u8]) -> Result<Delta, DeltaError> {
    let (head, mut rest) = bytes
        .split_at_checked(HEADER)
        .ok_or(DeltaError::Malformed)?;
    if head[0] != FORMAT || head[1] & !PULL != 0 {
        return Err(DeltaError::Malformed);
    }
    let count = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if count * 4 > rest.len() {
        return Err(DeltaError::Malformed);
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, tail) = rest.split_at_checked(4).ok_or(DeltaError::Malformed)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (entry, tail) = tail.split_at_checked(len).ok_or(DeltaError::Malformed)?;
        entries.push(Entry::from_bytes(entry)?);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(DeltaError::Malformed);
    }
    Ok(Delta {
        entries,
        pull: head[1] & PULL != 0,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use r1_protocol::Identity;

    use crate::clock::Stamp;
    use crate::entry::Key;

    use super::*;

    fn entries(sizes: &[usize]) -> Vec<Entry> {
        let node = Identity::generate();
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let key = Key::new("app", format!("k{i}").into_bytes(), None).unwrap();
                let stamp = Stamp {
                    wall_ms: 1,
                    logical: i as u32,
                };
                Entry::signed(key, Some(vec![7; size]), None, stamp, &node).unwrap()
            })
            .collect()
    }

    #[test]
    fn entries_are_packed_under_the_limit_and_read_back_in_order() {
        let sent = entries(&[10, 3_000, 3_000, 3_000, 10]);
        let messages = encode(&sent, 8_000);
        assert_eq!(messages.len(), 2);
        assert!(messages.iter().all(|m| m.len() <= 8_000));
        let received: Vec<Entry> = messages
            .iter()
            .flat_map(|m| decode(m).unwrap().entries)
            .collect();
        assert_eq!(received, sent);
        assert!(messages.iter().all(|m| !decode(m).unwrap().pull));
    }

    #[test]
    fn an_entry_too_large_to_gossip_asks_peers_to_pull() {
        let sent = entries(&[10, 20_000]);
        let messages = encode(&sent, 8_000);
        assert_eq!(messages.len(), 1);
        let delta = decode(&messages[0]).unwrap();
        assert!(delta.pull);
        assert_eq!(delta.entries, sent[..1]);
    }

    #[test]
    fn cut_or_padded_messages_are_refused() {
        let message = encode(&entries(&[10, 10]), 8_000).remove(0);
        for cut in 0..message.len() {
            assert!(decode(&message[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = message;
        padded.push(0);
        assert_eq!(decode(&padded), Err(DeltaError::Malformed));
    }

    proptest! {
        #[test]
        fn no_bytes_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
