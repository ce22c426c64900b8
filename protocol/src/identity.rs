//! Node and oracle identities: a secp256k1 key whose EVM address is the participant's name on
//! chain, in heartbeats and in every signed message.

use std::sync::LazyLock;

use alloy_primitives::{Address, B256, Signature, U256, eip191_hash_message};
use alloy_signer_local::PrivateKeySigner;
use secp256k1::{Message, Secp256k1, SecretKey, SignOnly};

/// libsecp256k1's signing tables, built once: every message a node or an oracle sends is
/// signed (a simulated fleet of 10,000 nodes signs 1,000 heartbeats a second), and
/// libsecp256k1 signs several times faster than alloy's k256 — with the same RFC 6979 nonces,
/// so the same signatures.
static SIGNING: LazyLock<Secp256k1<SignOnly>> = LazyLock::new(Secp256k1::signing_only);

/// A participant's signing key.
#[derive(Clone)]
pub struct Identity {
    signer: PrivateKeySigner,
    secret: SecretKey,
}

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The 32 bytes are not a valid secp256k1 secret (zero or above the curve order).
    #[error("not a valid secp256k1 private key")]
    InvalidKey,
    /// Signing failed inside the signer.
    #[error("signing failed: {0}")]
    Signing(String),
}

impl Identity {
    /// A fresh random key from the operating system's RNG.
    pub fn generate() -> Self {
        loop {
            // A random 32 bytes is a valid secret but for a chance of about 2^-128.
            if let Ok(identity) = Self::from_secret(&rand::random()) {
                return identity;
            }
        }
    }

    /// The key with secret `bytes`.
    pub fn from_secret(bytes: &[u8; 32]) -> Result<Self, IdentityError> {
        let signer = PrivateKeySigner::from_bytes(&B256::from(*bytes))
            .map_err(|_| IdentityError::InvalidKey)?;
        let secret = SecretKey::from_byte_array(*bytes).map_err(|_| IdentityError::InvalidKey)?;
        Ok(Self { signer, secret })
    }

    /// The secret, for writing a key file.
    pub fn secret(&self) -> [u8; 32] {
        self.signer.to_bytes().0
    }

    /// The EVM address: last 20 bytes of keccak256 of the public key.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The signer, for sending transactions with alloy.
    pub fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }

    /// EIP-191 personal-sign over `message` (what wallets show as "Sign message").
    pub fn sign_personal(&self, message: &[u8]) -> Result<Signature, IdentityError> {
        let digest = Message::from_digest(eip191_hash_message(message).0);
        let (recovery_id, compact) = SIGNING
            .sign_ecdsa_recoverable(digest, &self.secret)
            .serialize_compact();
        let odd = match i32::from(recovery_id) {
            0 => false,
            1 => true,
            other => {
                return Err(IdentityError::Signing(format!(
                    "recovery id {other} has no EIP-191 form"
                )));
            }
        };
        Ok(Signature::new(
            U256::from_be_slice(&compact[..32]),
            U256::from_be_slice(&compact[32..]),
            odd,
        ))
    }
}

impl std::fmt::Debug for Identity {
    /// Shows the address only; the secret never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("address", &self.address())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_key_has_known_address() {
        // Hardhat's first development account.
        let secret: [u8; 32] = crate::hex::decode(
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )
        .unwrap();
        let id = Identity::from_secret(&secret).unwrap();
        assert_eq!(
            id.address().to_checksum(None),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        assert_eq!(id.secret(), secret);
        assert!(!format!("{id:?}").contains("ac0974"));
    }

    proptest::proptest! {
        #[test]
        fn signs_what_alloy_signs(secret in proptest::prelude::any::<[u8; 32]>(), message in proptest::collection::vec(0u8.., 0..100)) {
            use alloy_signer::SignerSync;
            let Ok(identity) = Identity::from_secret(&secret) else { return Ok(()) };
            let ours = identity.sign_personal(&message).unwrap();
            proptest::prop_assert_eq!(ours, identity.signer().sign_message_sync(&message).unwrap());
        }
    }

    #[test]
    fn rejects_invalid_secret() {
        assert!(Identity::from_secret(&[0u8; 32]).is_err());
        assert!(Identity::from_secret(&[0xff; 32]).is_err());
    }
}
