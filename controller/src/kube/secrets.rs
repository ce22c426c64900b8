//! Kubernetes Secrets on the kube path: a job's `valueFrom.secretKeyRef` env values and its
//! `imagePullSecret.name` (a `kubernetes.io/dockerconfigjson` Secret), and a tunnel's
//! `tokenSecretRef`, are read from the object's namespace and sealed to every oracle's key
//! before the object is mirrored (the token becomes the tunnel's `sealedToken`), so what enters the
//! store, the relay and the other oracles is the same `sealed` form `r1ctl secret seal` makes on
//! the API path, never the value in clear. Each oracle opens its own copy when it deploys and
//! seals it again to the node (see `crate::oracle::secrets`).
//!
//! Sealing is randomised, so the adapter keeps what the store already holds whenever it still
//! opens (with this oracle's key) to the Secret's current value and is sealed to the same
//! oracles: an unchanged Secret never makes a new revision. A changed Secret, or a change in the
//! oracle set, is sealed anew at the next reconcile of the job (at the latest after the resync
//! interval; Secrets are not watched) and rolls the job out, as a changed spec does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy_primitives::Address;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DynamicObject};
use r1_crds::api::spec::Spec;
use r1_crds::common::SealedValue;
use r1_protocol::identity::Identity;
use r1_protocol::oracle_sealed::{OracleSealedError, open_as_oracle, seal_for_oracles};
use r1_protocol::sealed::PUBLIC_KEY_LEN;
use serde_json::{Value, json};

use crate::intake::http::OracleKeySource;
use crate::kube::error::KubeError;

/// The key of a `kubernetes.io/dockerconfigjson` Secret that holds the Docker config.
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

/// Reads a job's Secrets and seals them to the oracles.
pub struct SecretSealer {
    client: Client,
    oracle: Identity,
    keys: Arc<dyn OracleKeySource>,
}

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSealer")
            .field("oracle", &self.oracle.address())
            .finish_non_exhaustive()
    }
}

/// A job or tunnel with its Secrets sealed.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The object, each Secret reference replaced by its sealed value.
    pub object: DynamicObject,
    /// The registry credentials of its pull secret in clear (a Docker config), for pinning its
    /// image tag; dropped once the job is mirrored.
    pub docker_config: Option<Vec<u8>>,
}

/// Where a Secret's sealed value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A job's env var, by name.
    Env(String),
    /// A job's image pull secret.
    PullSecret,
    /// A tunnel's token.
    TunnelToken,
}

/// One Secret reference in a job's or a tunnel's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Where the sealed value goes.
    pub place: Place,
    /// The Secret's name.
    pub secret: String,
    /// The key in the Secret.
    pub key: String,
}

impl SecretSealer {
    /// Reads Secrets through `client`; reuses stored seals that `oracle` (this oracle's key)
    /// opens; seals to the oracles `keys` lists.
    pub fn new(client: Client, oracle: Identity, keys: Arc<dyn OracleKeySource>) -> Self {
        Self {
            client,
            oracle,
            keys,
        }
    }

    /// `object`, a `DeeployJob` or `Tunnel`, with each Secret reference replaced by the value
    /// sealed to the oracles; `stored` is its spec in the store, whose seals are kept where
    /// they still hold. `Ok(Err(why))` when a Secret is missing or unusable (the object waits).
    pub async fn seal(
        &self,
        object: &DynamicObject,
        stored: Option<&Spec>,
    ) -> Result<Result<Sealed, String>, KubeError> {
        let references = references(object);
        if references.is_empty() {
            return Ok(Ok(Sealed {
                object: object.clone(),
                docker_config: None,
            }));
        }
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let oracles = match oracle_keys(self.keys.as_ref()) {
            Ok(oracles) => oracles,
            Err(why) => return Ok(Err(why)),
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let mut sealed = Vec::new();
        let mut docker_config = None;
        for reference in references {
            let Some(secret) = api.get_opt(&reference.secret).await? else {
                return Ok(Err(format!(
                    "waiting for Secret {namespace}/{} (named by {})",
                    reference.secret,
                    reference.place()
                )));
            };
            let Some(value) = secret
                .data
                .as_ref()
                .and_then(|data| data.get(&reference.key))
                .map(|bytes| bytes.0.clone())
            else {
                return Ok(Err(format!(
                    "Secret {namespace}/{} has no key {:?} (named by {})",
                    reference.secret,
                    reference.key,
                    reference.place()
                )));
            };
            if reference.place == Place::PullSecret {
                docker_config = Some(value.clone());
            }
            let previous = stored.and_then(|spec| stored_seal(spec, &reference.place));
            match reuse_or_seal(&value, previous, &oracles, &self.oracle, &namespace) {
                Ok(value) => sealed.push((reference, value)),
                Err(error) => {
                    return Ok(Err(format!(
                        "cannot seal Secret {namespace}/{} to the oracles: {error}",
                        reference.secret
                    )));
                }
            }
        }
        Ok(Ok(Sealed {
            object: with_sealed(object, &sealed),
            docker_config,
        }))
    }
}

impl Reference {
    /// Where the reference stands in the spec, for messages.
    fn place(&self) -> String {
        match &self.place {
            Place::Env(name) => format!("env {name}"),
            Place::PullSecret => "imagePullSecret".to_owned(),
            Place::TunnelToken => "tokenSecretRef".to_owned(),
        }
    }
}

/// The Secret references of a `DeeployJob` or `Tunnel` object's spec.
pub fn references(object: &DynamicObject) -> Vec<Reference> {
    let spec = object.data.get("spec");
    let mut found: Vec<Reference> = spec
        .and_then(|s| s.get("env"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|var| {
            let secret = var.get("valueFrom")?.get("secretKeyRef")?;
            Some(Reference {
                place: Place::Env(var.get("name")?.as_str()?.to_owned()),
                secret: secret.get("name")?.as_str()?.to_owned(),
                key: secret.get("key")?.as_str()?.to_owned(),
            })
        })
        .collect();
    if let Some(name) = spec
        .and_then(|s| s.get("imagePullSecret"))
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
    {
        found.push(Reference {
            place: Place::PullSecret,
            secret: name.to_owned(),
            key: DOCKER_CONFIG_KEY.to_owned(),
        });
    }
    let token = spec.and_then(|s| s.get("tokenSecretRef"));
    if let (Some(name), Some(key)) = (
        token.and_then(|t| t.get("name")).and_then(Value::as_str),
        token.and_then(|t| t.get("key")).and_then(Value::as_str),
    ) {
        found.push(Reference {
            place: Place::TunnelToken,
            secret: name.to_owned(),
            key: key.to_owned(),
        });
    }
    found
}

/// The seal the store holds at `place` of `spec`.
fn stored_seal<'a>(spec: &'a Spec, place: &Place) -> Option<&'a SealedValue> {
    match (place, spec) {
        (Place::Env(name), Spec::Job(spec)) => spec
            .env
            .iter()
            .find(|var| var.name == *name)
            .and_then(|var| var.value_from.as_ref())
            .and_then(|source| source.sealed.as_ref()),
        (Place::PullSecret, Spec::Job(spec)) => spec
            .image_pull_secret
            .as_ref()
            .and_then(|pull| pull.sealed.as_ref()),
        (Place::TunnelToken, Spec::Tunnel(spec)) => spec.sealed_token.as_ref(),
        _ => None,
    }
}

/// The oracles' keys as sealing takes them; an error when none is known or one is unreadable.
fn oracle_keys(
    source: &dyn OracleKeySource,
) -> Result<Vec<(Address, [u8; PUBLIC_KEY_LEN])>, String> {
    let keys: Vec<_> = source
        .oracle_keys()
        .into_iter()
        .filter_map(|key| {
            let bytes = r1_protocol::hex::decode_vec(&key.public_key)?;
            let bytes: [u8; PUBLIC_KEY_LEN] = bytes.try_into().ok()?;
            Some((key.address, bytes))
        })
        .collect();
    if keys.is_empty() {
        return Err("no oracle key is known yet to seal Secrets to".to_owned());
    }
    Ok(keys)
}

/// `previous` when it is sealed to exactly `oracles` and opens (as `me`) to `value`; else
/// `value` sealed anew.
pub fn reuse_or_seal(
    value: &[u8],
    previous: Option<&SealedValue>,
    oracles: &[(Address, [u8; PUBLIC_KEY_LEN])],
    me: &Identity,
    namespace: &str,
) -> Result<SealedValue, OracleSealedError> {
    let wanted: BTreeSet<Address> = oracles.iter().map(|(address, _)| *address).collect();
    if let Some(previous) = previous
        && let Ok(copies) = previous.copies()
        && copies.keys().copied().collect::<BTreeSet<_>>() == wanted
        && open_as_oracle(&copies, me, namespace).is_ok_and(|opened| opened == value)
    {
        return Ok(previous.clone());
    }
    let copies = seal_for_oracles(value, oracles, namespace)?;
    Ok(SealedValue(
        copies
            .into_iter()
            .map(|(address, copy)| (address.to_checksum(None), copy))
            .collect::<BTreeMap<_, _>>(),
    ))
}

/// `object` with each reference's place holding its sealed value instead.
fn with_sealed(object: &DynamicObject, sealed: &[(Reference, SealedValue)]) -> DynamicObject {
    let mut object = object.clone();
    let Some(spec) = object.data.get_mut("spec") else {
        return object;
    };
    for (reference, value) in sealed {
        let value = json!(value);
        match &reference.place {
            Place::Env(name) => {
                if let Some(vars) = spec.get_mut("env").and_then(Value::as_array_mut) {
                    for var in vars
                        .iter_mut()
                        .filter(|v| v.get("name").and_then(Value::as_str) == Some(name))
                    {
                        var["valueFrom"] = json!({ "sealed": value });
                    }
                }
            }
            Place::PullSecret => spec["imagePullSecret"] = json!({ "sealed": value }),
            Place::TunnelToken => {
                if let Some(fields) = spec.as_object_mut() {
                    fields.remove("tokenSecretRef");
                    fields.insert("sealedToken".to_owned(), value);
                }
            }
        }
    }
    object
}

#[cfg(test)]
mod tests;
