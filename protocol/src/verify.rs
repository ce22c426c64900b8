//! Accepting a message: the signature must match the sender, the sender must be allowed to send
//! that kind, the message must be fresh and never seen before, and the payload must parse. Each
//! refusal has its own error so logs and metrics say exactly why.
//!
//! The cheap checks (kind, sender policy, freshness, nonce) run before the signature is
//! recovered, so a flood of messages that fail them costs no curve arithmetic; nothing is
//! remembered from a message until its signature holds. Nonces are remembered per sender only
//! as long as a replay could still be fresh, so strangers cannot grow the verifier.

use std::collections::{HashMap, HashSet};

use alloy_primitives::Address;

use crate::envelope::Message;
use crate::envelope::{DecodeError, Envelope, MessageKind};

/// Who may send which kind of message.
pub trait SenderPolicy {
    /// Whether `sender` may send messages of `kind`.
    fn allows(&self, kind: MessageKind, sender: &Address) -> bool;
}

impl SenderPolicy for HashSet<Address> {
    fn allows(&self, _: MessageKind, sender: &Address) -> bool {
        self.contains(sender)
    }
}

impl<F: Fn(MessageKind, &Address) -> bool> SenderPolicy for F {
    fn allows(&self, kind: MessageKind, sender: &Address) -> bool {
        self(kind, sender)
    }
}

/// How old or how far ahead a message's timestamp may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Oldest acceptable age, in milliseconds.
    pub max_age_ms: u64,
    /// Largest acceptable clock lead of the sender, in milliseconds.
    pub max_future_ms: u64,
}

impl Freshness {
    /// One minute old at most (six heartbeat periods), five seconds of clock skew.
    pub const STANDARD: Self = Self {
        max_age_ms: 60_000,
        max_future_ms: 5_000,
    };
}

impl Default for Freshness {
    /// [`Freshness::STANDARD`].
    fn default() -> Self {
        Self::STANDARD
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a well-formed envelope.
    #[error("malformed envelope: {0}")]
    Malformed(DecodeError),
    /// The signature does not recover to the claimed sender.
    #[error("signature does not match sender {claimed}")]
    BadSignature {
        /// The sender the envelope names.
        claimed: Address,
    },
    /// The sender is not allowed to send this kind.
    #[error("sender {sender} is not allowed to send {kind:?} messages")]
    UnknownSender {
        /// The authenticated sender.
        sender: Address,
        /// Kind it tried to send.
        kind: MessageKind,
    },
    /// The envelope carries another kind than the receiver expects.
    #[error("expected a {expected:?} message, got {got:?}")]
    WrongKind {
        /// Kind the receiver reads.
        expected: MessageKind,
        /// Kind in the envelope.
        got: MessageKind,
    },
    /// Older than the freshness window.
    #[error("message is stale: sealed {age_ms} ms ago")]
    Stale {
        /// Age in milliseconds.
        age_ms: u64,
    },
    /// Sealed in the future beyond the allowed clock skew.
    #[error("message is from the future: {ahead_ms} ms ahead")]
    FromTheFuture {
        /// Lead in milliseconds.
        ahead_ms: u64,
    },
    /// A nonce at or below one already accepted from this sender.
    #[error("replayed message: nonce {nonce} is not above {last} already accepted from {sender}")]
    Replayed {
        /// The sender.
        sender: Address,
        /// Nonce received.
        nonce: u64,
        /// Highest nonce accepted before.
        last: u64,
    },
    /// The payload does not parse as the expected message.
    #[error("malformed {kind:?} payload: {reason}")]
    MalformedPayload {
        /// Kind of the envelope.
        kind: MessageKind,
        /// Parser error.
        reason: String,
    },
}

impl VerifyError {
    /// A short label for metrics and logs: `bad_signature`, `replayed`, …
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::BadSignature { .. } => "bad_signature",
            Self::UnknownSender { .. } => "unknown_sender",
            Self::WrongKind { .. } => "wrong_kind",
            Self::Stale { .. } => "stale",
            Self::FromTheFuture { .. } => "from_the_future",
            Self::Replayed { .. } => "replayed",
            Self::MalformedPayload { .. } => "malformed_payload",
        }
    }
}

/// A message that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<M> {
    /// Authenticated sender.
    pub sender: Address,
    /// Its nonce.
    pub nonce: u64,
    /// When it was sealed, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The sender's compressed public key, recovered from the signature: what secrets meant
    /// for the sender are sealed to.
    pub public_key: [u8; crate::sealed::PUBLIC_KEY_LEN],
    /// The payload.
    pub message: M,
}

/// Checks incoming envelopes and remembers the last nonce accepted from each sender.
#[derive(Debug)]
pub struct Verifier<P> {
    policy: P,
    freshness: Freshness,
    /// Per sender: the last nonce accepted and its message's timestamp.
    last_nonce: HashMap<Address, (u64, u64)>,
    /// Senders remembered when expired nonces were last forgotten.
    remembered_at_last_sweep: usize,
}

impl<P: SenderPolicy> Verifier<P> {
    /// A verifier admitting senders by `policy` within `freshness`.
    pub fn new(policy: P, freshness: Freshness) -> Self {
        Self {
            policy,
            freshness,
            last_nonce: HashMap::new(),
            remembered_at_last_sweep: 0,
        }
    }

    /// Seeds the last nonce accepted from `sender` (kept durably by the receiver), so that
    /// replays stay refused across restarts.
    pub fn remember(&mut self, sender: Address, nonce: u64) {
        let last = self.last_nonce.entry(sender).or_insert((nonce, u64::MAX));
        *last = (last.0.max(nonce), u64::MAX);
    }

    /// Forgets the nonces of senders whose last message is too old for a replay of it, or of
    /// anything before it, to pass the freshness check — once the map has doubled since the
    /// last sweep, so the sweeps cost O(1) per message. Seeded nonces are never forgotten.
    fn forget_expired(&mut self, now_ms: u64) {
        if self.last_nonce.len() < 1024.max(2 * self.remembered_at_last_sweep) {
            return;
        }
        let horizon = now_ms.saturating_sub(self.freshness.max_age_ms);
        self.last_nonce.retain(|_, (_, at)| *at >= horizon);
        self.remembered_at_last_sweep = self.last_nonce.len();
    }

    /// The sender policy, e.g. to update the trusted set.
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// Checks `bytes` as a message of type `M` received at `now_ms`; on success the nonce is
    /// remembered so the same message is refused next time.
    pub fn verify<M: Message>(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Verified<M>, VerifyError> {
        let envelope = decode_fresh::<M>(bytes, now_ms, &self.freshness)?;
        self.check_sender(&envelope.sender, M::KIND, envelope.nonce)?;
        let verified = open(envelope)?;
        self.remember_accepted(&verified, now_ms);
        Ok(verified)
    }

    /// Admits a message [`authenticate`] checked already: the sender must be allowed to send
    /// its kind and its nonce must be new; on success the nonce is remembered. With
    /// [`authenticate`] this is [`Verifier::verify`] split in two, so a receiver can check
    /// signatures without holding whatever guards its verifier.
    pub fn admit<M: Message>(
        &mut self,
        verified: Verified<M>,
        now_ms: u64,
    ) -> Result<Verified<M>, VerifyError> {
        self.check_sender(&verified.sender, M::KIND, verified.nonce)?;
        self.remember_accepted(&verified, now_ms);
        Ok(verified)
    }

    /// Refuses a sender the policy does not allow to send `kind`, or a nonce not above the
    /// last one accepted from it.
    fn check_sender(
        &self,
        sender: &Address,
        kind: MessageKind,
        nonce: u64,
    ) -> Result<(), VerifyError> {
        if !self.policy.allows(kind, sender) {
            return Err(VerifyError::UnknownSender {
                sender: *sender,
                kind,
            });
        }
        if let Some(&(last, _)) = self.last_nonce.get(sender)
            && nonce <= last
        {
            return Err(VerifyError::Replayed {
                sender: *sender,
                nonce,
                last,
            });
        }
        Ok(())
    }

    fn remember_accepted<M>(&mut self, verified: &Verified<M>, now_ms: u64) {
        self.forget_expired(now_ms);
        self.last_nonce
            .insert(verified.sender, (verified.nonce, verified.timestamp_ms));
    }
}

/// Checks everything about `bytes` as a message of type `M` received at `now_ms` that needs no
/// memory of earlier messages: the envelope, the kind, freshness, the signature and the
/// payload. [`Verifier::admit`] does the rest (sender policy, replays).
pub fn authenticate<M: Message>(
    bytes: &[u8],
    now_ms: u64,
    freshness: &Freshness,
) -> Result<Verified<M>, VerifyError> {
    open(decode_fresh::<M>(bytes, now_ms, freshness)?)
}

/// Decodes an envelope of `M`'s kind whose timestamp is fresh at `now_ms`.
fn decode_fresh<M: Message>(
    bytes: &[u8],
    now_ms: u64,
    freshness: &Freshness,
) -> Result<Envelope, VerifyError> {
    let envelope = Envelope::from_bytes(bytes).map_err(VerifyError::Malformed)?;
    if envelope.kind != M::KIND {
        return Err(VerifyError::WrongKind {
            expected: M::KIND,
            got: envelope.kind,
        });
    }
    if envelope.timestamp_ms.saturating_add(freshness.max_age_ms) < now_ms {
        return Err(VerifyError::Stale {
            age_ms: now_ms - envelope.timestamp_ms,
        });
    }
    if envelope.timestamp_ms > now_ms.saturating_add(freshness.max_future_ms) {
        return Err(VerifyError::FromTheFuture {
            ahead_ms: envelope.timestamp_ms - now_ms,
        });
    }
    Ok(envelope)
}

/// Recovers the signer (which must be the claimed sender) and parses the payload.
fn open<M: Message>(envelope: Envelope) -> Result<Verified<M>, VerifyError> {
    let public_key = match envelope.recover_signer_key() {
        Some((signer, key)) if signer == envelope.sender => key,
        _ => {
            return Err(VerifyError::BadSignature {
                claimed: envelope.sender,
            });
        }
    };
    let message: M =
        serde_json::from_str(&envelope.payload).map_err(|e| VerifyError::MalformedPayload {
            kind: envelope.kind,
            reason: e.to_string(),
        })?;
    Ok(Verified {
        sender: envelope.sender,
        nonce: envelope.nonce,
        timestamp_ms: envelope.timestamp_ms,
        public_key,
        message,
    })
}
