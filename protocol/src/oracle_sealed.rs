//! Secret values a CSP seals to every oracle (`r1ctl secret seal`), so that they can sit in a
//! manifest, a Git repository or the oracles' stores: each oracle opens its own copy when it
//! deploys and reseals the value to the node that runs the workload ([`crate::secrets`]).
//!
//! A copy is bound to the namespace it was sealed for, so a tenant who copies another tenant's
//! sealed value into a job of their own gets nothing out of it.

use std::collections::BTreeMap;

use alloy_primitives::Address;

use crate::Identity;
use crate::sealed::{self, PUBLIC_KEY_LEN, SealedError};

/// Most oracles one value is sealed to.
pub const MAX_ORACLES: usize = 64;
/// Largest secret value.
pub const MAX_VALUE: usize = 16 << 10;
/// Shortest hex text of one sealed copy (an empty value).
pub const MIN_COPY_HEX: usize = 2 + 2 * (1 + PUBLIC_KEY_LEN + 12 + 16);
/// Longest hex text of one sealed copy: `0x`, then version, ephemeral key, nonce, value, tag.
pub const MAX_COPY_HEX: usize = 2 + 2 * (1 + PUBLIC_KEY_LEN + 12 + MAX_VALUE + 16);

/// Why a value cannot be sealed to the oracles or opened by one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OracleSealedError {
    /// No oracle to seal to.
    #[error("no oracle key to seal to")]
    NoOracles,
    /// More oracles than [`MAX_ORACLES`].
    #[error("{0} oracles; a value is sealed to at most {MAX_ORACLES}")]
    TooManyOracles(usize),
    /// The value is over [`MAX_VALUE`].
    #[error("the secret is {0} bytes; at most {MAX_VALUE} are sealed")]
    TooLarge(usize),
    /// An oracle's announced key is not the key of its address.
    #[error("the key announced for oracle {0} is not its key")]
    WrongKey(Address),
    /// There is no copy for this oracle.
    #[error("not sealed to oracle {0}; seal the value again with `r1ctl secret seal`")]
    NotSealedTo(Address),
    /// This oracle's copy does not open (sealed for another namespace, or altered).
    #[error("oracle {oracle} cannot open its copy: {reason}")]
    Refused {
        /// The oracle.
        oracle: Address,
        /// Why.
        reason: SealedError,
    },
}

/// What a value for `namespace` is sealed for.
fn context(namespace: &str) -> Vec<u8> {
    format!("r1 secret value for namespace {namespace}").into_bytes()
}

/// Seals `value` to each of `oracles` (address and compressed public key), for `namespace`;
/// every key must be its address's.
pub fn seal_for_oracles(
    value: &[u8],
    oracles: &[(Address, [u8; PUBLIC_KEY_LEN])],
    namespace: &str,
) -> Result<BTreeMap<Address, String>, OracleSealedError> {
    if oracles.is_empty() {
        return Err(OracleSealedError::NoOracles);
    }
    if oracles.len() > MAX_ORACLES {
        return Err(OracleSealedError::TooManyOracles(oracles.len()));
    }
    if value.len() > MAX_VALUE {
        return Err(OracleSealedError::TooLarge(value.len()));
    }
    let context = context(namespace);
    oracles
        .iter()
        .map(|(address, key)| {
            if sealed::address_of(key).ok() != Some(*address) {
                return Err(OracleSealedError::WrongKey(*address));
            }
            let copy = sealed::seal(key, &context, value)
                .map_err(|_| OracleSealedError::WrongKey(*address))?;
            Ok((*address, crate::hex::encode(&copy)))
        })
        .collect()
}

/// The value in `copies` sealed to `identity`, for `namespace`.
pub fn open_as_oracle(
    copies: &BTreeMap<Address, String>,
    identity: &Identity,
    namespace: &str,
) -> Result<Vec<u8>, OracleSealedError> {
    let oracle = identity.address();
    let copy = copies
        .get(&oracle)
        .ok_or(OracleSealedError::NotSealedTo(oracle))?;
    let refused = |reason| OracleSealedError::Refused { oracle, reason };
    let bytes = crate::hex::decode_vec(copy).ok_or_else(|| refused(SealedError::Malformed))?;
    sealed::open(identity, &context(namespace), &bytes).map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle() -> (Identity, (Address, [u8; PUBLIC_KEY_LEN])) {
        let identity = Identity::generate();
        let entry = (identity.address(), sealed::public_key(&identity));
        (identity, entry)
    }

    #[test]
    fn every_oracle_opens_its_own_copy_in_the_namespace_it_was_sealed_for() {
        let (a, a_key) = oracle();
        let (b, b_key) = oracle();
        let copies = seal_for_oracles(b"hunter2", &[a_key, b_key], "acme").unwrap();
        assert_eq!(copies.len(), 2);
        assert!(copies.values().all(|c| !c.contains("hunter2")));
        assert_eq!(open_as_oracle(&copies, &a, "acme").unwrap(), b"hunter2");
        assert_eq!(open_as_oracle(&copies, &b, "acme").unwrap(), b"hunter2");
        assert!(matches!(
            open_as_oracle(&copies, &a, "mallory"),
            Err(OracleSealedError::Refused { .. })
        ));
        let (stranger, _) = oracle();
        assert_eq!(
            open_as_oracle(&copies, &stranger, "acme"),
            Err(OracleSealedError::NotSealedTo(stranger.address()))
        );
    }

    #[test]
    fn a_key_announced_for_another_address_is_refused() {
        let (_, (a, _)) = oracle();
        let (_, (_, b_key)) = oracle();
        assert_eq!(
            seal_for_oracles(b"x", &[(a, b_key)], "acme"),
            Err(OracleSealedError::WrongKey(a))
        );
    }

    #[test]
    fn limits_hold() {
        let (_, entry) = oracle();
        assert_eq!(
            seal_for_oracles(b"x", &[], "acme"),
            Err(OracleSealedError::NoOracles)
        );
        let big = vec![0u8; MAX_VALUE + 1];
        assert_eq!(
            seal_for_oracles(&big, &[entry], "acme"),
            Err(OracleSealedError::TooLarge(MAX_VALUE + 1))
        );
        let largest = seal_for_oracles(&big[..MAX_VALUE], &[entry], "acme").unwrap();
        assert_eq!(largest[&entry.0].len(), MAX_COPY_HEX);
        let smallest = seal_for_oracles(b"", &[entry], "acme").unwrap();
        assert_eq!(smallest[&entry.0].len(), MIN_COPY_HEX);
    }
}
