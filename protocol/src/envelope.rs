//! The signed envelope: sender, nonce, timestamp, message kind and payload, with an EIP-191
//! personal-sign signature over a canonical binary encoding of all of them.
//!
//! On the wire an envelope is compact JSON with the payload as a JSON string, so the signed bytes
//! are exactly the bytes received and nothing is re-serialized before checking:
//!
//! ```json
//! {"v":1,"kind":"heartbeat","sender":"0x…","nonce":…,"ts":…,"payload":"{…}","sig":"0x…"}
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use alloy_primitives::{Address, Signature, keccak256};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::identity::{Identity, IdentityError};

/// Envelope format version.
pub const VERSION: u8 = 1;

/// Domain separator: an r1 envelope signature can never be mistaken for another signed text.
const DOMAIN: &[u8] = b"r1.envelope.v1\0";

/// What an envelope carries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    /// [`Heartbeat`](crate::messages::Heartbeat), node → oracles.
    Heartbeat,
    /// [`DeployCommand`](crate::messages::DeployCommand), oracle → node.
    Deploy,
    /// [`StopCommand`](crate::messages::StopCommand), oracle → node.
    Stop,
    /// [`JobStatusReport`](crate::messages::JobStatusReport), node → oracles.
    JobStatus,
    /// [`OracleObservation`](crate::messages::OracleObservation), oracle → oracles.
    Observation,
    /// [`RelayedRequest`](crate::messages::RelayedRequest), oracle → oracles.
    Request,
    /// [`Roster`](crate::messages::Roster), oracle → nodes: who may talk peer to peer.
    Roster,
    /// [`OraclePresence`](crate::messages::OraclePresence), oracle → oracles: the signature
    /// tells the others the oracle's public key.
    Presence,
    /// [`SessionOpen`](crate::sessions::SessionOpen), oracle → node.
    SessionOpen,
    /// [`SessionInput`](crate::sessions::SessionInput), oracle → node.
    SessionInput,
    /// [`SessionOutput`](crate::sessions::SessionOutput), node → oracles.
    SessionOutput,
    /// [`ServiceTable`](crate::services::ServiceTable), oracle → node.
    ServiceTable,
    /// [`LivenessProbe`](crate::messages::LivenessProbe), oracle → node.
    Probe,
    /// [`NodeGone`](crate::messages::NodeGone), node → oracles, through the broker.
    Gone,
}

impl MessageKind {
    /// The byte that stands for the kind in the signed encoding.
    fn tag(self) -> u8 {
        match self {
            Self::Heartbeat => 1,
            Self::Deploy => 2,
            Self::Stop => 3,
            Self::JobStatus => 4,
            Self::Observation => 5,
            Self::Request => 6,
            Self::Roster => 7,
            Self::Presence => 8,
            Self::SessionOpen => 9,
            Self::SessionInput => 10,
            Self::SessionOutput => 11,
            Self::ServiceTable => 12,
            Self::Probe => 13,
            Self::Gone => 14,
        }
    }
}

/// A payload type carried in an envelope of kind [`Message::KIND`].
pub trait Message: Serialize + DeserializeOwned {
    /// The envelope kind that carries this payload.
    const KIND: MessageKind;
}

/// A signed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// What the payload is.
    pub kind: MessageKind,
    /// Address of the signer.
    pub sender: Address,
    /// Strictly increasing per sender; receivers refuse a nonce they have seen.
    pub nonce: u64,
    /// Milliseconds since the Unix epoch when the message was sealed.
    pub timestamp_ms: u64,
    /// JSON of the message.
    pub payload: String,
    /// EIP-191 signature over [`Envelope::signing_bytes`].
    pub signature: Signature,
}

/// The JSON form; parsing is strict so that every accepted text has one meaning.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u8,
    kind: MessageKind,
    sender: String,
    nonce: u64,
    ts: u64,
    payload: String,
    sig: String,
}

/// Why an envelope could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The message does not serialize.
    #[error("cannot encode the message: {0}")]
    Encode(#[from] serde_json::Error),
    /// The signer failed.
    #[error(transparent)]
    Sign(#[from] IdentityError),
}

/// Why bytes are not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not the envelope's JSON shape.
    #[error("not an r1 envelope: {0}")]
    Syntax(String),
    /// A newer or older format.
    #[error("unsupported envelope version {0}")]
    Version(u8),
    /// The sender is not `0x` + 40 lowercase hex digits.
    #[error("sender is not a lowercase hex address")]
    Sender,
    /// The signature is not `0x` + 130 lowercase hex digits with v = 27 or 28.
    #[error("signature is not 65 bytes of lowercase hex with v = 27 or 28")]
    Signature,
}

impl Envelope {
    /// The bytes the sender signs: domain, kind, sender, nonce, timestamp and the payload's hash.
    pub fn signing_bytes(
        kind: MessageKind,
        sender: &Address,
        nonce: u64,
        timestamp_ms: u64,
        payload: &str,
    ) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(DOMAIN.len() + 1 + 20 + 8 + 8 + 32);
        bytes.extend_from_slice(DOMAIN);
        bytes.push(kind.tag());
        bytes.extend_from_slice(sender.as_slice());
        bytes.extend_from_slice(&nonce.to_be_bytes());
        bytes.extend_from_slice(&timestamp_ms.to_be_bytes());
        bytes.extend_from_slice(keccak256(payload.as_bytes()).as_slice());
        bytes
    }

    /// Signs `message` as `identity`.
    pub fn seal<M: Message>(
        identity: &Identity,
        message: &M,
        nonce: u64,
        timestamp_ms: u64,
    ) -> Result<Self, SealError> {
        let payload = serde_json::to_string(message)?;
        let sender = identity.address();
        let signing = Self::signing_bytes(M::KIND, &sender, nonce, timestamp_ms, &payload);
        let signature = identity.sign_personal(&signing)?;
        Ok(Self {
            kind: M::KIND,
            sender,
            nonce,
            timestamp_ms,
            payload,
            signature,
        })
    }

    /// The JSON wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            v: VERSION,
            kind: self.kind,
            sender: crate::hex::encode(self.sender.as_slice()),
            nonce: self.nonce,
            ts: self.timestamp_ms,
            payload: self.payload.clone(),
            sig: crate::hex::encode(&self.signature.as_bytes()),
        };
        // A struct of strings and integers always serializes.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Parses the wire form strictly; the signature is not checked here.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Syntax(e.to_string()))?;
        if wire.v != VERSION {
            return Err(DecodeError::Version(wire.v));
        }
        let sender = crate::hex::decode::<20>(&wire.sender).ok_or(DecodeError::Sender)?;
        let raw = crate::hex::decode::<65>(&wire.sig).ok_or(DecodeError::Signature)?;
        // Only Electrum v values: EIP-155 forms of the same parity would let a changed byte verify.
        if !matches!(raw[64], 27 | 28) {
            return Err(DecodeError::Signature);
        }
        let signature = Signature::from_raw_array(&raw).map_err(|_| DecodeError::Signature)?;
        Ok(Self {
            kind: wire.kind,
            sender: Address::from(sender),
            nonce: wire.nonce,
            timestamp_ms: wire.ts,
            payload: wire.payload,
            signature,
        })
    }

    /// The address that produced the signature, or `None` when it recovers to no key.
    pub fn recover_signer(&self) -> Option<Address> {
        self.recover_signer_key().map(|(address, _)| address)
    }

    /// The address and compressed public key that produced the signature, or `None` when it
    /// recovers to no key: how receivers learn the key to seal secrets to (see [`crate::sealed`]).
    pub fn recover_signer_key(&self) -> Option<(Address, [u8; crate::sealed::PUBLIC_KEY_LEN])> {
        let signing = Self::signing_bytes(
            self.kind,
            &self.sender,
            self.nonce,
            self.timestamp_ms,
            &self.payload,
        );
        let signer = crate::recovery::recover_personal(&self.signature, signing)?;
        Some((signer.address, signer.public_key))
    }
}

/// Milliseconds since the Unix epoch: the clock envelope timestamps and freshness checks use.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seals messages for one identity with strictly increasing nonces.
///
/// Nonces are microsecond timestamps bumped past the last one issued, so they keep increasing
/// across restarts without any state on disk (as long as the clock does not step back).
#[derive(Debug)]
pub struct Sealer {
    identity: Identity,
    last_nonce: AtomicU64,
}

impl Sealer {
    /// The identity it signs as: what opens secrets sealed to its holder.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A sealer signing as `identity`.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            last_nonce: AtomicU64::new(0),
        }
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.identity.address()
    }

    /// Signs `message` at `now_ms` with the next nonce.
    pub fn seal<M: Message>(&self, message: &M, now_ms: u64) -> Result<Envelope, SealError> {
        let floor = now_ms.saturating_mul(1000);
        let previous = self
            .last_nonce
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(floor.max(last + 1))
            })
            .unwrap_or_default();
        let nonce = floor.max(previous + 1);
        Envelope::seal(&self.identity, message, nonce, now_ms)
    }
}
