//! Broker credentials that prove a key: the MQTT username is the client's lowercase `0x`
//! address and the password a fresh signature by that key, so a broker gate can tell who a
//! client is without a password database.
//!
//! The password is `{timestamp_ms}:{signature}`, the signature an EIP-191 personal-sign over
//! [`signing_text`], which binds the domain, the MQTT client id, the username and the time. A
//! password is accepted for [`MAX_SKEW_MS`] either side of the broker's clock.

use alloy_primitives::{Address, Signature};

use crate::identity::{Identity, IdentityError};

/// Domain separator: a broker password can never be mistaken for another signed text.
pub const DOMAIN: &str = "r1.mqtt.v1";

/// How far a password's timestamp may be from the broker's clock, either way (5 minutes).
pub const MAX_SKEW_MS: u64 = 300_000;

/// A username and password for an MQTT CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The client's lowercase `0x` address.
    pub username: String,
    /// `{timestamp_ms}:{0x signature}`.
    pub password: String,
}

/// Why a broker refuses credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The username is not a lowercase `0x` address.
    #[error("username is not a lowercase 0x address")]
    Username,
    /// The password is not `{timestamp_ms}:{0x signature}`.
    #[error("password is not {{timestamp_ms}}:{{0x signature}}")]
    Password,
    /// The timestamp is too far from the broker's clock.
    #[error("password timestamp {timestamp_ms} is more than {MAX_SKEW_MS} ms from now ({now_ms})")]
    Stale {
        /// The password's timestamp.
        timestamp_ms: u64,
        /// The broker's clock.
        now_ms: u64,
    },
    /// The signature was not made by the username's key over this client id and time.
    #[error("signature is not by {0}")]
    Signature(Address),
}

/// The text a client signs to log in as `username` with `client_id` at `timestamp_ms`.
pub fn signing_text(client_id: &str, username: &str, timestamp_ms: u64) -> String {
    format!("{DOMAIN}\n{client_id}\n{username}\n{timestamp_ms}")
}

/// Credentials for `identity` connecting as `client_id` at `timestamp_ms`.
pub fn sign(
    identity: &Identity,
    client_id: &str,
    timestamp_ms: u64,
) -> Result<Credentials, IdentityError> {
    let username = crate::hex::encode(identity.address().as_slice());
    let signature =
        identity.sign_personal(signing_text(client_id, &username, timestamp_ms).as_bytes())?;
    Ok(Credentials {
        password: format!(
            "{timestamp_ms}:{}",
            crate::hex::encode(&signature.as_bytes())
        ),
        username,
    })
}

/// The address `username` and `password` prove for `client_id` at the broker's `now_ms`.
pub fn verify(
    client_id: &str,
    username: &str,
    password: &str,
    now_ms: u64,
) -> Result<Address, CredentialError> {
    let address =
        Address::from(crate::hex::decode::<20>(username).ok_or(CredentialError::Username)?);
    let (timestamp, signature) = password.split_once(':').ok_or(CredentialError::Password)?;
    let timestamp_ms: u64 = timestamp.parse().map_err(|_| CredentialError::Password)?;
    if timestamp_ms.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(CredentialError::Stale {
            timestamp_ms,
            now_ms,
        });
    }
    let raw = crate::hex::decode::<65>(signature).ok_or(CredentialError::Password)?;
    if !matches!(raw[64], 27 | 28) {
        return Err(CredentialError::Password);
    }
    let signature = Signature::from_raw_array(&raw).map_err(|_| CredentialError::Password)?;
    let signer = crate::recovery::recover_personal(
        &signature,
        signing_text(client_id, username, timestamp_ms),
    )
    .ok_or(CredentialError::Signature(address))?;
    if signer.address != address {
        return Err(CredentialError::Signature(address));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn a_signed_login_proves_its_key() {
        let identity = Identity::generate();
        let login = sign(&identity, "node-1", NOW).unwrap();
        assert_eq!(
            login.username,
            crate::hex::encode(identity.address().as_slice())
        );
        assert_eq!(
            verify("node-1", &login.username, &login.password, NOW + 1_000),
            Ok(identity.address())
        );
        assert_eq!(
            verify(
                "node-1",
                &login.username,
                &login.password,
                NOW - MAX_SKEW_MS
            ),
            Ok(identity.address())
        );
    }

    #[test]
    fn stale_future_or_rebound_logins_are_refused() {
        let identity = Identity::generate();
        let login = sign(&identity, "node-1", NOW).unwrap();
        let late = NOW + MAX_SKEW_MS + 1;
        assert!(matches!(
            verify("node-1", &login.username, &login.password, late),
            Err(CredentialError::Stale { .. })
        ));
        assert!(matches!(
            verify(
                "node-1",
                &login.username,
                &login.password,
                NOW - MAX_SKEW_MS - 1
            ),
            Err(CredentialError::Stale { .. })
        ));
        // Another client id, another user, or a changed timestamp: the signature no longer fits.
        let other = Identity::generate();
        let other_user = crate::hex::encode(other.address().as_slice());
        assert_eq!(
            verify("node-2", &login.username, &login.password, NOW),
            Err(CredentialError::Signature(identity.address()))
        );
        assert_eq!(
            verify("node-1", &other_user, &login.password, NOW),
            Err(CredentialError::Signature(other.address()))
        );
        let shifted = login
            .password
            .replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_eq!(
            verify("node-1", &login.username, &shifted, NOW),
            Err(CredentialError::Signature(identity.address()))
        );
    }

    #[test]
    fn malformed_logins_are_refused() {
        let identity = Identity::generate();
        let login = sign(&identity, "c", NOW).unwrap();
        let upper = login.username.to_uppercase().replacen("0X", "0x", 1);
        assert_eq!(
            verify("c", &upper, &login.password, NOW),
            Err(CredentialError::Username)
        );
        let signature = login.password.split_once(':').unwrap().1;
        for password in [
            String::new(),
            "secret".to_owned(),
            format!("{NOW}:0x00"),
            format!("x:{signature}"),
            format!("{NOW}:{}", signature.to_uppercase()),
        ] {
            assert_eq!(
                verify("c", &login.username, &password, NOW),
                Err(CredentialError::Password),
                "{password:?}"
            );
        }
    }
}
