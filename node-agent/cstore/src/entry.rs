//! One CSTORE entry: a key of a namespace (or a field of a hash), its value or a tombstone, an
//! optional expiry, the writer's hybrid-clock stamp, and the writer's [`Seal`] over all of it.
//! The seal travels with the entry through every replica, so a node that relays an entry
//! (gossip, anti-entropy) cannot alter it or write in another node's name. A fresh local write
//! is unsealed until its writer seals the batch it belongs to (see [`crate::seal`]); only
//! sealed entries leave the node.
//!
//! Byte form (big-endian; every length checked against the limits before anything is
//! allocated):
//!
//! ```text
//! 0x01 | u8 ns_len ns | u16 key_len key | 0|1 [u16 field_len field] | 0|1 [u32 value_len value]
//!      | 0|1 [u64 expires_ms] | u64 wall_ms | u32 logical | writer (20)
//!      | 0 | 1 u8 proof_len proof (32 each) signature (65)
//! ```
//!
//! Everything before the seal is the entry's body; its SHA-256 is the entry's digest, the leaf
//! of the batch tree the writer signs.

use alloy_primitives::Address;
use r1_protocol::Identity;
use thiserror::Error;

use crate::clock::Stamp;
use crate::seal::{self, Hash, MAX_PROOF, Seal, Verifier};

/// Longest namespace name, bytes.
pub const MAX_NAMESPACE: usize = 128;
/// Longest key or hash field, bytes.
pub const MAX_KEY: usize = 4096;
/// Largest value, bytes.
pub const MAX_VALUE: usize = 1 << 20;

const FORMAT: u8 = 1;

/// Why an entry was not made or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryError {
    /// The namespace is empty, too long, or not made of `a-z 0-9 . _ - :`.
    #[error("namespace {0:?}: 1 to {MAX_NAMESPACE} characters of a-z, 0-9, '.', '_', '-', ':'")]
    Namespace(String),
    /// A key or field over [`MAX_KEY`] bytes.
    #[error("a key or field of {0} bytes; at most {MAX_KEY} are stored")]
    KeyTooLong(usize),
    /// A value over [`MAX_VALUE`] bytes.
    #[error("a value of {0} bytes; at most {MAX_VALUE} are stored")]
    ValueTooLarge(usize),
    /// The bytes are not an entry.
    #[error("malformed entry")]
    Malformed,
    /// The entry is not sealed yet (only its writer holds such an entry).
    #[error("entry not sealed by its writer")]
    Unsealed,
    /// The seal does not recover to the writer the entry names.
    #[error("entry signed by {signer:?}, not by its writer {writer}")]
    Forged {
        /// The writer named.
        writer: Address,
        /// Who signed, when a key recovers at all.
        signer: Option<Address>,
    },
    /// Signing failed.
    #[error("signing: {0}")]
    Signing(String),
}

/// Where an entry lives: a key of a namespace, or one field of the hash stored at a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The namespace (a project's, or a system one).
    pub namespace: String,
    /// The key.
    pub key: Vec<u8>,
    /// The field, for an entry of a hash.
    pub field: Option<Vec<u8>>,
}

impl Key {
    /// A key, its namespace and lengths checked.
    pub fn new(
        namespace: &str,
        key: impl Into<Vec<u8>>,
        field: Option<Vec<u8>>,
    ) -> Result<Self, EntryError> {
        let key = Self {
            namespace: namespace.to_owned(),
            key: key.into(),
            field,
        };
        key.check()?;
        Ok(key)
    }

    fn check(&self) -> Result<(), EntryError> {
        let name_ok = !self.namespace.is_empty()
            && self.namespace.len() <= MAX_NAMESPACE
            && self
                .namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_:".contains(&b));
        if !name_ok {
            return Err(EntryError::Namespace(
                self.namespace.chars().take(MAX_NAMESPACE + 1).collect(),
            ));
        }
        for part in std::iter::once(&self.key).chain(self.field.as_ref()) {
            if part.len() > MAX_KEY {
                return Err(EntryError::KeyTooLong(part.len()));
            }
        }
        Ok(())
    }
}

/// A write, sealed by its writer or about to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it goes.
    pub key: Key,
    /// The value; `None` is a tombstone (the key or field was deleted).
    pub value: Option<Vec<u8>>,
    /// When the value expires (ms since the Unix epoch), if it does.
    pub expires_ms: Option<u64>,
    /// The writer's hybrid-clock stamp.
    pub stamp: Stamp,
    /// The node that wrote it.
    pub writer: Address,
    seal: Option<Seal>,
}

impl Entry {
    /// Writes `value` (or, with `None`, deletes) at `key` as `writer`, stamped `stamp`; to be
    /// sealed by the writer before it leaves the node.
    pub fn unsealed(
        key: Key,
        value: Option<Vec<u8>>,
        expires_ms: Option<u64>,
        stamp: Stamp,
        writer: Address,
    ) -> Result<Self, EntryError> {
        key.check()?;
        if let Some(value) = &value
            && value.len() > MAX_VALUE
        {
            return Err(EntryError::ValueTooLarge(value.len()));
        }
        Ok(Self {
            key,
            value,
            expires_ms,
            stamp,
            writer,
            seal: None,
        })
    }

    /// Writes and seals at once (a batch of one), as `identity`.
    pub fn signed(
        key: Key,
        value: Option<Vec<u8>>,
        expires_ms: Option<u64>,
        stamp: Stamp,
        identity: &Identity,
    ) -> Result<Self, EntryError> {
        let entry = Self::unsealed(key, value, expires_ms, stamp, identity.address())?;
        let mut seals =
            seal::seal_batch(&[entry.digest()], identity).map_err(EntryError::Signing)?;
        Ok(entry.with_seal(seals.pop().ok_or(EntryError::Malformed)?))
    }

    /// The entry under `seal` (made by [`seal::seal_batch`] over its digest).
    pub fn with_seal(self, seal: Seal) -> Self {
        Self {
            seal: Some(seal),
            ..self
        }
    }

    /// Seals the entry in place (see [`Entry::with_seal`]).
    pub(crate) fn set_seal(&mut self, seal: Seal) {
        self.seal = Some(seal);
    }

    /// The writer's seal, once sealed.
    pub fn seal(&self) -> Option<&Seal> {
        self.seal.as_ref()
    }

    /// Whether the writer sealed it.
    pub fn is_sealed(&self) -> bool {
        self.seal.is_some()
    }

    /// Checks that the entry's writer sealed exactly these contents.
    pub fn verify(&self) -> Result<(), EntryError> {
        self.verify_with(&mut Verifier::new())
    }

    /// As [`verify`](Self::verify), with recoveries shared through `verifier` (one per batch).
    pub fn verify_with(&self, verifier: &mut Verifier) -> Result<(), EntryError> {
        let seal = self.seal.as_ref().ok_or(EntryError::Unsealed)?;
        let signer = verifier.signer(&self.digest(), seal);
        if signer == Some(self.writer) {
            Ok(())
        } else {
            Err(EntryError::Forged {
                writer: self.writer,
                signer,
            })
        }
    }

    /// The entry's version: the later one wins a merge.
    pub fn version(&self) -> (Stamp, Address) {
        (self.stamp, self.writer)
    }

    /// Whether the entry holds a value at `now_ms` (not deleted, not expired).
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.value.is_some() && self.expires_ms.is_none_or(|at| at > now_ms)
    }

    /// The SHA-256 of the entry's contents (everything its writer signs): equal for copies of
    /// one write on every replica, different for any other write. Anti-entropy sums these.
    pub fn digest(&self) -> Hash {
        use sha2::Digest;
        let mut body = Vec::with_capacity(128 + self.value.as_ref().map_or(0, Vec::len));
        self.write_body(&mut body);
        sha2::Sha256::digest(&body).into()
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        out.push(FORMAT);
        // Lengths are bounded by `Key::check` and `MAX_VALUE` before an entry exists.
        out.push(self.key.namespace.len() as u8);
        out.extend_from_slice(self.key.namespace.as_bytes());
        out.extend_from_slice(&(self.key.key.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.key.key);
        match &self.key.field {
            Some(field) => {
                out.push(1);
                out.extend_from_slice(&(field.len() as u16).to_be_bytes());
                out.extend_from_slice(field);
            }
            None => out.push(0),
        }
        match &self.value {
            Some(value) => {
                out.push(1);
                out.extend_from_slice(&(value.len() as u32).to_be_bytes());
                out.extend_from_slice(value);
            }
            None => out.push(0),
        }
        match self.expires_ms {
            Some(at) => {
                out.push(1);
                out.extend_from_slice(&at.to_be_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.stamp.wall_ms.to_be_bytes());
        out.extend_from_slice(&self.stamp.logical.to_be_bytes());
        out.extend_from_slice(self.writer.as_slice());
    }

    /// The entry's bytes, seal included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let proof_len = self.seal.as_ref().map_or(0, |s| s.proof.len());
        let mut out =
            Vec::with_capacity(160 + 32 * proof_len + self.value.as_ref().map_or(0, Vec::len));
        self.write_bytes(&mut out);
        out
    }

    /// Appends the entry's bytes to `out` (the write path reuses one buffer for every entry).
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        self.write_body(out);
        self.write_seal(out);
    }

    fn write_seal(&self, out: &mut Vec<u8>) {
        match &self.seal {
            Some(seal) => {
                out.push(1);
                // Proofs are at most MAX_PROOF long: `seal::tree` over a batch of < 2^32.
                out.push(seal.proof.len() as u8);
                for hash in &seal.proof {
                    out.extend_from_slice(hash);
                }
                out.extend_from_slice(&seal.signature);
            }
            None => out.push(0),
        }
    }

    /// Reads an entry's bytes (its seal is not checked: see [`Entry::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EntryError> {
        let mut r = Reader(bytes);
        if r.take(1)? != [FORMAT] {
            return Err(EntryError::Malformed);
        }
        let ns_len = usize::from(r.take(1)?[0]);
        let namespace =
            String::from_utf8(r.take(ns_len)?.to_vec()).map_err(|_| EntryError::Malformed)?;
        let key_len = usize::from(r.u16()?);
        let key = r.take(key_len)?.to_vec();
        let field = if r.flag()? {
            let len = usize::from(r.u16()?);
            Some(r.take(len)?.to_vec())
        } else {
            None
        };
        let value = if r.flag()? {
            let len = usize::try_from(r.u32()?).map_err(|_| EntryError::Malformed)?;
            if len > MAX_VALUE {
                return Err(EntryError::ValueTooLarge(len));
            }
            Some(r.take(len)?.to_vec())
        } else {
            None
        };
        let expires_ms = if r.flag()? { Some(r.u64()?) } else { None };
        let stamp = Stamp {
            wall_ms: r.u64()?,
            logical: r.u32()?,
        };
        let writer = Address::from_slice(r.take(20)?);
        let seal = if r.flag()? {
            let len = usize::from(r.take(1)?[0]);
            if len > MAX_PROOF {
                return Err(EntryError::Malformed);
            }
            let mut proof = Vec::with_capacity(len);
            for _ in 0..len {
                proof.push(r.array()?);
            }
            Some(Seal {
                proof,
                signature: r.array()?,
            })
        } else {
            None
        };
        if !r.0.is_empty() {
            return Err(EntryError::Malformed);
        }
        let key = Key {
            namespace,
            key,
            field,
        };
        key.check()?;
        Ok(Self {
            key,
            value,
            expires_ms,
            stamp,
            writer,
            seal,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        if n > self.0.len() {
            return Err(EntryError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn flag(&mut self) -> Result<bool, EntryError> {
        match self.take(1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(EntryError::Malformed),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EntryError> {
        self.take(N)?.try_into().map_err(|_| EntryError::Malformed)
    }

    fn u16(&mut self) -> Result<u16, EntryError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, EntryError> {
        let mut out = [0u8; 4];
        out.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(out))
    }

    fn u64(&mut self) -> Result<u64, EntryError> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(out))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn stamp(wall_ms: u64) -> Stamp {
        Stamp {
            wall_ms,
            logical: 0,
        }
    }

    #[test]
    fn an_entry_round_trips_and_verifies() {
        let node = Identity::generate();
        for (field, value, expires) in [
            (None, Some(b"v".to_vec()), None),
            (Some(b"f".to_vec()), None, Some(99)),
            (Some(Vec::new()), Some(Vec::new()), None),
        ] {
            let key = Key::new("app.orders", b"k".to_vec(), field).unwrap();
            let entry = Entry::signed(key, value, expires, stamp(5), &node).unwrap();
            let back = Entry::from_bytes(&entry.to_bytes()).unwrap();
            assert_eq!(back, entry);
            back.verify().unwrap();
        }
    }

    #[test]
    fn an_altered_or_misattributed_entry_is_forged() {
        let node = Identity::generate();
        let key = Key::new("app", b"k".to_vec(), None).unwrap();
        let entry = Entry::signed(key, Some(b"10".to_vec()), None, stamp(5), &node).unwrap();
        let mut altered = entry.clone();
        altered.value = Some(b"99".to_vec());
        assert!(matches!(altered.verify(), Err(EntryError::Forged { .. })));
        let mut renamed = entry.clone();
        renamed.writer = Identity::generate().address();
        assert!(matches!(renamed.verify(), Err(EntryError::Forged { .. })));
        let mut restamped = entry;
        restamped.stamp = stamp(6);
        assert!(restamped.verify().is_err());
    }

    #[test]
    fn an_unsealed_entry_round_trips_but_does_not_verify_until_sealed() {
        let node = Identity::generate();
        let entries: Vec<Entry> = (0..3u8)
            .map(|i| {
                let key = Key::new("app", vec![i], None).unwrap();
                Entry::unsealed(key, Some(vec![i]), None, stamp(5), node.address()).unwrap()
            })
            .collect();
        let back = Entry::from_bytes(&entries[0].to_bytes()).unwrap();
        assert_eq!(back, entries[0]);
        assert_eq!(back.verify(), Err(EntryError::Unsealed));
        let digests: Vec<_> = entries.iter().map(Entry::digest).collect();
        let seals = seal::seal_batch(&digests, &node).unwrap();
        let sealed: Vec<Entry> = entries
            .into_iter()
            .zip(seals)
            .map(|(e, s)| e.with_seal(s))
            .collect();
        let mut verifier = Verifier::new();
        for entry in &sealed {
            let back = Entry::from_bytes(&entry.to_bytes()).unwrap();
            assert_eq!(&back, entry);
            back.verify_with(&mut verifier).unwrap();
        }
        let mut swapped = sealed[0].clone();
        swapped.seal = sealed[1].seal.clone();
        assert!(matches!(swapped.verify(), Err(EntryError::Forged { .. })));
    }

    #[test]
    fn bad_names_and_sizes_are_refused() {
        assert!(matches!(
            Key::new("", b"k".to_vec(), None),
            Err(EntryError::Namespace(_))
        ));
        assert!(matches!(
            Key::new("Upper", b"k".to_vec(), None),
            Err(EntryError::Namespace(_))
        ));
        assert!(matches!(
            Key::new("a/b", b"k".to_vec(), None),
            Err(EntryError::Namespace(_))
        ));
        assert!(matches!(
            Key::new("app", vec![0; MAX_KEY + 1], None),
            Err(EntryError::KeyTooLong(_))
        ));
        let key = Key::new("app", b"k".to_vec(), None).unwrap();
        assert!(matches!(
            Entry::signed(
                key,
                Some(vec![0; MAX_VALUE + 1]),
                None,
                stamp(1),
                &Identity::generate()
            ),
            Err(EntryError::ValueTooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn no_bytes_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Entry::from_bytes(&bytes);
        }

        #[test]
        fn a_cut_entry_never_decodes(cut in 0usize..100) {
            let key = Key::new("app", b"key".to_vec(), Some(b"field".to_vec())).unwrap();
            let entry = Entry::signed(key, Some(b"value".to_vec()), Some(7), stamp(3), &Identity::generate()).unwrap();
            let bytes = entry.to_bytes();
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(Entry::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
