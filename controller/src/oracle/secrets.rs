//! A job's secrets on their way to a node: this oracle opens its copy of each value the CSP
//! sealed to the oracles (bound to the job's namespace), picks the registry credentials for the
//! job's image out of the sealed Docker config, and seals the lot to the one node a deploy
//! command is for (bound to that node and job). Nothing here is kept: plaintext lives in memory
//! for one deploy, never in the store, a log line or a status.

use std::collections::BTreeMap;

use alloy_primitives::Address;
use r1_protocol::Identity;
use r1_protocol::docker_config::credentials_for;
use r1_protocol::image_ref::ImageRef;
use r1_protocol::messages::WorkloadSpec;
use r1_protocol::oracle_sealed::open_as_oracle;
use r1_protocol::sealed::PUBLIC_KEY_LEN;
use r1_protocol::secrets::{RegistryAuth, SealedSecrets, WorkloadSecrets};

use crate::decide::job_rollout::{Generation, JobRollout};
use crate::decide::workload::SealedInputs;

/// Docker Hub, as registries are named when an image reference names none.
const DOCKER_HUB: &str = "docker.io";

/// Why a job's secrets cannot reach its nodes from this oracle; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// A sealed value does not open for this oracle.
    #[error("{field}: {reason}")]
    Open {
        /// The spec field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The sealed Docker config has no entry for the image's registry.
    #[error("spec.imagePullSecret.sealed: the registry config has no credentials for {0}")]
    NoRegistryEntry(String),
    /// The image reference does not parse (validation refuses it before this).
    #[error("spec.image: {0}")]
    Image(String),
    /// Sealing to the node failed (its key is not a curve point, or the secrets are too large).
    #[error("cannot seal the job's secrets to node {node}: {reason}")]
    Seal {
        /// The node.
        node: Address,
        /// Why.
        reason: String,
    },
}

/// `inputs` opened with `oracle`'s key, for a job in `namespace` running `image`.
pub fn open_inputs(
    oracle: &Identity,
    namespace: &str,
    image: &str,
    inputs: &SealedInputs,
) -> Result<WorkloadSecrets, SecretError> {
    let open = |field: String, value: &r1_crds::common::SealedValue| {
        let copies = value.copies().map_err(|reason| SecretError::Open {
            field: field.clone(),
            reason,
        })?;
        open_as_oracle(&copies, oracle, namespace).map_err(|e| SecretError::Open {
            field,
            reason: e.to_string(),
        })
    };
    let mut secrets = WorkloadSecrets::default();
    for (name, value) in &inputs.env {
        let bytes = open(format!("spec.env[{name}].valueFrom.sealed"), value)?;
        let text = String::from_utf8(bytes).map_err(|_| SecretError::Open {
            field: format!("spec.env[{name}].valueFrom.sealed"),
            reason: "the value is not UTF-8 text".into(),
        })?;
        secrets.env.insert(name.clone(), text);
    }
    if let Some(value) = &inputs.registry {
        let field = "spec.imagePullSecret.sealed".to_owned();
        let config = open(field.clone(), value)?;
        let registry = ImageRef::parse(image)
            .map_err(|e| SecretError::Image(e.to_string()))?
            .registry
            .unwrap_or_else(|| DOCKER_HUB.to_owned());
        let credentials = credentials_for(&config, &registry)
            .map_err(|e| SecretError::Open {
                field,
                reason: e.to_string(),
            })?
            .ok_or_else(|| SecretError::NoRegistryEntry(registry.clone()))?;
        secrets.registry = Some(RegistryAuth {
            registry,
            credentials,
        });
    }
    if let Some(value) = &inputs.tunnel_token {
        let field = "Tunnel spec.sealedToken".to_owned();
        let bytes = open(field.clone(), value)?;
        let token = String::from_utf8(bytes).map_err(|_| SecretError::Open {
            field,
            reason: "the token is not UTF-8 text".into(),
        })?;
        secrets.tunnel_token = Some(token.trim().to_owned());
    }
    Ok(secrets)
}

/// `secrets` sealed to `node` for on-chain job `job`; `None` when there are none.
pub fn seal_to_node(
    secrets: &WorkloadSecrets,
    node: Address,
    node_key: &[u8; PUBLIC_KEY_LEN],
    job: u64,
) -> Result<Option<SealedSecrets>, SecretError> {
    if secrets.is_empty() {
        return Ok(None);
    }
    SealedSecrets::seal(secrets, (node, node_key), job)
        .map(Some)
        .map_err(|e| SecretError::Seal {
            node,
            reason: e.to_string(),
        })
}

/// One job's secrets during one pass: each generation's values opened at most once, sealed
/// anew for each deploy.
pub struct JobSecrets<'a> {
    oracle: &'a Identity,
    namespace: &'a str,
    job: u64,
    generations: BTreeMap<&'a str, &'a Generation>,
    node_keys: BTreeMap<Address, [u8; PUBLIC_KEY_LEN]>,
    opened: BTreeMap<String, Result<WorkloadSecrets, SecretError>>,
}

impl<'a> JobSecrets<'a> {
    /// The secrets of on-chain `job` in `namespace`, whose generations `rollout` holds, opened
    /// by `oracle` and sealed to the nodes of `node_keys`.
    pub fn new(
        oracle: &'a Identity,
        namespace: &'a str,
        job: u64,
        rollout: &'a JobRollout,
        node_keys: BTreeMap<Address, [u8; PUBLIC_KEY_LEN]>,
    ) -> Self {
        Self {
            oracle,
            namespace,
            job,
            generations: rollout
                .generations
                .values()
                .map(|g| (g.revision.as_str(), g))
                .collect(),
            node_keys,
            opened: BTreeMap::new(),
        }
    }

    /// Whether any generation has secrets (so deploys need the nodes' keys).
    pub fn any(rollout: &JobRollout) -> bool {
        rollout.generations.values().any(|g| !g.sealed.is_empty())
    }

    /// The secrets of `workload`'s generation, sealed to `node`; `None` when it has none.
    pub fn for_deploy(
        &mut self,
        node: Address,
        workload: &WorkloadSpec,
    ) -> Result<Option<SealedSecrets>, SecretError> {
        let Some(generation) = self.generations.get(workload.revision.as_str()) else {
            return Ok(None);
        };
        if generation.sealed.is_empty() {
            return Ok(None);
        }
        let secrets = self
            .opened
            .entry(workload.revision.clone())
            .or_insert_with(|| {
                open_inputs(
                    self.oracle,
                    self.namespace,
                    &workload.image,
                    &generation.sealed,
                )
            })
            .clone()?;
        let key = self.node_keys.get(&node).ok_or(SecretError::Seal {
            node,
            reason: "no heartbeat has told its key yet".into(),
        })?;
        seal_to_node(&secrets, node, key, self.job)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use r1_crds::common::SealedValue;
    use r1_protocol::docker_config::config_for;
    use r1_protocol::oracle_sealed::seal_for_oracles;
    use r1_protocol::sealed::public_key;
    use r1_protocol::secrets::PullCredentials;

    use super::*;

    fn sealed(value: &[u8], oracles: &[&Identity], namespace: &str) -> SealedValue {
        let keys: Vec<_> = oracles
            .iter()
            .map(|o| (o.address(), public_key(o)))
            .collect();
        let copies = seal_for_oracles(value, &keys, namespace).unwrap();
        SealedValue(
            copies
                .into_iter()
                .map(|(a, c)| (a.to_checksum(None), c))
                .collect(),
        )
    }

    fn credentials() -> PullCredentials {
        PullCredentials::Basic {
            username: "acme".into(),
            password: "s3cret".into(),
        }
    }

    #[test]
    fn an_oracle_opens_env_and_registry_credentials_and_only_the_node_reads_them() {
        let oracle = Identity::generate();
        let other = Identity::generate();
        let config = config_for("registry.example:5000", &credentials());
        let inputs = SealedInputs {
            env: BTreeMap::from([("DB".into(), sealed(b"hunter2", &[&oracle, &other], "acme"))]),
            registry: Some(sealed(config.as_bytes(), &[&oracle, &other], "acme")),
            tunnel_token: Some(sealed(b"bore-secret\n", &[&oracle, &other], "acme")),
        };
        let secrets = open_inputs(&oracle, "acme", "registry.example:5000/a/b:1", &inputs).unwrap();
        assert_eq!(secrets.env["DB"], "hunter2");
        assert_eq!(secrets.tunnel_token.as_deref(), Some("bore-secret"));
        assert_eq!(
            secrets.registry.as_ref().unwrap().credentials,
            credentials()
        );
        let node = Identity::generate();
        let to_node = seal_to_node(&secrets, node.address(), &public_key(&node), 9)
            .unwrap()
            .unwrap();
        assert!(!to_node.sealed.contains("hunter2"));
        assert_eq!(to_node.open(&node, 9).unwrap(), secrets);
    }

    #[test]
    fn values_sealed_for_another_namespace_or_other_oracles_are_refused_by_field() {
        let oracle = Identity::generate();
        let other = Identity::generate();
        let inputs = SealedInputs {
            env: BTreeMap::from([("DB".into(), sealed(b"x", &[&oracle], "mallory"))]),
            registry: None,
            tunnel_token: None,
        };
        let err = open_inputs(&oracle, "acme", "a/b:1", &inputs).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.env[DB].valueFrom.sealed:"),
            "{err}"
        );
        let err = open_inputs(&other, "mallory", "a/b:1", &inputs).unwrap_err();
        assert!(err.to_string().contains("r1ctl secret seal"), "{err}");
    }

    #[test]
    fn a_config_without_the_images_registry_says_which_registry() {
        let oracle = Identity::generate();
        let config = config_for("ghcr.io", &credentials());
        let inputs = SealedInputs {
            env: BTreeMap::new(),
            registry: Some(sealed(config.as_bytes(), &[&oracle], "acme")),
            tunnel_token: None,
        };
        assert_eq!(
            open_inputs(&oracle, "acme", "nginx:1", &inputs),
            Err(SecretError::NoRegistryEntry("docker.io".into()))
        );
    }

    #[test]
    fn no_secrets_seal_to_nothing() {
        let node = Identity::generate();
        let sealed = seal_to_node(
            &WorkloadSecrets::default(),
            node.address(),
            &public_key(&node),
            1,
        );
        assert_eq!(sealed, Ok(None));
    }
}
