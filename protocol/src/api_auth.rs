//! Request signing for the Deeploy API: every request carries the CSP's address, a millisecond
//! timestamp and an EIP-191 signature over the request, so the oracle knows who asks and that
//! nobody changed the request on the way.
//!
//! It is here, beside the envelope and the broker credentials, because it is a signed text that
//! two binaries must agree on: `r1ctl` signs, the oracle verifies (and re-verifies requests other
//! oracles relay). Neither needs the other's code for it.
//!
//! The signed text is
//! `"r1.deeploy.v1\n" + METHOD + "\n" + PATH?QUERY + "\n" + timestamp + "\n" + keccak256(body)`,
//! the hash as `0x` + 64 lowercase hex digits. Requests older than [`MAX_AGE_MS`] or more than
//! [`MAX_AHEAD_MS`] in the future are refused; within the window, an identical request can be
//! replayed, which is harmless for applies and reads, and [`ReplayGuard`] refuses for deletes.
//! Signatures must be in low-s form, so each request has exactly one valid signature.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Mutex;

use crate::identity::{Identity, IdentityError};
use alloy_primitives::{Address, B256, Signature, keccak256};

/// Domain line of the signed text, so no other r1 signature can pass for a request.
pub const DOMAIN: &str = "r1.deeploy.v1";
/// Header with the signer's EVM address.
pub const ADDRESS_HEADER: &str = "x-r1-address";
/// Header with the signing time, in milliseconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "x-r1-timestamp";
/// Header with the signature: `0x` + 130 lowercase hex digits (r, s, v with v = 27 or 28).
pub const SIGNATURE_HEADER: &str = "x-r1-signature";
/// Oldest request accepted.
pub const MAX_AGE_MS: u64 = 60_000;
/// Furthest a request's timestamp may be ahead of the oracle's clock.
pub const MAX_AHEAD_MS: u64 = 5_000;

/// The text a request's signature covers.
pub fn signing_text(method: &str, path_and_query: &str, timestamp_ms: u64, body: &[u8]) -> String {
    format!(
        "{DOMAIN}\n{method}\n{path_and_query}\n{timestamp_ms}\n{}",
        crate::hex::encode(keccak256(body).as_slice())
    )
}

/// The three authentication headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// [`ADDRESS_HEADER`]: the signer's checksummed address.
    pub address: String,
    /// [`TIMESTAMP_HEADER`].
    pub timestamp: String,
    /// [`SIGNATURE_HEADER`].
    pub signature: String,
}

/// Signs a request as `identity` at `timestamp_ms`.
pub fn sign(
    identity: &Identity,
    method: &str,
    path_and_query: &str,
    timestamp_ms: u64,
    body: &[u8],
) -> Result<SignedHeaders, IdentityError> {
    let text = signing_text(method, path_and_query, timestamp_ms, body);
    let signature = identity.sign_personal(text.as_bytes())?;
    Ok(SignedHeaders {
        address: identity.address().to_checksum(None),
        timestamp: timestamp_ms.to_string(),
        signature: crate::hex::encode(&signature.as_bytes()),
    })
}

/// The authentication headers as received; any may be missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// [`ADDRESS_HEADER`].
    pub address: Option<&'a str>,
    /// [`TIMESTAMP_HEADER`].
    pub timestamp: Option<&'a str>,
    /// [`SIGNATURE_HEADER`].
    pub signature: Option<&'a str>,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A header is absent: the request is not signed.
    #[error("header {0} is missing; requests must be signed with the CSP key")]
    Missing(&'static str),
    /// A header cannot be read.
    #[error("header {header} is malformed: {reason}")]
    Malformed {
        /// The header.
        header: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The signature recovers to no key.
    #[error("the signature is not valid")]
    BadSignature,
    /// The signature is someone else's, or covers a different request.
    #[error("the signature is by {signer}, not {claimed}, or the request was altered")]
    AddressMismatch {
        /// The address in the header.
        claimed: Address,
        /// The address the signature recovers to.
        signer: Address,
    },
    /// Signed too long ago.
    #[error("the request was signed {age_ms} ms ago; at most {MAX_AGE_MS} ms is accepted")]
    Stale {
        /// How long ago.
        age_ms: u64,
    },
    /// Signed in the future (a clock is off).
    #[error("the request is dated {ahead_ms} ms in the future; check the clock")]
    Future {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// An identical request was seen before.
    #[error("this exact request was already received; sign a new one")]
    Replayed,
}

impl AuthError {
    /// A short machine-readable code for the response body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) => "unsigned",
            Self::Malformed { .. } => "malformed_credentials",
            Self::BadSignature => "bad_signature",
            Self::AddressMismatch { .. } => "address_mismatch",
            Self::Stale { .. } => "stale",
            Self::Future { .. } => "future",
            Self::Replayed => "replayed",
        }
    }
}

/// An authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Who signed it.
    pub signer: Address,
    /// When it was signed.
    pub timestamp_ms: u64,
    /// keccak256 of the signed text: the request's identity, whatever the signature's encoding.
    pub request: B256,
}

/// The signer of a request, once the headers, the time window and the signature check out.
pub fn verify(
    credentials: &Credentials<'_>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_ms: u64,
) -> Result<Verified, AuthError> {
    let address = credentials
        .address
        .ok_or(AuthError::Missing(ADDRESS_HEADER))?;
    let timestamp = credentials
        .timestamp
        .ok_or(AuthError::Missing(TIMESTAMP_HEADER))?;
    let signature = credentials
        .signature
        .ok_or(AuthError::Missing(SIGNATURE_HEADER))?;
    let claimed = parse_address(address)?;
    let timestamp_ms = parse_timestamp(timestamp)?;
    let signature = parse_signature(signature)?;
    if now_ms > timestamp_ms && now_ms - timestamp_ms > MAX_AGE_MS {
        return Err(AuthError::Stale {
            age_ms: now_ms - timestamp_ms,
        });
    }
    if timestamp_ms > now_ms && timestamp_ms - now_ms > MAX_AHEAD_MS {
        return Err(AuthError::Future {
            ahead_ms: timestamp_ms - now_ms,
        });
    }
    let text = signing_text(method, path_and_query, timestamp_ms, body);
    let signer = crate::recovery::recover_personal(&signature, text.as_bytes())
        .ok_or(AuthError::BadSignature)?
        .address;
    if signer != claimed {
        return Err(AuthError::AddressMismatch { claimed, signer });
    }
    Ok(Verified {
        signer,
        timestamp_ms,
        request: keccak256(text.as_bytes()),
    })
}

fn parse_address(text: &str) -> Result<Address, AuthError> {
    let malformed = |reason| AuthError::Malformed {
        header: ADDRESS_HEADER,
        reason,
    };
    let digits = text
        .strip_prefix("0x")
        .ok_or(malformed("expected 0x followed by 40 hex digits"))?;
    if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("expected 0x followed by 40 hex digits"));
    }
    let mixed_case = digits.bytes().any(|b| b.is_ascii_lowercase())
        && digits.bytes().any(|b| b.is_ascii_uppercase());
    if mixed_case {
        // Mixed case is an EIP-55 checksum: a typo must not name another address.
        return Address::parse_checksummed(text, None)
            .map_err(|_| malformed("the EIP-55 checksum does not match"));
    }
    Address::from_str(text).map_err(|_| malformed("expected 0x followed by 40 hex digits"))
}

fn parse_timestamp(text: &str) -> Result<u64, AuthError> {
    let malformed = AuthError::Malformed {
        header: TIMESTAMP_HEADER,
        reason: "expected milliseconds since the Unix epoch",
    };
    // Digits only: "+5" or " 5" would sign differently yet parse alike.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed);
    }
    text.parse().map_err(|_| malformed)
}

fn parse_signature(text: &str) -> Result<Signature, AuthError> {
    let malformed = AuthError::Malformed {
        header: SIGNATURE_HEADER,
        reason: "expected 0x followed by 130 lowercase hex digits with v = 27 or 28",
    };
    let raw = crate::hex::decode::<65>(text).ok_or(malformed.clone())?;
    // Only Electrum v values, so each signature has one accepted form.
    if !matches!(raw[64], 27 | 28) {
        return Err(malformed);
    }
    let signature = Signature::from_raw_array(&raw).map_err(|_| malformed.clone())?;
    // Only low s (EIP-2): (r, n - s) with the other parity signs the same text, and one request
    // must have one accepted signature.
    if signature.normalize_s().is_some() {
        return Err(AuthError::Malformed {
            header: SIGNATURE_HEADER,
            reason: "s must be in the lower half of the curve order (EIP-2)",
        });
    }
    Ok(signature)
}

/// Remembers authenticated requests for the time window so an identical one is refused:
/// deletes are not to be replayed by whoever saw them pass.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<HashSet<(Address, u64, B256)>>,
}

impl ReplayGuard {
    /// Records the request; `Err(Replayed)` when the same one was recorded within the window.
    pub fn first_use(&self, request: &Verified, now_ms: u64) -> Result<(), AuthError> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Past the window a replay fails the time check anyway.
        let horizon = now_ms.saturating_sub(MAX_AGE_MS);
        seen.retain(|(_, ts, _)| *ts >= horizon);
        if seen.insert((request.signer, request.timestamp_ms, request.request)) {
            Ok(())
        } else {
            Err(AuthError::Replayed)
        }
    }

    /// Requests remembered now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
