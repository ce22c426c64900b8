//! The bytes of the block exchange between nodes (request-response protocol `r1fs`): a request
//! names the blocks it wants, the answer carries the ones the provider has. Both are bounded
//! ([`MAX_WANTED`] CIDs, [`MAX_BLOCK_BYTES`] per block) and decoding checks every length
//! against the bytes left before allocating, so a peer cannot make a node allocate more than it
//! sent.
//!
//! Request: `varint(count)` then each CID as `varint(len) bytes`. Answer: `varint(count)` then
//! each block as `varint(len) cid-bytes varint(len) block-bytes`.

use crate::unixfs::varint;
use crate::unixfs::{Cid, CidError};

/// Most blocks one request asks for.
pub const MAX_WANTED: usize = 64;

/// Largest block exchanged: a 256 KiB chunk in its dag-pb envelope, with room to spare (kubo's
/// limit for blocks it exchanges is 1 MiB, 2 MiB on the wire).
pub const MAX_BLOCK_BYTES: usize = 1 << 20;

/// Why bytes from a peer are not a request or an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length or count does not fit in what is left, or the message ends early.
    #[error("truncated or malformed exchange message")]
    Truncated,
    /// More CIDs than [`MAX_WANTED`].
    #[error("{0} blocks asked for; at most {MAX_WANTED} are")]
    TooMany(usize),
    /// A block over [`MAX_BLOCK_BYTES`].
    #[error("a block of {0} bytes; at most {MAX_BLOCK_BYTES} are exchanged")]
    TooLarge(usize),
    /// A CID that does not parse.
    #[error(transparent)]
    Cid(#[from] CidError),
    /// Bytes after the last item.
    #[error("trailing bytes after the exchange message")]
    Trailing,
}

/// Encodes a request for `wanted`.
pub fn encode_request(wanted: &[Cid]) -> Vec<u8> {
    let mut out = Vec::new();
    varint::encode(wanted.len() as u64, &mut out);
    for cid in wanted {
        put_bytes(&cid.to_bytes(), &mut out);
    }
    out
}

/// Decodes a request.
pub fn decode_request(bytes: &[u8]) -> Result<Vec<Cid>, WireError> {
    let mut reader = Reader(bytes);
    let count = reader.count(MAX_WANTED)?;
    let mut wanted = Vec::with_capacity(count);
    for _ in 0..count {
        wanted.push(Cid::from_bytes(reader.bytes(64)?)?);
    }
    reader.end()?;
    Ok(wanted)
}

/// Encodes an answer carrying `blocks`.
pub fn encode_answer(blocks: &[(Cid, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    varint::encode(blocks.len() as u64, &mut out);
    for (cid, data) in blocks {
        put_bytes(&cid.to_bytes(), &mut out);
        put_bytes(data, &mut out);
    }
    out
}

/// Decodes an answer.
pub fn decode_answer(bytes: &[u8]) -> Result<Vec<(Cid, Vec<u8>)>, WireError> {
    let mut reader = Reader(bytes);
    let count = reader.count(MAX_WANTED)?;
    let mut blocks = Vec::with_capacity(count);
    for _ in 0..count {
        let cid = Cid::from_bytes(reader.bytes(64)?)?;
        let data = reader.bytes(MAX_BLOCK_BYTES)?.to_vec();
        blocks.push((cid, data));
    }
    reader.end()?;
    Ok(blocks)
}

fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    varint::encode(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, WireError> {
        let (value, used) = varint::decode(self.0).map_err(|_| WireError::Truncated)?;
        self.0 = &self.0[used..];
        Ok(value)
    }

    fn count(&mut self, most: usize) -> Result<usize, WireError> {
        let count = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
        if count > most {
            return Err(WireError::TooMany(count));
        }
        Ok(count)
    }

    fn bytes(&mut self, most: usize) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
        if len > most {
            return Err(WireError::TooLarge(len));
        }
        if len > self.0.len() {
            return Err(WireError::Truncated);
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::unixfs::{CidVersion, Importer};

    fn blocks() -> Vec<(Cid, Vec<u8>)> {
        Importer::new(CidVersion::V1)
            .add_bytes(&vec![7u8; 3 * 262_144 + 11])
            .blocks
            .into_iter()
            .map(|b| (b.cid, b.data))
            .collect()
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let blocks = blocks();
        let wanted: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
        assert_eq!(decode_request(&encode_request(&wanted)).unwrap(), wanted);
        assert_eq!(decode_answer(&encode_answer(&blocks)).unwrap(), blocks);
        assert_eq!(decode_answer(&encode_answer(&[])).unwrap(), []);
    }

    #[test]
    fn oversize_counts_and_lengths_are_refused_before_allocating() {
        let mut huge = Vec::new();
        varint::encode(1 << 40, &mut huge);
        assert_eq!(decode_request(&huge), Err(WireError::TooMany(1 << 40)));
        let mut one = Vec::new();
        varint::encode(1, &mut one);
        let cid = blocks()[0].0.to_bytes();
        put_bytes(&cid, &mut one);
        varint::encode(u64::from(u32::MAX), &mut one);
        assert_eq!(
            decode_answer(&one),
            Err(WireError::TooLarge(u32::MAX as usize))
        );
        let mut request = encode_request(&[blocks()[0].0]);
        request.push(0);
        assert_eq!(decode_request(&request), Err(WireError::Trailing));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_answer(&bytes);
        }

        #[test]
        fn every_truncation_of_an_answer_is_refused(cut in 0usize..100) {
            let encoded = encode_answer(&blocks()[..1]);
            let cut = cut.min(encoded.len() - 1);
            prop_assert!(decode_answer(&encoded[..cut]).is_err());
        }
    }
}
