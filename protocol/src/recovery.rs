//! Who signed: the public key and address behind a secp256k1 signature, recovered with
//! libsecp256k1.
//!
//! Every message an oracle hears is checked this way (10,000 nodes heartbeating every 10 s
//! is 1,000 recoveries a second per oracle), as are CSTORE entries, broker logins and API
//! requests. alloy's recovery (k256) recovers the key and then verifies the signature against
//! it, two multiplications where one suffices: 278 µs a heartbeat against 45 µs here (see
//! `make bench`, oracle intake). Both accept the same signatures and find the same signer; a
//! property test below holds them to it.

use std::sync::LazyLock;

use alloy_primitives::{Address, B256, Signature, eip191_hash_message, keccak256};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, Secp256k1, VerifyOnly};

/// libsecp256k1's verification tables, built once.
static CONTEXT: LazyLock<Secp256k1<VerifyOnly>> = LazyLock::new(Secp256k1::verification_only);

/// A signer found from its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signer {
    /// Its EVM address.
    pub address: Address,
    /// Its compressed public key: what secrets meant for it are sealed to.
    pub public_key: [u8; crate::sealed::PUBLIC_KEY_LEN],
}

/// The signer of `prehash` (a 32-byte digest), or `None` when the signature recovers to no key.
pub fn recover_prehash(signature: &Signature, prehash: &B256) -> Option<Signer> {
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&signature.r().to_be_bytes::<32>());
    compact[32..].copy_from_slice(&signature.s().to_be_bytes::<32>());
    let recovery_id = RecoveryId::from_u8_masked(u8::from(signature.v()));
    let recoverable = RecoverableSignature::from_compact(&compact, recovery_id).ok()?;
    let key = CONTEXT
        .recover_ecdsa(Message::from_digest(prehash.0), &recoverable)
        .ok()?;
    let uncompressed = key.serialize_uncompressed();
    Some(Signer {
        address: Address::from_slice(&keccak256(&uncompressed[1..])[12..]),
        public_key: key.serialize(),
    })
}

/// The signer of `message` signed as an EIP-191 personal message (what wallets and
/// [`crate::Identity::sign_personal`] sign).
pub fn recover_personal(signature: &Signature, message: impl AsRef<[u8]>) -> Option<Signer> {
    recover_prehash(signature, &eip191_hash_message(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;
    use alloy_primitives::U256;
    use proptest::prelude::*;

    /// The curve order: a signature's `s` and `n - s` are the same signature (malleability).
    const ORDER: U256 = U256::from_be_bytes([
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ]);

    fn identity(secret: [u8; 32]) -> Option<Identity> {
        Identity::from_secret(&secret).ok()
    }

    proptest! {
        #[test]
        fn finds_the_signer_alloy_finds(
            secret in any::<[u8; 32]>(),
            message in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let Some(identity) = identity(secret) else { return Ok(()) };
            let signature = identity.sign_personal(&message).unwrap();
            let found = recover_personal(&signature, &message).unwrap();
            prop_assert_eq!(found.address, identity.address());
            let key = signature.recover_from_msg(&message).unwrap().to_encoded_point(true);
            prop_assert_eq!(&found.public_key[..], key.as_bytes());
            // The high-s twin of the signature recovers the same key, with both libraries.
            let twin = Signature::new(signature.r(), ORDER - signature.s(), !signature.v());
            prop_assert_eq!(recover_personal(&twin, &message), Some(found));
            prop_assert_eq!(twin.recover_address_from_msg(&message).unwrap(), identity.address());
        }

        #[test]
        fn a_changed_message_or_signature_names_someone_else(
            secret in any::<[u8; 32]>(),
            message in proptest::collection::vec(any::<u8>(), 1..200),
            flip in any::<usize>(),
        ) {
            let Some(identity) = identity(secret) else { return Ok(()) };
            let signature = identity.sign_personal(&message).unwrap();
            let mut changed = message.clone();
            changed[flip % message.len()] ^= 1;
            let other = recover_personal(&signature, &changed).map(|s| s.address);
            prop_assert_ne!(other, Some(identity.address()));
            let wrong_parity = Signature::new(signature.r(), signature.s(), !signature.v());
            let other = recover_personal(&wrong_parity, &message).map(|s| s.address);
            prop_assert_ne!(other, Some(identity.address()));
        }
    }

    #[test]
    fn out_of_range_signatures_recover_nothing() {
        let digest = B256::repeat_byte(7);
        for (r, s) in [
            (U256::ZERO, U256::from(1)),
            (U256::from(1), U256::ZERO),
            (ORDER, U256::from(1)),
            (U256::from(1), ORDER),
            (U256::MAX, U256::MAX),
        ] {
            for parity in [false, true] {
                assert_eq!(
                    recover_prehash(&Signature::new(r, s, parity), &digest),
                    None
                );
            }
        }
    }
}
