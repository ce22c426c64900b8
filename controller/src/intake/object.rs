//! The stored form of a resource: the manifest the CSP applied (spec, labels, annotations) with
//! the bookkeeping the oracle adds (uid, generation, resource version, owner, deletion request)
//! and the status the reconcilers write.

use std::collections::BTreeMap;

use alloy_primitives::Address;
use r1_crds::field::FieldError;
use r1_crds::manifest::{API_VERSION, Kind, Manifest, parse_value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where one object lives: kind, namespace and name, the store's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The kind.
    pub kind: Kind,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `kind` `namespace/name`.
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a manifest.
    pub fn of(manifest: &Manifest) -> Self {
        Self::new(manifest.kind(), manifest.namespace(), manifest.name())
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The part of a manifest the CSP controls; applying the same desired state twice changes
/// nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// `spec`, in its canonical form (defaults filled in), so equal specs compare equal.
    pub spec: Value,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
}

impl Desired {
    /// The desired state of a parsed manifest.
    pub fn of(manifest: &Manifest) -> Result<Self, serde_json::Error> {
        let spec = match manifest {
            Manifest::Project(r) => serde_json::to_value(&r.spec)?,
            Manifest::Job(r) => serde_json::to_value(&r.spec)?,
            Manifest::Tunnel(r) => serde_json::to_value(&r.spec)?,
            Manifest::Escrow(r) => serde_json::to_value(&r.spec)?,
        };
        let meta = manifest.metadata();
        Ok(Self {
            spec,
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
        })
    }
}

/// Metadata of a stored object, in the Kubernetes vocabulary plus r1's owner and deletion flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// Unique id of this incarnation: a name deleted and created again gets a new uid.
    pub uid: String,
    /// Bumped each time the spec changes; status conditions say which generation they saw.
    pub generation: i64,
    /// Store-wide counter value of the last write to this object (spec, metadata or status).
    pub resource_version: u64,
    /// When the object was first applied (RFC 3339, seconds).
    pub creation_timestamp: String,
    /// `metadata.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The CSP address that applied the object (the namespace's owner), checksummed in JSON.
    #[serde(with = "checksummed")]
    pub owner: Address,
    /// Set by a delete; the reconciler finalizes the deletion once nothing is left to clean up.
    #[serde(default)]
    pub deletion_requested: bool,
    /// When deletion was requested (RFC 3339, seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
}

/// One resource as the store keeps it and the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredObject {
    /// Always `deeploy.ratio1.ai/v1alpha1`.
    pub api_version: String,
    /// The kind.
    #[serde(with = "kind_name")]
    pub kind: Kind,
    /// Names and bookkeeping.
    pub metadata: StoredMeta,
    /// The desired state as applied, canonical.
    pub spec: Value,
    /// What the reconcilers observed; `null` until one writes it.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub status: Value,
}

impl StoredObject {
    /// A new object at its first generation.
    pub fn create(
        key: &ObjectKey,
        desired: Desired,
        owner: Address,
        uid: String,
        resource_version: u64,
        now: String,
    ) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: key.kind,
            metadata: StoredMeta {
                name: key.name.clone(),
                namespace: key.namespace.clone(),
                uid,
                generation: 1,
                resource_version,
                creation_timestamp: now,
                labels: desired.labels,
                annotations: desired.annotations,
                owner,
                deletion_requested: false,
                deletion_timestamp: None,
            },
            spec: desired.spec,
            status: Value::Null,
        }
    }

    /// Where the object lives.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            self.kind,
            self.metadata.namespace.clone(),
            self.metadata.name.clone(),
        )
    }

    /// The CSP-controlled part, to compare with a new apply.
    pub fn desired(&self) -> Desired {
        Desired {
            spec: self.spec.clone(),
            labels: self.metadata.labels.clone(),
            annotations: self.metadata.annotations.clone(),
        }
    }

    /// The typed resource (without status), for validation and for the reconcilers.
    pub fn to_manifest(&self) -> Result<Manifest, Vec<FieldError>> {
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".into(), self.metadata.name.clone().into());
        metadata.insert("namespace".into(), self.metadata.namespace.clone().into());
        if !self.metadata.labels.is_empty() {
            metadata.insert("labels".into(), to_json(&self.metadata.labels));
        }
        if !self.metadata.annotations.is_empty() {
            metadata.insert("annotations".into(), to_json(&self.metadata.annotations));
        }
        let document = serde_json::json!({
            "apiVersion": self.api_version,
            "kind": self.kind.as_str(),
            "metadata": metadata,
            "spec": self.spec,
        });
        let value = serde_yaml::to_value(&document)
            .map_err(|e| vec![FieldError::new("", e.to_string())])?;
        parse_value(value)
    }

    /// The spec as its typed struct of r1-crds (e.g. `DeeployJobSpec`).
    pub fn spec_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.spec)
    }

    /// The status as `T`, `None` before the controller wrote one.
    pub fn status_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        if self.status.is_null() {
            return Ok(None);
        }
        serde_json::from_value(self.status.clone()).map(Some)
    }
}

fn to_json(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// The current time as RFC 3339 in whole seconds, as Kubernetes writes timestamps.
pub fn timestamp_now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// An address as EIP-55 checksummed text, as users see addresses everywhere else.
mod checksummed {
    use std::str::FromStr;

    use alloy_primitives::Address;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(address: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&address.to_checksum(None))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let text = String::deserialize(d)?;
        Address::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// A kind as its `kind:` value in JSON.
pub(crate) mod kind_name {
    use r1_crds::manifest::Kind;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the kind's name.
    pub fn serialize<S: Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    /// Reads a kind's name.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let name = String::deserialize(d)?;
        Kind::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("{name:?} is not an r1 kind")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = include_str!("../../../crds/examples/job-http.yaml");

    fn parse(text: &str) -> Manifest {
        r1_crds::manifest::parse_documents(text)
            .remove(0)
            .result
            .unwrap()
    }

    #[test]
    fn round_trips_through_json_and_back_to_a_manifest() {
        let manifest = parse(JOB);
        let key = ObjectKey::of(&manifest);
        let object = StoredObject::create(
            &key,
            Desired::of(&manifest).unwrap(),
            Address::repeat_byte(7),
            "uid".into(),
            3,
            "2026-01-01T00:00:00Z".into(),
        );
        let json = serde_json::to_string(&object).unwrap();
        assert!(json.contains("\"kind\":\"DeeployJob\""), "{json}");
        assert!(
            json.contains("\"owner\":\"0x0707070707070707070707070707070707070707\""),
            "{json}"
        );
        assert!(!json.contains("\"status\""), "{json}");
        let back: StoredObject = serde_json::from_str(&json).unwrap();
        assert_eq!(back, object);
        assert_eq!(back.key(), key);
        let again = back.to_manifest().unwrap();
        assert_eq!(
            Desired::of(&again).unwrap(),
            Desired::of(&manifest).unwrap()
        );
        assert_eq!(again.namespace(), "default");
        assert_eq!(back.status_as::<r1_crds::DeeployJobStatus>().unwrap(), None);
    }

    #[test]
    fn timestamps_are_whole_seconds_in_utc() {
        let now = timestamp_now();
        assert!(now.ends_with('Z') && !now.contains('.'), "{now}");
        assert!(now.parse::<k8s_openapi::jiff::Timestamp>().is_ok());
    }

    #[test]
    fn canonical_spec_ignores_defaults_written_out() {
        let explicit = JOB.replace("replicas: 2", "replicas: 2\n  nodeSelector: {}");
        assert_eq!(
            Desired::of(&parse(&explicit)).unwrap(),
            Desired::of(&parse(JOB)).unwrap()
        );
    }
}
