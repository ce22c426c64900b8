//! Anti-entropy: a node pulls from a peer exactly the entries it lacks or holds older, found by
//! comparing fingerprints of key ranges (range-based set reconciliation) rather than by trading
//! full dumps. Gossip carries each write once; this repairs what gossip missed (a node that was
//! down, a message lost) and is how a new node fills its replica.
//!
//! The asker sends the fingerprint of everything it holds. The answerer, which keeps no state
//! between rounds, compares each asked range with its own: an equal range is done; a range where
//! it holds at most `leaf` entries is answered with those entries whole; a larger one is split,
//! at its own keys, into `split` sub-ranges holding about as many of its entries each, sent with
//! its fingerprints. The asker merges the entries and asks again for the sub-ranges whose
//! fingerprints differ from its own (5 000 entries, 3 of them differing, default limits):
//!
//! ```text
//! asker                                           answerer
//!   open: [start, end) fp, n=5000       ─────▶
//!                                       ◀─────  16 sub-ranges (~313 entries), its fp and n
//!   the 3 that differ, with mine        ─────▶
//!                                       ◀─────  48 sub-ranges (~20 entries)
//!   the 3 that differ                   ─────▶
//!                                       ◀─────  their ~60 entries, whole
//!   merge them; nothing differs: done
//! ```
//!
//! An answer is bounded (`max_ranges` ranges, `max_answer_bytes` of entries). What does not fit
//! comes back as ranges still to do, which the asker asks again; every answer does part of
//! the work (an entry, a split or an equal range), so a pull ends. Entries carry their writers'
//! seals: the asker verifies them before merging, and those it holds newer are simply stale
//! there. A pull brings the asker what the answerer has, not the other way round: each
//! side pulls in turn.
//!
//! Cost: about log_split(n / leaf) rounds for n entries, and each answer costs O(entries in the
//! asked ranges), since a replica sums a range's stored digests on demand. A tree augmented with
//! the sum under each node would make a fingerprint O(log n); that is the known trade-off, left
//! for replicas large enough to need it.

mod codec;
#[cfg(test)]
mod tests;

use std::ops::ControlFlow;

use thiserror::Error;

use crate::entry::{Entry, EntryError, Key};
use crate::replica::{Fingerprint, Replica};

/// The bounds an exchange is held to; the defaults suit replicas of millions of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A range where the answerer holds at most this many entries is answered with them whole
    /// rather than split (taken as at least 1).
    pub leaf: usize,
    /// How many sub-ranges a larger range is split into (taken as at least 2).
    pub split: usize,
    /// Most ranges in a request, and in an answer counting its ranges still to do (taken as at
    /// least 3, so that an answer can always split a range and hand back the rest).
    pub max_ranges: usize,
    /// Most bytes of entries in an answer; an answer's first entry travels even if larger, but
    /// then alone.
    pub max_answer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            leaf: 32,
            split: 16,
            max_ranges: 256,
            max_answer_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// The largest request these limits let through (every range with the longest keys), so
    /// a transport can refuse longer ones unread.
    pub fn max_request_bytes(&self) -> usize {
        codec::MAX_RANGE_BYTES
            .saturating_mul(self.max_ranges())
            .saturating_add(codec::HEADER_BYTES)
    }

    fn leaf(&self) -> usize {
        self.leaf.max(1)
    }

    fn split(&self) -> usize {
        self.split.max(2)
    }

    fn max_ranges(&self) -> usize {
        self.max_ranges.max(3)
    }

    /// Most entries an honest answer holds: a leaf's worth for each range asked.
    fn max_entries(&self) -> usize {
        self.max_ranges().saturating_mul(self.leaf())
    }
}

/// A key range `[lo, hi)`: `lo` inclusive, `hi` exclusive, `None` the start or the end of the
/// key order; the default is every key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRange {
    /// The first key in the range, or `None` from the start.
    pub lo: Option<Key>,
    /// The first key past the range, or `None` to the end.
    pub hi: Option<Key>,
}

impl KeyRange {
    /// The bounds as [`Replica::range`] and [`Replica::fingerprint`] take them.
    pub fn bounds(&self) -> (Option<&Key>, Option<&Key>) {
        (self.lo.as_ref(), self.hi.as_ref())
    }
}

/// A range and what one side holds in it; compared to learn whether the two sides differ there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSummary {
    /// The range.
    pub range: KeyRange,
    /// The count and fingerprint of the sender's entries in it.
    pub fingerprint: Fingerprint,
}

/// The asker's ranges, in key order, with what it holds in each: "send what differs here".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The ranges asked, in increasing key order, not overlapping.
    pub ranges: Vec<RangeSummary>,
}

/// The answerer's reply to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Every entry the answerer holds in the small ranges that differed, for the asker to merge.
    pub entries: Vec<Entry>,
    /// The sub-ranges the larger differing ranges were split into, with the answerer's
    /// fingerprints, in key order.
    pub ranges: Vec<RangeSummary>,
    /// What the answer did not reach (it was full), in key order, for the asker to ask again;
    /// when more ranges were left than the answer had room for, its last one spans the rest.
    pub pending: Vec<KeyRange>,
}

/// Why a request or an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AntiEntropyError {
    /// The message's format version is not one this node reads.
    #[error("anti-entropy format {0}; this node reads format {format}", format = codec::FORMAT)]
    Version(u8),
    /// The message ends early, or a length runs past its end.
    #[error("truncated anti-entropy message")]
    Truncated,
    /// Bytes follow the end of the message.
    #[error("{0} bytes after the end of an anti-entropy message")]
    Trailing(usize),
    /// A count or a size over the limits.
    #[error("{what}: {got}, over the limit of {max}")]
    OverLimit {
        /// What was counted.
        what: &'static str,
        /// How many or how large.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A flag byte that is neither 0 nor 1.
    #[error("flag byte {0}, not 0 or 1")]
    Flag(u8),
    /// An empty range, or ranges out of key order or overlapping.
    #[error("anti-entropy ranges empty, out of order or overlapping")]
    Unordered,
    /// A bound's key or an entry is not valid.
    #[error(transparent)]
    Entry(#[from] EntryError),
}

/// The first request of a pull: everything the asker holds, as one range.
pub fn open(replica: &Replica) -> Request {
    Request {
        ranges: vec![summarize(replica, &KeyRange::default())],
    }
}

/// The answerer's side, stateless: for each asked range, nothing if the fingerprints agree,
/// its (sealed) entries whole if the answerer holds at most `leaf` there, else its split.
/// Stops when the answer is full and hands back the rest of the request as
/// [`Answer::pending`]. Costs O(entries in the asked ranges); [`Request::decode`] ensures the
/// ranges do not overlap.
pub fn answer(replica: &Replica, request: &Request, limits: &Limits) -> Answer {
    let mut builder = Builder {
        limits,
        replica,
        answer: Answer::default(),
        entry_bytes: 0,
    };
    for (i, asked) in request.ranges.iter().enumerate() {
        if let ControlFlow::Break(lo) = builder.range(asked) {
            let rest = KeyRange {
                lo,
                hi: asked.range.hi.clone(),
            };
            let later = request.ranges[i + 1..].iter().map(|s| s.range.clone());
            builder.pend(std::iter::once(rest).chain(later).collect());
            break;
        }
    }
    builder.answer
}

/// The asker's side of an answer: the entries to verify and merge, and the next request (the
/// answerer's sub-ranges whose fingerprints differ from the asker's, then the pending ranges,
/// each with the asker's fingerprint), or `None` when the pull is done. The next request does
/// not depend on merging the entries first: they lie outside every range it asks.
pub fn follow(replica: &Replica, answer: &Answer) -> (Vec<Entry>, Option<Request>) {
    let differing = answer.ranges.iter().filter_map(|theirs| {
        let mine = summarize(replica, &theirs.range);
        (mine.fingerprint != theirs.fingerprint).then_some(mine)
    });
    let pending = answer.pending.iter().map(|range| summarize(replica, range));
    let ranges: Vec<RangeSummary> = differing.chain(pending).collect();
    let next = (!ranges.is_empty()).then_some(Request { ranges });
    (answer.entries.clone(), next)
}

/// `range` with what `replica` holds in it.
fn summarize(replica: &Replica, range: &KeyRange) -> RangeSummary {
    let (lo, hi) = range.bounds();
    RangeSummary {
        range: range.clone(),
        fingerprint: replica.fingerprint(lo, hi),
    }
}

/// Whether `ranges` are each non-empty and in increasing key order without overlapping, as
/// honest requests and answers always are; an answerer then reads each entry at most once.
fn ordered<'a>(ranges: impl IntoIterator<Item = &'a KeyRange>) -> bool {
    let mut previous_hi: Option<Option<&Key>> = None;
    for range in ranges {
        if let (Some(lo), Some(hi)) = range.bounds()
            && lo >= hi
        {
            return false;
        }
        let follows = match (previous_hi, range.lo.as_ref()) {
            (None, _) => true,
            (Some(Some(before)), Some(lo)) => before <= lo,
            (Some(_), _) => false,
        };
        if !follows {
            return false;
        }
        previous_hi = Some(range.hi.as_ref());
    }
    true
}

/// An answer being filled, within the limits.
struct Builder<'a> {
    limits: &'a Limits,
    replica: &'a Replica,
    answer: Answer,
    entry_bytes: usize,
}

impl Builder<'_> {
    /// Answers one asked range; when full, breaks with where the range left to do starts.
    fn range(&mut self, asked: &RangeSummary) -> ControlFlow<Option<Key>> {
        let (lo, hi) = asked.range.bounds();
        let mine = self.replica.fingerprint(lo, hi);
        if mine == asked.fingerprint {
            ControlFlow::Continue(())
        } else if mine.count <= self.limits.leaf() as u64 {
            self.send(&asked.range)
        } else {
            self.split(&asked.range, mine.count)
        }
    }

    /// Adds the range's sealed entries while they fit; an answer's first entry always fits.
    /// Unsealed ones (a local write a few milliseconds old) never leave the node.
    fn send(&mut self, range: &KeyRange) -> ControlFlow<Option<Key>> {
        let (lo, hi) = range.bounds();
        for entry in self.replica.range(lo, hi).filter(|entry| entry.is_sealed()) {
            let size = entry.to_bytes().len();
            let total = self.entry_bytes.saturating_add(size);
            if !self.answer.entries.is_empty() && total > self.limits.max_answer_bytes {
                return ControlFlow::Break(Some(entry.key.clone()));
            }
            self.entry_bytes = total;
            self.answer.entries.push(entry.clone());
        }
        ControlFlow::Continue(())
    }

    /// Hands back the ranges not reached, as many as the answer has room for (the last one
    /// spanning the rest): a split always leaves room for one.
    fn pend(&mut self, mut rest: Vec<KeyRange>) {
        let room = self
            .limits
            .max_ranges()
            .saturating_sub(self.answer.ranges.len())
            .max(1);
        if rest.len() > room {
            let tail = rest.split_off(room - 1);
            if let [first, .., last] = tail.as_slice() {
                rest.push(KeyRange {
                    lo: first.lo.clone(),
                    hi: last.hi.clone(),
                });
            }
        }
        self.answer.pending = rest;
    }

    /// Splits a range holding `count` entries here into as many parts as fit (up to `split`,
    /// one range kept free for what is left), cut at every `count / parts`-th key.
    fn split(&mut self, range: &KeyRange, count: u64) -> ControlFlow<Option<Key>> {
        let room = self
            .limits
            .max_ranges()
            .saturating_sub(self.answer.ranges.len() + 1);
        let parts = self.limits.split().min(room);
        if parts < 2 {
            return ControlFlow::Break(range.lo.clone());
        }
        let chunk = usize::try_from(count.div_ceil(parts as u64)).unwrap_or(usize::MAX);
        let (lo, hi) = range.bounds();
        let cuts = self
            .replica
            .range(lo, hi)
            .map(|entry| Some(&entry.key))
            .skip(chunk)
            .step_by(chunk);
        let bounds: Vec<Option<&Key>> = std::iter::once(lo).chain(cuts).chain([hi]).collect();
        for pair in bounds.windows(2) {
            let sub = KeyRange {
                lo: pair[0].cloned(),
                hi: pair[1].cloned(),
            };
            let summary = summarize(self.replica, &sub);
            self.answer.ranges.push(summary);
        }
        ControlFlow::Continue(())
    }
}
