//! The byte form of requests and answers: big-endian, every count and length checked against
//! the limits and against the bytes left before anything is allocated, trailing bytes refused,
//! keys checked as [`Key::new`] checks them and entries read by [`Entry::from_bytes`].
//!
//! ```text
//! request: 0x01 | u32 n | n × range
//! answer:  0x01 | u32 n | n × (u32 len | entry) | u32 m | m × range | u32 p | p × (bound bound)
//! range:   bound lo | bound hi | u64 count | fingerprint (16)
//! bound:   0 (the start, or the end) | 1 u8 ns_len ns | u16 key_len key | 0|1 [u16 len field]
//! ```

use super::{Answer, AntiEntropyError, KeyRange, Limits, RangeSummary, Request, ordered};
use crate::entry::{Entry, EntryError, Key, MAX_KEY, MAX_NAMESPACE};
use crate::replica::Fingerprint;

/// The format version, the first byte of every message.
pub(super) const FORMAT: u8 = 1;
/// The version and a list's count.
pub(super) const HEADER_BYTES: usize = 1 + 4;
/// A range's count and fingerprint.
const SUMMARY_BYTES: usize = 8 + 16;
/// A bound with the longest key and field.
const MAX_BOUND_BYTES: usize = 1 + 1 + MAX_NAMESPACE + 2 + MAX_KEY + 1 + 2 + MAX_KEY;
/// A range with the longest bounds.
pub(super) const MAX_RANGE_BYTES: usize = 2 * MAX_BOUND_BYTES + SUMMARY_BYTES;
/// Two open bounds, the shortest range.
const MIN_KEY_RANGE_BYTES: usize = 2;
/// A range with open bounds and its summary, the shortest.
const MIN_RANGE_BYTES: usize = MIN_KEY_RANGE_BYTES + SUMMARY_BYTES;
/// An entry's length prefix, the least an entry takes.
const MIN_ENTRY_BYTES: usize = 4;

impl Request {
    /// The request's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        put_ranges(&mut out, &self.ranges);
        out
    }

    /// Reads a request, refusing one over `limits`, malformed, or with its ranges empty,
    /// overlapping or out of order (so that answering it reads each entry at most once).
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, AntiEntropyError> {
        let max = limits.max_request_bytes();
        if bytes.len() > max {
            return Err(AntiEntropyError::OverLimit {
                what: "request bytes",
                got: bytes.len(),
                max,
            });
        }
        let mut reader = Reader::open(bytes)?;
        let ranges = reader.ranges(limits.max_ranges())?;
        reader.finish()?;
        if !ordered(ranges.iter().map(|summary| &summary.range)) {
            return Err(AntiEntropyError::Unordered);
        }
        Ok(Self { ranges })
    }
}

impl Answer {
    /// The answer's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        put_len(&mut out, self.entries.len());
        for entry in &self.entries {
            let bytes = entry.to_bytes();
            put_len(&mut out, bytes.len());
            out.extend_from_slice(&bytes);
        }
        put_ranges(&mut out, &self.ranges);
        put_len(&mut out, self.pending.len());
        for range in &self.pending {
            put_range(&mut out, range);
        }
        out
    }

    /// Reads an answer, refusing one over `limits` (more entries than a leaf per range, more
    /// entry bytes than `max_answer_bytes` unless a single entry, more ranges than
    /// `max_ranges`), malformed, or with ranges out of order. Signatures are not checked here.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, AntiEntropyError> {
        let mut reader = Reader::open(bytes)?;
        let entries = reader.entries(limits)?;
        let ranges = reader.ranges(limits.max_ranges())?;
        let pending = reader.key_ranges(limits.max_ranges())?;
        reader.finish()?;
        let count = ranges.len() + pending.len();
        if count > limits.max_ranges() {
            return Err(AntiEntropyError::OverLimit {
                what: "answer ranges",
                got: count,
                max: limits.max_ranges(),
            });
        }
        if !ordered(ranges.iter().map(|summary| &summary.range).chain(&pending)) {
            return Err(AntiEntropyError::Unordered);
        }
        Ok(Self {
            entries,
            ranges,
            pending,
        })
    }
}

/// Counts and lengths are bounded by the limits, far below 2^32.
fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

fn put_ranges(out: &mut Vec<u8>, ranges: &[RangeSummary]) {
    put_len(out, ranges.len());
    for summary in ranges {
        put_range(out, &summary.range);
        out.extend_from_slice(&summary.fingerprint.count.to_be_bytes());
        out.extend_from_slice(&summary.fingerprint.hash);
    }
}

fn put_range(out: &mut Vec<u8>, range: &KeyRange) {
    put_bound(out, range.lo.as_ref());
    put_bound(out, range.hi.as_ref());
}

/// Bounds are keys of stored or decoded entries, so their lengths were checked by `Key::new`
/// or `Entry::from_bytes` and fit their prefixes.
fn put_bound(out: &mut Vec<u8>, key: Option<&Key>) {
    let Some(key) = key else {
        out.push(0);
        return;
    };
    out.push(1);
    out.push(key.namespace.len() as u8);
    out.extend_from_slice(key.namespace.as_bytes());
    out.extend_from_slice(&(key.key.len() as u16).to_be_bytes());
    out.extend_from_slice(&key.key);
    match &key.field {
        Some(field) => {
            out.push(1);
            out.extend_from_slice(&(field.len() as u16).to_be_bytes());
            out.extend_from_slice(field);
        }
        None => out.push(0),
    }
}

/// The bytes not yet read.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Reads the format version.
    fn open(bytes: &'a [u8]) -> Result<Self, AntiEntropyError> {
        let mut reader = Self(bytes);
        match reader.u8()? {
            FORMAT => Ok(reader),
            other => Err(AntiEntropyError::Version(other)),
        }
    }

    fn finish(self) -> Result<(), AntiEntropyError> {
        match self.0.len() {
            0 => Ok(()),
            left => Err(AntiEntropyError::Trailing(left)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AntiEntropyError> {
        if n > self.0.len() {
            return Err(AntiEntropyError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, AntiEntropyError> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool, AntiEntropyError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(AntiEntropyError::Flag(other)),
        }
    }

    fn u16(&mut self) -> Result<usize, AntiEntropyError> {
        let mut out = [0u8; 2];
        out.copy_from_slice(self.take(2)?);
        Ok(usize::from(u16::from_be_bytes(out)))
    }

    fn u32(&mut self) -> Result<usize, AntiEntropyError> {
        let mut out = [0u8; 4];
        out.copy_from_slice(self.take(4)?);
        Ok(usize::try_from(u32::from_be_bytes(out)).unwrap_or(usize::MAX))
    }

    fn u64(&mut self) -> Result<u64, AntiEntropyError> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(out))
    }

    /// A list's count, at most `max` and no more than the bytes left can hold at `min_bytes`
    /// each, so that nothing is allocated for items the message does not carry.
    fn count(
        &mut self,
        what: &'static str,
        max: usize,
        min_bytes: usize,
    ) -> Result<usize, AntiEntropyError> {
        let got = self.u32()?;
        if got > max {
            return Err(AntiEntropyError::OverLimit { what, got, max });
        }
        if got.saturating_mul(min_bytes) > self.0.len() {
            return Err(AntiEntropyError::Truncated);
        }
        Ok(got)
    }

    fn entries(&mut self, limits: &Limits) -> Result<Vec<Entry>, AntiEntropyError> {
        let count = self.count("answer entries", limits.max_entries(), MIN_ENTRY_BYTES)?;
        let mut entries = Vec::with_capacity(count);
        let mut total = 0usize;
        for _ in 0..count {
            let len = self.u32()?;
            total = total.saturating_add(len);
            if count > 1 && total > limits.max_answer_bytes {
                return Err(AntiEntropyError::OverLimit {
                    what: "answer entry bytes",
                    got: total,
                    max: limits.max_answer_bytes,
                });
            }
            entries.push(Entry::from_bytes(self.take(len)?)?);
        }
        Ok(entries)
    }

    fn ranges(&mut self, max: usize) -> Result<Vec<RangeSummary>, AntiEntropyError> {
        let count = self.count("ranges", max, MIN_RANGE_BYTES)?;
        (0..count).map(|_| self.range_summary()).collect()
    }

    fn key_ranges(&mut self, max: usize) -> Result<Vec<KeyRange>, AntiEntropyError> {
        let count = self.count("pending ranges", max, MIN_KEY_RANGE_BYTES)?;
        (0..count).map(|_| self.key_range()).collect()
    }

    fn range_summary(&mut self) -> Result<RangeSummary, AntiEntropyError> {
        let range = self.key_range()?;
        let count = self.u64()?;
        let mut hash = [0u8; 16];
        hash.copy_from_slice(self.take(16)?);
        Ok(RangeSummary {
            range,
            fingerprint: Fingerprint { count, hash },
        })
    }

    fn key_range(&mut self) -> Result<KeyRange, AntiEntropyError> {
        Ok(KeyRange {
            lo: self.bound()?,
            hi: self.bound()?,
        })
    }

    fn bound(&mut self) -> Result<Option<Key>, AntiEntropyError> {
        if !self.flag()? {
            return Ok(None);
        }
        let namespace_len = usize::from(self.u8()?);
        let namespace = self.bounded("namespace bytes", namespace_len, MAX_NAMESPACE)?;
        let namespace = std::str::from_utf8(namespace).map_err(|_| EntryError::Malformed)?;
        let key_len = self.u16()?;
        let key = self.bounded("key bytes", key_len, MAX_KEY)?;
        let field = if self.flag()? {
            let len = self.u16()?;
            Some(self.bounded("field bytes", len, MAX_KEY)?.to_vec())
        } else {
            None
        };
        Ok(Some(Key::new(namespace, key.to_vec(), field)?))
    }

    /// `len` bytes, refused over `max`.
    fn bounded(
        &mut self,
        what: &'static str,
        len: usize,
        max: usize,
    ) -> Result<&'a [u8], AntiEntropyError> {
        if len > max {
            return Err(AntiEntropyError::OverLimit {
                what,
                got: len,
                max,
            });
        }
        self.take(len)
    }
}
