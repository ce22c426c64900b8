//! Node and oracle identities: a secp256k1 key whose EVM address is the participant's name on
//! chain, in heartbeats and in every signed message.

use alloy_primitives::{Address, B256, Signature};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

/// A participant's signing key.
#[derive(Clone)]
pub struct Identity {
    signer: PrivateKeySigner,
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
        Self {
            signer: PrivateKeySigner::random(),
        }
    }

    /// The key with secret `bytes`.
    pub fn from_secret(bytes: &[u8; 32]) -> Result<Self, IdentityError> {
        PrivateKeySigner::from_bytes(&B256::from(*bytes))
            .map(|signer| Self { signer })
            .map_err(|_| IdentityError::InvalidKey)
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
        self.signer
            .sign_message_sync(message)
            .map_err(|e| IdentityError::Signing(e.to_string()))
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

    #[test]
    fn rejects_invalid_secret() {
        assert!(Identity::from_secret(&[0u8; 32]).is_err());
        assert!(Identity::from_secret(&[0xff; 32]).is_err());
    }
}
