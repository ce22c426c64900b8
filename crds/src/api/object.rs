//! The stored form of a resource: the manifest the CSP applied (spec, labels, annotations) with
//! the bookkeeping the oracle adds (uid, generation, resource version, owner, deletion request)
//! and the status the reconcilers write.

use std::collections::BTreeMap;

use alloy_primitives::Address;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::spec::Spec;
use crate::field::FieldError;
use crate::manifest::{API_VERSION, Kind, Manifest, parse_value};

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
    /// `spec`, typed by kind.
    pub spec: Spec,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
}

impl Desired {
    /// The desired state of a parsed manifest.
    pub fn of(manifest: &Manifest) -> Self {
        let meta = manifest.metadata();
        Self {
            spec: Spec::of(manifest),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
        }
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
///
/// The kind is the spec's ([`StoredObject::kind`]); in JSON the object reads as a Kubernetes
/// resource (`apiVersion`, `kind`, `metadata`, `spec`, `status`), and a spec that does not
/// read as its kind's struct is refused when the object is read, not later by a reconciler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Wire", into = "Wire")]
pub struct StoredObject {
    /// The API version the object was stored under, `deeploy.ratio1.ai/v1alpha1` so far: a
    /// later version converts what it reads by this.
    pub api_version: String,
    /// Names and bookkeeping.
    pub metadata: StoredMeta,
    /// The desired state as applied.
    pub spec: Spec,
    /// What the reconcilers observed; `null` until one writes it.
    pub status: Value,
}

/// [`StoredObject`] as written: the kind named, the spec as plain JSON.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    api_version: String,
    #[serde(with = "kind_name")]
    kind: Kind,
    metadata: StoredMeta,
    spec: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    status: Value,
}

impl TryFrom<Wire> for StoredObject {
    type Error = String;

    fn try_from(wire: Wire) -> Result<Self, String> {
        if wire.api_version != API_VERSION {
            return Err(format!(
                "apiVersion {:?} is not one this oracle reads ({API_VERSION})",
                wire.api_version
            ));
        }
        let spec = Spec::from_json(wire.kind, wire.spec)
            .map_err(|e| format!("{} spec: {e}", wire.kind))?;
        Ok(Self {
            api_version: wire.api_version,
            metadata: wire.metadata,
            spec,
            status: wire.status,
        })
    }
}

impl From<StoredObject> for Wire {
    fn from(object: StoredObject) -> Self {
        Self {
            api_version: object.api_version,
            kind: object.spec.kind(),
            metadata: object.metadata,
            spec: object.spec.to_json(),
            status: object.status,
        }
    }
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

    /// The kind, the spec's.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// Where the object lives.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            self.kind(),
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

    /// The typed resource (without status), for validation and for the oracle's reconcilers.
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
            "kind": self.kind().as_str(),
            "metadata": metadata,
            "spec": self.spec.to_json(),
        });
        let value = serde_yaml::to_value(&document)
            .map_err(|e| vec![FieldError::new("", e.to_string())])?;
        parse_value(value)
    }

    /// The status as `T`, `None` before the controller wrote one.
    pub fn status_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        if self.status.is_null() {
            return Ok(None);
        }
        T::deserialize(&self.status).map(Some)
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
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::manifest::Kind;

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

    const JOB: &str = include_str!("../../examples/job-http.yaml");

    fn parse(text: &str) -> Manifest {
        crate::manifest::parse_documents(text)
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
            Desired::of(&manifest),
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
        assert_eq!(Desired::of(&again), Desired::of(&manifest));
        assert_eq!(again.namespace(), "default");
        assert_eq!(back.status_as::<crate::DeeployJobStatus>().unwrap(), None);
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
        assert_eq!(Desired::of(&parse(&explicit)), Desired::of(&parse(JOB)));
    }
}
