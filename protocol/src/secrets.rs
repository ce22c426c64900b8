//! A workload's secrets — env values and registry credentials — sealed to the node that runs
//! it ([`crate::sealed`]): they travel in the deploy command over MQTT and sit in the node's
//! store sealed; only that node can open them, only for that job.

use std::collections::BTreeMap;

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

/// Credentials for the registry of one workload's image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuth {
    /// The registry they are for (`host[:port]`, as the image reference names it).
    pub registry: String,
    /// The credentials.
    pub credentials: PullCredentials,
}

/// What a workload's secrets open to on its node.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSecrets {
    /// Environment variables whose values are secret, by name.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Credentials for the image's registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryAuth>,
    /// The token of the job's tunnel (a Cloudflare tunnel token, an ngrok auth token or a bore
    /// server's secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_token: Option<String>,
}

impl std::fmt::Debug for WorkloadSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadSecrets")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("registry", &self.registry)
            .field(
                "tunnel_token",
                &self.tunnel_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl WorkloadSecrets {
    /// Whether there is nothing to seal.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && self.registry.is_none() && self.tunnel_token.is_none()
    }
}

/// A workload's secrets, sealed to its node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SealedSecrets {
    /// `0x` hex of the sealed JSON of [`WorkloadSecrets`].
    pub sealed: String,
}

/// Why a workload's secrets cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// Sealing or opening failed.
    #[error("the workload's secrets cannot be opened by this node: {0}")]
    Sealed(#[from] SealedError),
    /// What was sealed is not a workload's secrets.
    #[error("the workload's sealed secrets hold something else")]
    NotSecrets,
}

/// What secrets for `node` and `job` are sealed for: another node or job cannot use them.
fn context(node: Address, job: u64) -> Vec<u8> {
    format!("r1 workload secrets for job {job} on node {node}").into_bytes()
}

impl SealedSecrets {
    /// Seals `secrets` to `node` (its address and compressed public key), for the workloads of
    /// `job`.
    pub fn seal(
        secrets: &WorkloadSecrets,
        node: (Address, &[u8; PUBLIC_KEY_LEN]),
        job: u64,
    ) -> Result<Self, SecretsError> {
        let plaintext = serde_json::to_vec(secrets).map_err(|_| SecretsError::NotSecrets)?;
        let sealed = sealed::seal(node.1, &context(node.0, job), &plaintext)?;
        Ok(Self {
            sealed: crate::hex::encode(&sealed),
        })
    }

    /// The secrets, opened with this node's `identity` for `job`.
    pub fn open(&self, identity: &Identity, job: u64) -> Result<WorkloadSecrets, SecretsError> {
        let bytes = crate::hex::decode_vec(&self.sealed).ok_or(SealedError::Malformed)?;
        let plaintext = sealed::open(identity, &context(identity.address(), job), &bytes)?;
        serde_json::from_slice(&plaintext).map_err(|_| SecretsError::NotSecrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> WorkloadSecrets {
        WorkloadSecrets {
            env: BTreeMap::from([("DB_PASSWORD".into(), "hunter2".into())]),
            registry: Some(RegistryAuth {
                registry: "ghcr.io".into(),
                credentials: PullCredentials::Basic {
                    username: "acme".into(),
                    password: "s3cret".into(),
                },
            }),
            tunnel_token: Some("tunnel-t0ken".into()),
        }
    }

    #[test]
    fn only_its_node_opens_them_and_only_for_its_job() {
        let node = Identity::generate();
        let key = sealed::public_key(&node);
        let sealed = SealedSecrets::seal(&secrets(), (node.address(), &key), 7).unwrap();
        assert!(!sealed.sealed.contains("s3cret"));
        assert_eq!(sealed.open(&node, 7).unwrap(), secrets());
        assert!(sealed.open(&node, 8).is_err(), "another job");
        assert!(
            sealed.open(&Identity::generate(), 7).is_err(),
            "another node"
        );
    }

    #[test]
    fn debug_output_names_but_never_shows_the_values() {
        let shown = format!("{:?}", secrets());
        assert!(shown.contains("DB_PASSWORD") && shown.contains("acme"));
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret"));
        assert!(!shown.contains("tunnel-t0ken"));
    }
}
