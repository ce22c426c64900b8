//! Secrets sealed to one participant's key (ECIES on secp256k1): only the holder of the
//! recipient's key can open them, so they may travel over MQTT and sit in stored manifests.
//!
//! A fresh ephemeral key agrees a secret with the recipient's public key (ECDH); the AES-256
//! key is SHA-256 over that secret, both public keys and a context (ANSI X9.63's KDF with one
//! block); the plaintext is sealed with AES-256-GCM under a random nonce, the context as
//! associated data. Sealed form: version byte, ephemeral public key (33 bytes, compressed),
//! nonce (12), ciphertext with its tag. The context names what the secret is for and whom
//! (e.g. a job and a node), so a sealed value cannot be replayed elsewhere.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::{ProjectivePoint, PublicKey, SecretKey};
use sha2::{Digest, Sha256};

use crate::Identity;

/// First byte of every sealed value.
const VERSION: u8 = 1;
/// Compressed secp256k1 public key.
pub const PUBLIC_KEY_LEN: usize = 33;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Largest plaintext sealed: a workload's secret env values and registry credentials together.
pub const MAX_PLAINTEXT: usize = 64 << 10;

/// Why a value cannot be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedError {
    /// The recipient's public key is not a point on the curve.
    #[error("not a secp256k1 public key")]
    PublicKey,
    /// The plaintext is over [`MAX_PLAINTEXT`].
    #[error("secret larger than {MAX_PLAINTEXT} bytes")]
    TooLarge,
    /// The value is not in the sealed form.
    #[error("not a sealed value")]
    Malformed,
    /// The value was sealed to another key or context, or altered.
    #[error("sealed to another key or for another use, or altered")]
    Refused,
}

/// The compressed public key of `identity` (what others seal to).
pub fn public_key(identity: &Identity) -> [u8; PUBLIC_KEY_LEN] {
    let point = identity
        .signer()
        .credential()
        .verifying_key()
        .to_encoded_point(true);
    let mut out = [0u8; PUBLIC_KEY_LEN];
    out.copy_from_slice(point.as_bytes());
    out
}

/// The address of a compressed public key: what an announced key must match.
pub fn address_of(
    public_key: &[u8; PUBLIC_KEY_LEN],
) -> Result<alloy_primitives::Address, SealedError> {
    let key = PublicKey::from_sec1_bytes(public_key).map_err(|_| SealedError::PublicKey)?;
    let uncompressed = key.to_encoded_point(false);
    let hash = alloy_primitives::keccak256(&uncompressed.as_bytes()[1..]);
    Ok(alloy_primitives::Address::from_slice(&hash[12..]))
}

/// The AES key for ephemeral key `ephemeral`, recipient `recipient` and the shared point.
fn key(shared: &ProjectivePoint, ephemeral: &[u8], recipient: &[u8], context: &[u8]) -> [u8; 32] {
    let shared = shared.to_affine().to_encoded_point(true);
    let mut hasher = Sha256::new();
    hasher.update(&shared.as_bytes()[1..]);
    hasher.update(1u32.to_be_bytes());
    hasher.update(b"r1 sealed v1");
    hasher.update(ephemeral);
    hasher.update(recipient);
    hasher.update(context);
    hasher.finalize().into()
}

/// A fresh random secret key (32 random bytes, drawn again in the vanishing case that they
/// are not a valid scalar).
fn fresh_secret() -> SecretKey {
    loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return key;
        }
    }
}

/// Seals `plaintext` for the holder of `recipient` (compressed public key), for `context`.
pub fn seal(
    recipient: &[u8; PUBLIC_KEY_LEN],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealedError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(SealedError::TooLarge);
    }
    let to = PublicKey::from_sec1_bytes(recipient).map_err(|_| SealedError::PublicKey)?;
    let ephemeral = fresh_secret();
    let ephemeral_public = ephemeral.public_key().to_encoded_point(true);
    let shared = to.to_projective() * *ephemeral.to_nonzero_scalar();
    let cipher =
        Aes256Gcm::new(&key(&shared, ephemeral_public.as_bytes(), recipient, context).into());
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut body = plaintext.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(&nonce.into(), context, &mut body)
        .map_err(|_| SealedError::TooLarge)?;
    let mut out = Vec::with_capacity(1 + PUBLIC_KEY_LEN + NONCE_LEN + body.len() + TAG_LEN);
    out.push(VERSION);
    out.extend_from_slice(ephemeral_public.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend(body);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a value sealed to `identity` for `context`.
pub fn open(identity: &Identity, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealedError> {
    let header = 1 + PUBLIC_KEY_LEN + NONCE_LEN;
    if sealed.len() < header + TAG_LEN || sealed.len() > header + MAX_PLAINTEXT + TAG_LEN {
        return Err(SealedError::Malformed);
    }
    if sealed[0] != VERSION {
        return Err(SealedError::Malformed);
    }
    let ephemeral_bytes = &sealed[1..=PUBLIC_KEY_LEN];
    let ephemeral =
        PublicKey::from_sec1_bytes(ephemeral_bytes).map_err(|_| SealedError::Malformed)?;
    let secret = identity.signer().credential().as_nonzero_scalar();
    let shared = ephemeral.to_projective() * **secret;
    let recipient = public_key(identity);
    let cipher = Aes256Gcm::new(&key(&shared, ephemeral_bytes, &recipient, context).into());
    let nonce: [u8; NONCE_LEN] = sealed[1 + PUBLIC_KEY_LEN..header]
        .try_into()
        .map_err(|_| SealedError::Malformed)?;
    let (body, tag) = sealed[header..].split_at(sealed.len() - header - TAG_LEN);
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| SealedError::Malformed)?;
    let mut plaintext = body.to_vec();
    cipher
        .decrypt_in_place_detached(&nonce.into(), context, &mut plaintext, &tag.into())
        .map_err(|_| SealedError::Refused)?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens_and_only_for_the_same_context() {
        let node = Identity::generate();
        let sealed = seal(&public_key(&node), b"job 7", b"user:pass").unwrap();
        assert_eq!(open(&node, b"job 7", &sealed).unwrap(), b"user:pass");
        assert_eq!(
            open(&node, b"job 8", &sealed),
            Err(SealedError::Refused),
            "another use"
        );
        assert_eq!(
            open(&Identity::generate(), b"job 7", &sealed),
            Err(SealedError::Refused),
            "another key"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open(&node, b"job 7", &altered), Err(SealedError::Refused));
        assert_eq!(
            open(&node, b"job 7", &sealed[..20]),
            Err(SealedError::Malformed)
        );
        assert_ne!(
            seal(&public_key(&node), b"job 7", b"user:pass").unwrap(),
            sealed,
            "a fresh ephemeral key and nonce every time"
        );
    }

    #[test]
    fn an_announced_key_matches_its_address() {
        let node = Identity::generate();
        assert_eq!(address_of(&public_key(&node)).unwrap(), node.address());
        assert_eq!(
            address_of(&[2; PUBLIC_KEY_LEN]).is_ok(),
            PublicKey::from_sec1_bytes(&[2; 33]).is_ok()
        );
        assert_eq!(
            seal(&[0; PUBLIC_KEY_LEN], b"", b"x"),
            Err(SealedError::PublicKey)
        );
        assert_eq!(
            seal(&public_key(&node), b"", &vec![0; MAX_PLAINTEXT + 1]),
            Err(SealedError::TooLarge)
        );
    }
}
