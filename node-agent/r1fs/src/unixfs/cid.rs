//! Content identifiers: the [`Cid`] of a block, its binary and text forms, and [`verify`], the
//! hash check a fetcher does on every block it receives.
//!
//! Only what UnixFS as kubo writes it needs: sha2-256 multihashes, the `dag-pb` and `raw`
//! codecs, CIDv0 (`Qm…`, base58btc of the bare multihash) and CIDv1 (written in base32 lower
//! case, `b…`; base58btc `z…` is read too).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::multibase;
use super::varint::{self, VarintError};

/// The multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// Length of a sha2-256 digest.
pub const DIGEST_LEN: usize = 32;

/// CID version: how the identifier is laid out, and what `ipfs add --cid-version` picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CidVersion {
    /// The bare sha2-256 multihash of a dag-pb block, base58btc: `Qm…`. Kubo's default.
    V0,
    /// Version, codec and multihash, base32: `bafy…` (dag-pb) or `bafk…` (raw).
    V1,
}

/// What a block's bytes are (the multicodec in a CIDv1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// A protobuf `PBNode` (code 0x70): every UnixFS node.
    DagPb,
    /// Plain bytes (code 0x55): a file chunk as a CIDv1 import stores it.
    Raw,
}

impl Codec {
    /// The multicodec code.
    pub fn code(self) -> u64 {
        match self {
            Codec::DagPb => 0x70,
            Codec::Raw => 0x55,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        match code {
            0x70 => Some(Codec::DagPb),
            0x55 => Some(Codec::Raw),
            _ => None,
        }
    }
}

/// Why bytes or text are not a CID this crate understands.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CidError {
    /// The text is empty.
    #[error("empty CID")]
    Empty,
    /// The text starts with a multibase prefix other than `b`, `B` or `z`.
    #[error("unsupported multibase prefix {0:?} (expected `Qm…` or `b…`)")]
    Multibase(char),
    /// A character outside the alphabet, or a length no byte string has.
    #[error("invalid {0} text")]
    Alphabet(&'static str),
    /// A varint in the binary form is malformed.
    #[error("malformed CID: {0}")]
    Varint(#[from] VarintError),
    /// A version other than 0 and 1 (or 0 spelled as a CIDv1).
    #[error("unsupported CID version {0}")]
    Version(u64),
    /// A codec other than dag-pb (0x70) and raw (0x55).
    #[error("unsupported codec 0x{0:x} (expected dag-pb 0x70 or raw 0x55)")]
    Codec(u64),
    /// A hash function other than sha2-256 (0x12).
    #[error("unsupported multihash 0x{0:x} (expected sha2-256 0x12)")]
    Hash(u64),
    /// A sha2-256 multihash whose digest is not 32 bytes.
    #[error("multihash digest is {0} bytes, sha2-256 has 32")]
    DigestLength(u64),
    /// Bytes left after the digest.
    #[error("{0} bytes after the multihash digest")]
    Trailing(usize),
}

/// The identifier of one block: version, codec and the sha2-256 digest of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    version: CidVersion,
    codec: Codec,
    digest: [u8; DIGEST_LEN],
}

impl Cid {
    /// The CIDv0 of a dag-pb block with this sha2-256 digest.
    pub fn v0(digest: [u8; DIGEST_LEN]) -> Self {
        Cid {
            version: CidVersion::V0,
            codec: Codec::DagPb,
            digest,
        }
    }

    /// The CIDv1 of a block of this codec with this sha2-256 digest.
    pub fn v1(codec: Codec, digest: [u8; DIGEST_LEN]) -> Self {
        Cid {
            version: CidVersion::V1,
            codec,
            digest,
        }
    }

    /// Hashes `bytes` and names them. `CidVersion::V0` exists only for dag-pb; asking for a
    /// raw v0 CID gives the v1 one, as kubo does.
    pub fn of(version: CidVersion, codec: Codec, bytes: &[u8]) -> Self {
        let digest = sha256(bytes);
        match (version, codec) {
            (CidVersion::V0, Codec::DagPb) => Cid::v0(digest),
            _ => Cid::v1(codec, digest),
        }
    }

    /// The version.
    pub fn version(&self) -> CidVersion {
        self.version
    }

    /// The codec of the block it names.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The sha2-256 digest of the block's bytes (the multihash without its two-byte header).
    pub fn digest(&self) -> &[u8; DIGEST_LEN] {
        &self.digest
    }

    /// The multihash: `0x12 0x20` and the digest.
    pub fn multihash(&self) -> [u8; DIGEST_LEN + 2] {
        let mut out = [0u8; DIGEST_LEN + 2];
        out[0] = SHA2_256 as u8;
        out[1] = DIGEST_LEN as u8;
        out[2..].copy_from_slice(&self.digest);
        out
    }

    /// The binary form: the bare multihash for v0; version, codec and multihash for v1.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_bytes(&mut out);
        out
    }

    /// Appends the binary form to `out`.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        if self.version == CidVersion::V1 {
            varint::encode(1, out);
            varint::encode(self.codec.code(), out);
        }
        out.extend_from_slice(&self.multihash());
    }

    /// Length of the binary form (34 bytes for v0, 36 for v1 of either codec).
    pub fn encoded_len(&self) -> usize {
        match self.version {
            CidVersion::V0 => DIGEST_LEN + 2,
            CidVersion::V1 => 1 + varint::encoded_len(self.codec.code()) + DIGEST_LEN + 2,
        }
    }

    /// Reads the binary form, all of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CidError> {
        if bytes.len() == DIGEST_LEN + 2
            && bytes[0] == SHA2_256 as u8
            && bytes[1] == DIGEST_LEN as u8
        {
            return Ok(Cid::v0(read_multihash(bytes)?));
        }
        let (version, n) = varint::decode(bytes)?;
        if version != 1 {
            return Err(CidError::Version(version));
        }
        let rest = &bytes[n..];
        let (code, n) = varint::decode(rest)?;
        let codec = Codec::from_code(code).ok_or(CidError::Codec(code))?;
        Ok(Cid::v1(codec, read_multihash(&rest[n..])?))
    }
}

/// Reads a sha2-256 multihash that is all of `bytes`.
fn read_multihash(bytes: &[u8]) -> Result<[u8; DIGEST_LEN], CidError> {
    let (code, n) = varint::decode(bytes)?;
    if code != SHA2_256 {
        return Err(CidError::Hash(code));
    }
    let bytes = &bytes[n..];
    let (len, n) = varint::decode(bytes)?;
    if len != DIGEST_LEN as u64 {
        return Err(CidError::DigestLength(len));
    }
    let bytes = &bytes[n..];
    let digest: [u8; DIGEST_LEN] = bytes
        .get(..DIGEST_LEN)
        .and_then(|d| d.try_into().ok())
        .ok_or(CidError::Varint(VarintError::Truncated))?;
    if bytes.len() > DIGEST_LEN {
        return Err(CidError::Trailing(bytes.len() - DIGEST_LEN));
    }
    Ok(digest)
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            CidVersion::V0 => f.write_str(&multibase::base58_encode(&self.multihash())),
            CidVersion::V1 => {
                f.write_str("b")?;
                f.write_str(&multibase::base32_encode(&self.to_bytes()))
            }
        }
    }
}

impl FromStr for Cid {
    type Err = CidError;

    /// Reads `Qm…` (v0) or a multibase CIDv1: `b`/`B` base32, `z` base58btc.
    fn from_str(text: &str) -> Result<Self, CidError> {
        if text.len() == 46 && text.starts_with("Qm") {
            let bytes = multibase::base58_decode(text).ok_or(CidError::Alphabet("base58btc"))?;
            return Ok(Cid::v0(read_multihash(&bytes)?));
        }
        let mut chars = text.chars();
        let prefix = chars.next().ok_or(CidError::Empty)?;
        let body = chars.as_str();
        let bytes = match prefix {
            'b' | 'B' => multibase::base32_decode(body).ok_or(CidError::Alphabet("base32"))?,
            'z' => multibase::base58_decode(body).ok_or(CidError::Alphabet("base58btc"))?,
            other => return Err(CidError::Multibase(other)),
        };
        let cid = Cid::from_bytes(&bytes)?;
        if cid.version == CidVersion::V0 {
            // A bare multihash behind a multibase prefix is not a CID.
            return Err(CidError::Version(0));
        }
        Ok(cid)
    }
}

/// Whether `bytes` are the block `cid` names: its sha2-256 digest matches.
pub fn verify(cid: &Cid, bytes: &[u8]) -> bool {
    sha256(bytes) == cid.digest
}

/// The sha2-256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The dag-pb block of an empty UnixFS file: `{Data: {Type: File, filesize: 0}}`.
    const EMPTY_FILE_BLOCK: [u8; 6] = [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00];

    #[test]
    fn empty_file_block_has_kubos_well_known_cid() {
        let cid = Cid::of(CidVersion::V0, Codec::DagPb, &EMPTY_FILE_BLOCK);
        assert_eq!(
            cid.to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        assert!(verify(&cid, &EMPTY_FILE_BLOCK));
    }

    #[test]
    fn empty_raw_block_has_the_well_known_v1_cid() {
        // The CIDv1 of zero raw bytes, as every IPFS implementation writes it.
        let cid = Cid::of(CidVersion::V1, Codec::Raw, &[]);
        assert_eq!(
            cid.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(cid.to_bytes().len(), 36);
        assert_eq!(cid.encoded_len(), 36);
    }

    #[test]
    fn v0_and_v1_of_the_same_block_share_the_digest() {
        let v0: Cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
            .parse()
            .expect("v0");
        let v1 = Cid::v1(Codec::DagPb, *v0.digest());
        assert!(v1.to_string().starts_with("bafybei"));
        assert_eq!(v1.to_string().parse::<Cid>(), Ok(v1));
        assert_eq!(v0.to_bytes().len(), 34);
        assert_eq!(&v0.to_bytes()[..], &v0.multihash()[..]);
        // Upper-case base32 and base58btc spell the same CIDv1.
        assert_eq!(v1.to_string().to_uppercase().parse::<Cid>(), Ok(v1));
        let z = format!("z{}", multibase::base58_encode(&v1.to_bytes()));
        assert_eq!(z.parse::<Cid>(), Ok(v1));
    }

    #[test]
    fn invalid_text_is_a_clear_error() {
        assert_eq!("".parse::<Cid>(), Err(CidError::Empty));
        assert_eq!("Qm".parse::<Cid>(), Err(CidError::Multibase('Q')));
        assert_eq!("fabc".parse::<Cid>(), Err(CidError::Multibase('f')));
        assert_eq!("b1111".parse::<Cid>(), Err(CidError::Alphabet("base32")));
        // A v0 CID with one character changed to one outside the alphabet.
        assert_eq!(
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQ0".parse::<Cid>(),
            Err(CidError::Alphabet("base58btc"))
        );
        // Version 2.
        let v2 = format!("b{}", multibase::base32_encode(&[0x02, 0x70, 0x12, 0x20]));
        assert_eq!(v2.parse::<Cid>(), Err(CidError::Version(2)));
        // dag-cbor.
        let mut cbor = vec![0x01, 0x71, 0x12, 0x20];
        cbor.extend([0u8; 32]);
        assert_eq!(Cid::from_bytes(&cbor), Err(CidError::Codec(0x71)));
        // blake2b-256.
        let mut blake = vec![0x01, 0x55, 0xa0, 0xe4, 0x02, 0x20];
        blake.extend([0u8; 32]);
        assert_eq!(Cid::from_bytes(&blake), Err(CidError::Hash(0xb220)));
        // Short digest, trailing bytes, truncated.
        assert_eq!(
            Cid::from_bytes(&[0x01, 0x55, 0x12, 0x10]),
            Err(CidError::DigestLength(16))
        );
        let mut long = Cid::v1(Codec::Raw, [7; 32]).to_bytes();
        long.push(0);
        assert_eq!(Cid::from_bytes(&long), Err(CidError::Trailing(1)));
        assert_eq!(
            Cid::from_bytes(&[0x01, 0x55, 0x12, 0x20, 1, 2]),
            Err(CidError::Varint(VarintError::Truncated))
        );
        // A bare multihash behind a multibase prefix.
        let bare = format!(
            "b{}",
            multibase::base32_encode(&Cid::v0([1; 32]).to_bytes())
        );
        assert_eq!(bare.parse::<Cid>(), Err(CidError::Version(0)));
        // Errors read as sentences.
        assert_eq!(
            "fabc".parse::<Cid>().map_err(|e| e.to_string()),
            Err("unsupported multibase prefix 'f' (expected `Qm…` or `b…`)".to_string())
        );
    }

    fn any_cid() -> impl Strategy<Value = Cid> {
        (any::<[u8; 32]>(), 0..3u8).prop_map(|(digest, kind)| match kind {
            0 => Cid::v0(digest),
            1 => Cid::v1(Codec::DagPb, digest),
            _ => Cid::v1(Codec::Raw, digest),
        })
    }

    proptest! {
        #[test]
        fn text_and_binary_round_trip(cid in any_cid()) {
            let text = cid.to_string();
            prop_assert_eq!(text.parse::<Cid>(), Ok(cid));
            prop_assert_eq!(Cid::from_bytes(&cid.to_bytes()), Ok(cid));
            prop_assert_eq!(cid.to_bytes().len(), cid.encoded_len());
            let prefix = match (cid.version(), cid.codec()) {
                (CidVersion::V0, _) => "Qm",
                (CidVersion::V1, Codec::DagPb) => "bafybei",
                (CidVersion::V1, Codec::Raw) => "bafkrei",
            };
            prop_assert!(text.starts_with(prefix), "{} does not start with {}", text, prefix);
            prop_assert!(cid.version() == CidVersion::V1 || text.len() == 46);
        }

        #[test]
        fn verify_rejects_any_changed_byte(
            bytes in proptest::collection::vec(any::<u8>(), 1..256),
            at in any::<prop::sample::Index>(),
            flip in 1..=255u8,
        ) {
            let cid = Cid::of(CidVersion::V1, Codec::Raw, &bytes);
            prop_assert!(verify(&cid, &bytes));
            let mut changed = bytes.clone();
            changed[at.index(bytes.len())] ^= flip;
            prop_assert!(!verify(&cid, &changed));
        }
    }
}
