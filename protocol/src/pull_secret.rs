//! Registry credentials for one workload, sealed to the node that runs it ([`crate::sealed`]):
//! they travel in the deploy command over MQTT, and only that node can open them, only for
//! that job.

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::Identity;
use crate::sealed::{self, PUBLIC_KEY_LEN, SealedError};

/// Credentials as the CSP gives them: a user and password (or access token used as one), or
/// a registry identity token sent as a bearer token.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum PullCredentials {
    /// HTTP Basic, as `docker login` uses.
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// A bearer token.
    Token {
        /// The token.
        token: String,
    },
}

impl std::fmt::Debug for PullCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Self::Token { .. } => f.write_str("Token(<redacted>)"),
        }
    }
}

/// Credentials for the registry of one workload's image, sealed to its node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PullSecret {
    /// The registry they are for (`host[:port]`, as the image reference names it).
    pub registry: String,
    /// `0x` hex of the sealed JSON of [`PullCredentials`].
    pub sealed: String,
}

/// Why a pull secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullSecretError {
    /// Sealing or opening failed.
    #[error("the image pull secret cannot be opened by this node: {0}")]
    Sealed(#[from] SealedError),
    /// What was sealed is not credentials.
    #[error("the image pull secret holds no credentials")]
    NotCredentials,
}

/// What a secret for `node` and `job` is sealed for: another node or job cannot use it.
fn context(node: Address, job: u64) -> Vec<u8> {
    format!("r1 pull secret for job {job} on node {node}").into_bytes()
}

impl PullSecret {
    /// Seals `credentials` for `registry` to `node` (its address and compressed public key),
    /// for the workloads of `job`.
    pub fn seal(
        registry: &str,
        credentials: &PullCredentials,
        node: (Address, &[u8; PUBLIC_KEY_LEN]),
        job: u64,
    ) -> Result<Self, PullSecretError> {
        let plaintext =
            serde_json::to_vec(credentials).map_err(|_| PullSecretError::NotCredentials)?;
        let sealed = sealed::seal(node.1, &context(node.0, job), &plaintext)?;
        Ok(Self {
            registry: registry.to_owned(),
            sealed: crate::hex::encode(&sealed),
        })
    }

    /// The credentials, opened with this node's `identity` for `job`.
    pub fn open(&self, identity: &Identity, job: u64) -> Result<PullCredentials, PullSecretError> {
        let bytes = crate::hex::decode_vec(&self.sealed).ok_or(SealedError::Malformed)?;
        let plaintext = sealed::open(identity, &context(identity.address(), job), &bytes)?;
        serde_json::from_slice(&plaintext).map_err(|_| PullSecretError::NotCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_its_node_opens_it_and_only_for_its_job() {
        let node = Identity::generate();
        let key = sealed::public_key(&node);
        let credentials = PullCredentials::Basic {
            username: "acme".into(),
            password: "s3cret".into(),
        };
        let secret = PullSecret::seal("ghcr.io", &credentials, (node.address(), &key), 7).unwrap();
        assert!(!secret.sealed.contains("s3cret"));
        assert_eq!(secret.open(&node, 7).unwrap(), credentials);
        assert!(secret.open(&node, 8).is_err(), "another job");
        assert!(
            secret.open(&Identity::generate(), 7).is_err(),
            "another node"
        );
        assert!(!format!("{credentials:?}").contains("s3cret"));
    }
}
