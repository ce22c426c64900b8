//! A node's libp2p identity is its r1 identity: the libp2p keypair is made from the same
//! secp256k1 secret, so a peer id names the same EVM address the oracles and the chain know.
//!
//! A secp256k1 peer id inlines the public key (identity multihash of its protobuf encoding),
//! so the address is read back from the peer id alone, with no handshake or lookup:
//! keccak256 of the 64-byte uncompressed key, last 20 bytes — as r1-protocol derives it.

use alloy_primitives::{Address, keccak256};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey, secp256k1};
use r1_protocol::Identity;

/// Multihash code of the identity hash: the digest is the input itself.
const IDENTITY_MULTIHASH: u64 = 0x00;

/// Why a node key cannot become a libp2p keypair.
#[derive(Debug, thiserror::Error)]
#[error("the node key is not a valid secp256k1 secret for libp2p")]
pub struct KeyError;

/// The libp2p keypair carrying `identity`'s secp256k1 secret.
pub fn keypair(identity: &Identity) -> Result<Keypair, KeyError> {
    let secret = secp256k1::SecretKey::try_from_bytes(identity.secret()).map_err(|_| KeyError)?;
    Ok(Keypair::from(secp256k1::Keypair::from(secret)))
}

/// The peer id of `identity`.
pub fn peer_id(identity: &Identity) -> Result<PeerId, KeyError> {
    Ok(keypair(identity)?.public().to_peer_id())
}

/// The secp256k1 public key a peer id inlines; `None` for other key types or hashed ids.
pub fn secp256k1_key(peer: &PeerId) -> Option<secp256k1::PublicKey> {
    let multihash = peer.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH {
        return None;
    }
    PublicKey::try_decode_protobuf(multihash.digest())
        .ok()?
        .try_into_secp256k1()
        .ok()
}

/// The EVM address of a secp256k1 public key.
pub fn address_of_key(key: &secp256k1::PublicKey) -> Address {
    let uncompressed = key.to_bytes_uncompressed();
    Address::from_slice(&keccak256(&uncompressed[1..])[12..])
}

/// The EVM address behind `peer`, or `None` when the peer id does not carry a secp256k1 key
/// (ed25519, RSA or hashed peer ids).
pub fn address_of(peer: &PeerId) -> Option<Address> {
    secp256k1_key(peer).map(|key| address_of_key(&key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hardhat_account_zero() {
        let mut secret = [0u8; 32];
        let hex = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        let identity = Identity::from_secret(&secret).unwrap();
        let peer = peer_id(&identity).unwrap();
        assert_eq!(
            address_of(&peer).unwrap().to_checksum(None),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        // Secp256k1 peer ids are the inlined key: base58 "16Uiu2…".
        assert!(peer.to_base58().starts_with("16Uiu2"), "{peer}");
    }

    #[test]
    fn other_key_types_have_no_address() {
        let ed25519 = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(address_of(&ed25519), None);
        assert_eq!(address_of(&PeerId::random()), None);
    }

    proptest! {
        #[test]
        fn peer_id_maps_back_to_the_address(secret in any::<[u8; 32]>()) {
            // About one in 2^128 secrets is out of range; those are skipped.
            if let Ok(identity) = Identity::from_secret(&secret) {
                let peer = peer_id(&identity).unwrap();
                prop_assert_eq!(address_of(&peer), Some(identity.address()));
                let keypair = keypair(&identity).unwrap();
                prop_assert_eq!(keypair.public().to_peer_id(), peer);
            }
        }
    }
}
