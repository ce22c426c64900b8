//! Optional encryption of R1FS file content.
//!
//! R1FS stores files as IPFS UnixFS DAGs whose blocks are replicated to, and
//! served by, other nodes. `r1ctl fs add --encrypt` lets the owner keep those
//! nodes from reading the content: the file is encrypted before it is chunked,
//! under a fresh AES-256-GCM [`Key`] per file, so the CID names the ciphertext
//! and the key travels separately, out of band. A node that stores or forwards
//! the blocks only ever sees ciphertext.
//!
//! Files can be many GiB, so both directions stream: [`Encryptor`] is a
//! [`Read`] adapter that can be fed straight into an importer, and
//! [`Decryptor`] is a [`Write`] adapter that takes fetched bytes in any pieces.
//! Each keeps two segment-sized buffers (about 128 KiB), whatever the file size.
//!
//! # Format
//!
//! A segmented ("STREAM") construction, as in age or Tink's streaming AEAD:
//!
//! ```text
//! +----------+--------------+-------------------+-------------------+-----+------------------+
//! | R1FSENC1 | nonce prefix | segment 0         | segment 1         | ... | final segment    |
//! | 8 bytes  | 7 bytes      | 65536 + 16 bytes  | 65536 + 16 bytes  |     | 0..=65536 + 16   |
//! +----------+--------------+-------------------+-------------------+-----+------------------+
//!  \________ header _______/
//!
//! segment i = AES-256-GCM(key, nonce_i, aad = header, plaintext[i * 65536 ..][.. 65536]) || tag
//! nonce_i   = nonce prefix (7 bytes) || i as u32 big-endian (4 bytes) || last (1 byte: 1 or 0)
//! ```
//!
//! The plaintext is cut into segments of 65 536 bytes; only the final one is
//! shorter, and it is empty only when the whole file is (an empty file is the
//! header plus a bare 16-byte tag). A plaintext whose length is an exact
//! multiple of the segment size ends with a full segment flagged as last.
//!
//! Binding the index and the last flag into each nonce, and the header into
//! each tag, makes reordering, truncation at a segment boundary, appending,
//! and splicing segments between files (which have different random prefixes)
//! fail authentication, not just flipped bits. The random prefix also keeps
//! nonces apart should a key ever be reused, though each file is meant to get
//! its own.

use std::io::{self, Read, Write};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{self, AeadInPlace, KeyInit};
use rand::TryRngCore;
use rand::rngs::OsRng;

/// Identifies the format (and its version) at the start of every ciphertext.
const MAGIC: &[u8; 8] = b"R1FSENC1";
/// Length of the random nonce prefix stored in the header.
const PREFIX_LEN: usize = 7;
/// Magic plus nonce prefix.
const HEADER_LEN: usize = MAGIC.len() + PREFIX_LEN;
/// Plaintext bytes per segment.
const SEGMENT: usize = 65_536;
/// Length of an AES-GCM authentication tag.
const TAG_LEN: usize = 16;
/// Length of a full sealed segment.
const SEALED: usize = SEGMENT + TAG_LEN;
/// Length of an AES-256 key.
const KEY_LEN: usize = 32;

/// Errors from key parsing, encryption and decryption.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// The text given as a key is not 64 lowercase hex characters.
    #[error("invalid encryption key: {0}")]
    BadKey(String),
    /// The ciphertext does not start with the `R1FSENC1` header.
    #[error("not an encrypted R1FS file: bad header")]
    BadHeader,
    /// The ciphertext ended before its final segment.
    #[error("encrypted file is truncated: it ends before its final segment")]
    Truncated,
    /// A segment failed authentication: wrong key, or altered ciphertext.
    #[error("encrypted file failed authentication: wrong key or altered data")]
    Tampered,
    /// More bytes followed the final segment.
    #[error("encrypted file has data after its final segment")]
    TrailingData,
    /// The stream needs more than 2^32 segments (256 TiB of plaintext).
    #[error("file exceeds the encryption format's limit of 2^32 segments (256 TiB)")]
    TooLarge,
    /// Reading the plaintext, writing the plaintext, or the OS random source failed.
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
}

impl CryptError {
    /// A copy of this error, for a [`Decryptor`] that must report it again.
    fn duplicate(&self) -> Self {
        match self {
            Self::BadKey(reason) => Self::BadKey(reason.clone()),
            Self::BadHeader => Self::BadHeader,
            Self::Truncated => Self::Truncated,
            Self::Tampered => Self::Tampered,
            Self::TrailingData => Self::TrailingData,
            Self::TooLarge => Self::TooLarge,
            Self::Io(err) => Self::Io(io::Error::new(err.kind(), err.to_string())),
        }
    }
}

/// Unwraps a `CryptError` that travelled inside an [`io::Error`] (as the
/// adapters' `Read`/`Write` impls return them), so `io::copy(..)` failures map
/// back to e.g. [`CryptError::Tampered`]; any other I/O error becomes
/// [`CryptError::Io`].
impl From<io::Error> for CryptError {
    fn from(err: io::Error) -> Self {
        if !err.get_ref().is_some_and(|inner| inner.is::<CryptError>()) {
            return Self::Io(err);
        }
        let kind = err.kind();
        match err.into_inner().map(|inner| inner.downcast::<CryptError>()) {
            Some(Ok(crypt)) => *crypt,
            Some(Err(other)) => Self::Io(io::Error::new(kind, other)),
            None => Self::Io(kind.into()),
        }
    }
}

/// Carries a `CryptError` through an [`io::Error`]: `Io` errors are passed on
/// unchanged, every other variant becomes kind [`io::ErrorKind::InvalidData`].
impl From<CryptError> for io::Error {
    fn from(err: CryptError) -> Self {
        match err {
            CryptError::Io(err) => err,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// A 256-bit AES-GCM key for one file. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A fresh random key from the operating system's random source.
    pub fn generate() -> Result<Self, CryptError> {
        let mut bytes = [0u8; KEY_LEN];
        fill_random(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The key as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(2 * KEY_LEN);
        for byte in self.0 {
            text.push(char::from(DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        text
    }

    /// Parses a key from exactly 64 lowercase hex characters, as
    /// [`Key::to_hex`] writes it; anything else is [`CryptError::BadKey`].
    pub fn from_hex(text: &str) -> Result<Self, CryptError> {
        if let Some(bad) = text.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(CryptError::BadKey(format!(
                "unexpected character {bad:?}; expected lowercase hex digits"
            )));
        }
        if text.len() != 2 * KEY_LEN {
            return Err(CryptError::BadKey(format!(
                "expected {} hex characters, got {}",
                2 * KEY_LEN,
                text.len()
            )));
        }
        let mut bytes = [0u8; KEY_LEN];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        Ok(Self(bytes))
    }

    /// The AES-256-GCM cipher for this key.
    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// The value of a digit already checked to be `0-9` or `a-f`.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'0',
    }
}

/// Fills `buf` from the operating system's random source.
fn fill_random(buf: &mut [u8]) -> Result<(), CryptError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|err| CryptError::Io(io::Error::other(err)))
}

/// The nonce of segment `index`, given the header's nonce prefix.
fn segment_nonce(prefix: &[u8], index: u32, last: bool) -> aead::Nonce<Aes256Gcm> {
    let mut nonce = [0u8; 12];
    nonce[..PREFIX_LEN].copy_from_slice(prefix);
    nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
    nonce[PREFIX_LEN + 4] = u8::from(last);
    nonce.into()
}

/// The index of segment number `count`, if the format can express it.
fn segment_index(count: u64) -> Result<u32, CryptError> {
    u32::try_from(count).map_err(|_| CryptError::TooLarge)
}

/// The ciphertext length of a plaintext of `plain` bytes: header, plaintext
/// and one tag per segment (saturating at `u64::MAX`).
pub fn encrypted_len(plain: u64) -> u64 {
    let segments = plain.div_ceil(SEGMENT as u64).max(1);
    (HEADER_LEN as u64)
        .saturating_add(plain)
        .saturating_add(segments.saturating_mul(TAG_LEN as u64))
}

/// Encrypts a plaintext stream: reading from it yields the header and then
/// the sealed segments, as the inner reader is read.
///
/// Short reads from the inner reader are fine; an inner error (including
/// [`io::ErrorKind::Interrupted`]) is returned as is and reading may be
/// retried. Encryption failures come out as an [`io::Error`] carrying a
/// [`CryptError`] (see `From<io::Error> for CryptError`).
pub struct Encryptor<R: Read> {
    inner: R,
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    /// Plaintext read ahead: up to one segment plus one byte, so that a full
    /// segment is known to be the last one only when the inner reader is done.
    plain: Box<[u8]>,
    plain_len: usize,
    /// Bytes not yet handed out: the header, then one sealed segment at a time.
    out: Vec<u8>,
    out_pos: usize,
    /// Number of segments sealed so far.
    sealed: u64,
    eof: bool,
    done: bool,
}

impl<R: Read> Encryptor<R> {
    /// Starts encrypting `reader` under `key`, with a fresh random nonce prefix.
    /// Fails only if the OS random source does.
    pub fn new(reader: R, key: &Key) -> Result<Self, CryptError> {
        let mut header = [0u8; HEADER_LEN];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        fill_random(&mut header[MAGIC.len()..])?;
        let mut out = Vec::with_capacity(SEALED);
        out.extend_from_slice(&header);
        Ok(Self {
            inner: reader,
            cipher: key.cipher(),
            header,
            plain: vec![0u8; SEGMENT + 1].into_boxed_slice(),
            plain_len: 0,
            out,
            out_pos: 0,
            sealed: 0,
            eof: false,
            done: false,
        })
    }

    /// Reads until one segment plus one byte is buffered or the inner reader
    /// is exhausted.
    fn fill_plain(&mut self) -> io::Result<()> {
        while !self.eof && self.plain_len < self.plain.len() {
            match self.inner.read(&mut self.plain[self.plain_len..])? {
                0 => self.eof = true,
                n => self.plain_len += n,
            }
        }
        Ok(())
    }

    /// Seals the next segment into `out`.
    fn seal_next(&mut self) -> Result<(), CryptError> {
        self.fill_plain()?;
        let index = segment_index(self.sealed)?;
        let last = self.plain_len <= SEGMENT;
        let take = self.plain_len.min(SEGMENT);
        self.out.clear();
        self.out.extend_from_slice(&self.plain[..take]);
        let nonce = segment_nonce(&self.header[MAGIC.len()..], index, last);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce, &self.header, &mut self.out)
            .map_err(|_| CryptError::Io(io::Error::other("AES-GCM refused to seal a segment")))?;
        self.out.extend_from_slice(&tag);
        self.out_pos = 0;
        self.sealed += 1;
        if last {
            self.done = true;
            self.plain_len = 0;
        } else {
            self.plain.copy_within(SEGMENT..self.plain_len, 0);
            self.plain_len -= SEGMENT;
        }
        Ok(())
    }
}

impl<R: Read> Read for Encryptor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.out_pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.seal_next()?;
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// Decrypts a ciphertext stream: bytes written to it in any pieces come out
/// of the inner writer as plaintext, one verified segment at a time.
///
/// No plaintext of a segment reaches the inner writer before its tag has
/// verified. Because a full-size segment may be the last one, and the final
/// segment is only known to be complete when the input ends, the final
/// segment is written by [`Decryptor::finish`], which must be called.
///
/// `write` fails, with an [`io::Error`] of kind
/// [`io::ErrorKind::InvalidData`] carrying the [`CryptError`], as soon as the
/// problem shows: [`CryptError::BadHeader`] on a wrong magic,
/// [`CryptError::Tampered`] on a full-size segment that fails authentication
/// (wrong key, altered, reordered or spliced), and
/// [`CryptError::TrailingData`] on bytes after a full-size final segment.
/// Inner writer errors are returned as they are. After any error the
/// decryptor refuses further writes and `finish` returns that error again.
///
/// [`Decryptor::finish`] reports what only the end of the input shows:
/// [`CryptError::Truncated`] when the input stops at a segment boundary
/// before the final segment (or inside the header, or before a whole tag),
/// and [`CryptError::Tampered`] when the remaining partial segment fails
/// authentication. That includes input cut off in the middle of a segment,
/// and bytes appended after a short final segment, which cannot be told
/// apart from an altered segment.
pub struct Decryptor<W: Write> {
    inner: W,
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Ciphertext of the current segment, up to one full sealed segment.
    sealed: Vec<u8>,
    /// Scratch space where a segment is decrypted before it is written.
    plain: Vec<u8>,
    /// Number of segments opened so far.
    opened: u64,
    finished: bool,
    failed: Option<CryptError>,
}

impl<W: Write> Decryptor<W> {
    /// Starts decrypting, under `key`, into `writer`.
    pub fn new(writer: W, key: &Key) -> Self {
        Self {
            inner: writer,
            cipher: key.cipher(),
            header: [0u8; HEADER_LEN],
            header_len: 0,
            sealed: Vec::with_capacity(SEALED),
            plain: Vec::with_capacity(SEGMENT),
            opened: 0,
            finished: false,
            failed: None,
        }
    }

    /// Checks that the final segment was seen, writes it, flushes the inner
    /// writer and returns it.
    pub fn finish(mut self) -> Result<W, CryptError> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        if !self.finished {
            if self.header_len < HEADER_LEN || self.sealed.len() < TAG_LEN {
                return Err(CryptError::Truncated);
            }
            if !self.open(true)? {
                return Err(CryptError::Tampered);
            }
            self.emit()?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// Takes in ciphertext, opening each segment as soon as it is full.
    fn absorb(&mut self, mut buf: &[u8]) -> Result<(), CryptError> {
        while !buf.is_empty() {
            if self.finished {
                return Err(CryptError::TrailingData);
            }
            if self.header_len < HEADER_LEN {
                let n = (HEADER_LEN - self.header_len).min(buf.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&buf[..n]);
                self.header_len += n;
                buf = &buf[n..];
                let seen = self.header_len.min(MAGIC.len());
                if self.header[..seen] != MAGIC[..seen] {
                    return Err(CryptError::BadHeader);
                }
                continue;
            }
            let n = (SEALED - self.sealed.len()).min(buf.len());
            self.sealed.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
            if self.sealed.len() == SEALED {
                if !self.open(false)? {
                    if !self.open(true)? {
                        return Err(CryptError::Tampered);
                    }
                    self.finished = true;
                }
                self.emit()?;
            }
        }
        Ok(())
    }

    /// Tries to authenticate and decrypt the buffered segment into `plain`,
    /// as a final segment or not; `Ok(false)` if the tag does not verify.
    fn open(&mut self, last: bool) -> Result<bool, CryptError> {
        let index = segment_index(self.opened)?;
        let (body, tag) = self.sealed.split_at(self.sealed.len() - TAG_LEN);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| CryptError::Tampered)?;
        self.plain.clear();
        self.plain.extend_from_slice(body);
        let nonce = segment_nonce(&self.header[MAGIC.len()..], index, last);
        let verified = self
            .cipher
            .decrypt_in_place_detached(
                &nonce,
                &self.header,
                &mut self.plain,
                &aead::Tag::<Aes256Gcm>::from(tag),
            )
            .is_ok();
        Ok(verified)
    }

    /// Writes the segment just opened and moves on to the next.
    fn emit(&mut self) -> Result<(), CryptError> {
        self.inner.write_all(&self.plain)?;
        self.plain.clear();
        self.sealed.clear();
        self.opened += 1;
        Ok(())
    }
}

impl<W: Write> Write for Decryptor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(err) = &self.failed {
            return Err(err.duplicate().into());
        }
        match self.absorb(buf) {
            Ok(()) => Ok(buf.len()),
            Err(err) => {
                self.failed = Some(err.duplicate());
                Err(err.into())
            }
        }
    }

    /// Flushes the inner writer. Plaintext of a segment whose tag has not been
    /// checked yet stays held back.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// A reader that hands out its data in random-sized pieces and now and
    /// then fails with `Interrupted`, as pipes and sockets may.
    struct ChoppyReader<'a> {
        data: &'a [u8],
        rng: StdRng,
    }

    impl Read for ChoppyReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.rng.random_ratio(1, 8) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self
                .rng
                .random_range(1..=SEGMENT / 3)
                .min(buf.len())
                .min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn key() -> Key {
        Key::generate().unwrap()
    }

    /// Recognisable plaintext of `len` bytes.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Encrypts `data` through a choppy reader, reading the output into
    /// random-sized buffers.
    fn encrypt(data: &[u8], key: &Key, seed: u64) -> Vec<u8> {
        let mut rng = StdRng::seed_from_u64(seed);
        let reader = ChoppyReader {
            data,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
        };
        let mut enc = Encryptor::new(reader, key).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2 * SEALED];
        loop {
            let want = rng.random_range(1..=buf.len());
            match enc.read(&mut buf[..want]) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => panic!("encryption failed: {err}"),
            }
        }
    }

    /// Decrypts `ct`, writing it in pieces whose sizes cycle through `pieces`.
    fn decrypt_in(ct: &[u8], key: &Key, pieces: &[usize]) -> Result<Vec<u8>, CryptError> {
        let mut dec = Decryptor::new(Vec::new(), key);
        let mut rest = ct;
        for &size in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
            dec.write_all(piece)?;
            rest = tail;
        }
        dec.finish()
    }

    fn decrypt(ct: &[u8], key: &Key) -> Result<Vec<u8>, CryptError> {
        decrypt_in(ct, key, &[1000, 1, 70_000, 13])
    }

    /// The ciphertext byte range of segment `i`.
    fn segment(i: usize, ct_len: usize) -> std::ops::Range<usize> {
        let start = HEADER_LEN + i * SEALED;
        start..(start + SEALED).min(ct_len)
    }

    #[test]
    fn round_trips_boundary_lengths() {
        let key = key();
        let lens = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 7];
        for (seed, len) in lens.into_iter().enumerate() {
            let data = pattern(len);
            let ct = encrypt(&data, &key, seed as u64);
            assert_eq!(ct.len() as u64, encrypted_len(len as u64), "length {len}");
            assert_eq!(&ct[..MAGIC.len()], MAGIC);
            assert_eq!(decrypt(&ct, &key).unwrap(), data, "length {len}");
            assert_eq!(decrypt_in(&ct, &key, &[ct.len()]).unwrap(), data);
            assert_eq!(decrypt_in(&ct, &key, &[SEALED]).unwrap(), data);
        }
    }

    #[test]
    fn encrypted_len_counts_header_and_tags() {
        let (h, t, s) = (HEADER_LEN as u64, TAG_LEN as u64, SEGMENT as u64);
        assert_eq!(encrypted_len(0), h + t);
        assert_eq!(encrypted_len(1), h + 1 + t);
        assert_eq!(encrypted_len(s), h + s + t);
        assert_eq!(encrypted_len(s + 1), h + s + 1 + 2 * t);
        assert_eq!(encrypted_len(3 * s), h + 3 * s + 3 * t);
        assert_eq!(encrypted_len(u64::MAX), u64::MAX);
    }

    #[test]
    fn same_plaintext_and_key_encrypt_differently() {
        let key = key();
        let data = pattern(100);
        assert_ne!(encrypt(&data, &key, 1), encrypt(&data, &key, 1));
    }

    #[test]
    fn wrong_key_fails() {
        let data = pattern(SEGMENT + 10);
        let ct = encrypt(&data, &key(), 2);
        assert!(matches!(decrypt(&ct, &key()), Err(CryptError::Tampered)));
        let small = encrypt(&pattern(10), &key(), 3);
        assert!(matches!(decrypt(&small, &key()), Err(CryptError::Tampered)));
    }

    #[test]
    fn flipping_any_byte_of_a_small_file_fails() {
        let key = key();
        let ct = encrypt(&pattern(100), &key, 4);
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            let result = decrypt(&bad, &key);
            if i < MAGIC.len() {
                assert!(matches!(result, Err(CryptError::BadHeader)), "byte {i}");
            } else {
                assert!(matches!(result, Err(CryptError::Tampered)), "byte {i}");
            }
        }
    }

    #[test]
    fn flipping_bytes_of_a_multi_segment_file_fails() {
        let key = key();
        let ct = encrypt(&pattern(2 * SEGMENT + 10), &key, 5);
        let mut positions: Vec<usize> = (MAGIC.len()..HEADER_LEN).collect();
        for i in 0..3 {
            let seg = segment(i, ct.len());
            positions.extend([seg.start, seg.start + 1, seg.end - TAG_LEN - 1]);
            positions.extend(seg.end - TAG_LEN..seg.end);
        }
        let mut rng = StdRng::seed_from_u64(6);
        positions.extend((0..20).map(|_| rng.random_range(HEADER_LEN..ct.len())));
        for i in positions {
            let mut bad = ct.clone();
            bad[i] ^= 0x80;
            assert!(
                matches!(decrypt(&bad, &key), Err(CryptError::Tampered)),
                "byte {i}"
            );
        }
    }

    #[test]
    fn truncation_at_a_segment_boundary_is_detected() {
        let key = key();
        let ct = encrypt(&pattern(3 * SEGMENT + 7), &key, 7);
        for segments in 0..=3 {
            let cut = HEADER_LEN + segments * SEALED;
            assert!(
                matches!(decrypt(&ct[..cut], &key), Err(CryptError::Truncated)),
                "{segments} segments kept"
            );
        }
        for cut in [0, 1, MAGIC.len(), HEADER_LEN - 1, HEADER_LEN + TAG_LEN - 1] {
            assert!(
                matches!(decrypt(&ct[..cut], &key), Err(CryptError::Truncated)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn dropping_a_full_final_segment_is_detected() {
        let key = key();
        let ct = encrypt(&pattern(2 * SEGMENT), &key, 8);
        assert_eq!(ct.len(), HEADER_LEN + 2 * SEALED);
        let without_final = &ct[..HEADER_LEN + SEALED];
        assert!(matches!(
            decrypt(without_final, &key),
            Err(CryptError::Truncated)
        ));
        let empty = encrypt(&[], &key, 9);
        assert!(matches!(
            decrypt(&empty[..HEADER_LEN], &key),
            Err(CryptError::Truncated)
        ));
    }

    #[test]
    fn truncation_inside_a_segment_fails_authentication() {
        let key = key();
        let ct = encrypt(&pattern(2 * SEGMENT + 7), &key, 10);
        for cut in [HEADER_LEN + 100, HEADER_LEN + SEALED + 5000, ct.len() - 1] {
            assert!(
                matches!(decrypt(&ct[..cut], &key), Err(CryptError::Tampered)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn swapped_segments_are_detected() {
        let key = key();
        let ct = encrypt(&pattern(3 * SEGMENT), &key, 11);
        let mut swapped = ct[..HEADER_LEN].to_vec();
        for i in [1, 0, 2] {
            swapped.extend_from_slice(&ct[segment(i, ct.len())]);
        }
        assert!(matches!(decrypt(&swapped, &key), Err(CryptError::Tampered)));
    }

    #[test]
    fn segments_spliced_from_another_file_are_detected() {
        let key = key();
        let data = pattern(2 * SEGMENT + 3);
        let first = encrypt(&data, &key, 12);
        let second = encrypt(&data, &key, 13);
        let mut spliced = first.clone();
        let seg = segment(1, first.len());
        spliced[seg.clone()].copy_from_slice(&second[seg]);
        assert!(matches!(decrypt(&spliced, &key), Err(CryptError::Tampered)));
        let mut rehead = second.clone();
        rehead[..HEADER_LEN].copy_from_slice(&first[..HEADER_LEN]);
        assert!(matches!(decrypt(&rehead, &key), Err(CryptError::Tampered)));
    }

    #[test]
    fn data_after_the_final_segment_is_rejected() {
        let key = key();
        let mut full = encrypt(&pattern(SEGMENT), &key, 14);
        full.push(0);
        assert!(matches!(
            decrypt(&full, &key),
            Err(CryptError::TrailingData)
        ));
        for len in [0, 10] {
            let mut short = encrypt(&pattern(len), &key, 15);
            short.extend_from_slice(b"extra");
            assert!(matches!(decrypt(&short, &key), Err(CryptError::Tampered)));
        }
    }

    #[test]
    fn bad_magic_is_rejected_on_write() {
        let mut dec = Decryptor::new(Vec::new(), &key());
        let err = dec.write(b"R1FSENC2").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(CryptError::from(err), CryptError::BadHeader));
        assert!(matches!(dec.finish(), Err(CryptError::BadHeader)));
    }

    #[test]
    fn a_failed_decryptor_stays_failed() {
        let key = key();
        let mut ct = encrypt(&pattern(3 * SEGMENT), &key, 16);
        ct[HEADER_LEN + 5] ^= 1;
        let mut dec = Decryptor::new(Vec::new(), &key);
        let err = dec.write_all(&ct).unwrap_err();
        assert!(matches!(CryptError::from(err), CryptError::Tampered));
        let again = dec.write(&ct[..1]).unwrap_err();
        assert!(matches!(CryptError::from(again), CryptError::Tampered));
        assert!(matches!(dec.finish(), Err(CryptError::Tampered)));
    }

    #[test]
    fn no_plaintext_is_written_before_its_tag_verifies() {
        let key = key();
        let mut ct = encrypt(&pattern(2 * SEGMENT), &key, 17);
        let last = ct.len() - 1;
        ct[last] ^= 1;
        let mut dec = Decryptor::new(Vec::new(), &key);
        dec.write_all(&ct[..HEADER_LEN + SEALED + 100]).unwrap();
        assert_eq!(dec.inner, pattern(SEGMENT));
        assert!(dec.write_all(&ct[HEADER_LEN + SEALED + 100..]).is_err());
        assert_eq!(dec.inner.len(), SEGMENT);
    }

    #[test]
    fn ciphertext_shows_no_plaintext() {
        let data = pattern(200 * 1024);
        let ct = encrypt(&data, &key(), 18);
        let windows: HashSet<&[u8]> = data.windows(32).take(251).collect();
        assert!(ct.windows(32).all(|w| !windows.contains(w)));
    }

    #[test]
    fn encryptor_refuses_to_exceed_the_segment_limit() {
        let data = pattern(10);
        let mut enc = Encryptor::new(&data[..], &key()).unwrap();
        enc.sealed = u64::from(u32::MAX) + 1;
        let mut out = Vec::new();
        let err = enc.read_to_end(&mut out).unwrap_err();
        assert!(matches!(CryptError::from(err), CryptError::TooLarge));
    }

    #[test]
    fn decryptor_refuses_to_exceed_the_segment_limit() {
        let key = key();
        let ct = encrypt(&pattern(10), &key, 19);
        let mut dec = Decryptor::new(Vec::new(), &key);
        dec.opened = u64::from(u32::MAX) + 1;
        dec.write_all(&ct).unwrap();
        assert!(matches!(dec.finish(), Err(CryptError::TooLarge)));
    }

    #[test]
    fn key_hex_round_trips() {
        let key = key();
        let hex = key.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(Key::from_hex(&hex).unwrap().to_hex(), hex);
        let fixed = "00ff10a0".repeat(8);
        assert_eq!(Key::from_hex(&fixed).unwrap().to_hex(), fixed);
        assert_eq!(
            Key::from_hex(&fixed).unwrap().0[..4],
            [0x00, 0xff, 0x10, 0xa0]
        );
    }

    #[test]
    fn bad_key_hex_is_rejected() {
        let good = "ab".repeat(32);
        let bad = [
            String::new(),
            "ab".repeat(31),
            "ab".repeat(33),
            format!("{}A", &good[..63]),
            format!("{}g", &good[..63]),
            format!(" {}", &good[..63]),
            format!("{}é", &good[..62]),
        ];
        for text in bad {
            let err = Key::from_hex(&text).unwrap_err();
            assert!(matches!(err, CryptError::BadKey(_)), "{text:?}");
            assert!(err.to_string().starts_with("invalid encryption key: "));
        }
    }

    #[test]
    fn key_debug_hides_the_key() {
        let key = key();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.to_hex()[..8]));
        assert_eq!(shown, "Key(<redacted>)");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_small_data_round_trips(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            pieces in proptest::collection::vec(1usize..300, 1..8),
            seed in any::<u64>(),
        ) {
            let key = key();
            let ct = encrypt(&data, &key, seed);
            prop_assert_eq!(ct.len() as u64, encrypted_len(data.len() as u64));
            prop_assert_eq!(decrypt_in(&ct, &key, &pieces).unwrap(), data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn arbitrary_large_data_round_trips(
            len in 0..3 * SEGMENT + 100,
            seed in any::<u64>(),
            pieces in proptest::collection::vec(1usize..2 * SEALED, 1..6),
        ) {
            let mut data = vec![0u8; len];
            StdRng::seed_from_u64(seed).fill(&mut data[..]);
            let key = key();
            let ct = encrypt(&data, &key, seed);
            prop_assert_eq!(ct.len() as u64, encrypted_len(len as u64));
            prop_assert_eq!(decrypt_in(&ct, &key, &pieces).unwrap(), data);
        }
    }
}
