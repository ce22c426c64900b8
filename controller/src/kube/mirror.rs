//! Cluster → store: a custom resource's desired state (spec, labels, annotations) enters the
//! oracle's resource store through the same apply as the Deeploy API, on behalf of the
//! namespace's owner. Nothing is written for an object that is invalid, refused or waiting.

use std::str::FromStr;

use alloy_primitives::Address;
use kube::api::DynamicObject;
use r1_crds::api::object::{Desired, ObjectKey};
use r1_crds::field::FieldError;
use r1_crds::manifest::{API_VERSION, Kind, Manifest, parse_value};
use r1_crds::pricing::Catalogue;
use r1_crds::validate::validate;
use serde_json::{Map, Value};

use crate::intake::apply::{self, ApplyError};
use crate::intake::store::ResourceStore;
use crate::kube::error::KubeError;
use crate::kube::owner::{ClusterView, Tenant, tenant};
use crate::kube::resource::UID_ANNOTATION;

/// Annotations that are bookkeeping of a client, not desired state.
const CLIENT_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// What mirroring one custom resource came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// The store holds the resource's desired state (just written, or already equal).
    Accepted,
    /// The resource cannot be mirrored as it is; nothing was written.
    Rejected {
        /// One CamelCase word for the condition and the event: `Invalid`, `Forbidden`.
        reason: &'static str,
        /// Each problem, with the field path first when there is one.
        problems: Vec<String>,
        /// Whether the store's object (an earlier accepted version) is this resource's, so its
        /// status may still be shown.
        shows_store: bool,
    },
    /// Something else has to be mirrored or finish first; nothing was written.
    Waiting {
        /// One CamelCase word for the condition.
        reason: &'static str,
        /// What the resource waits for.
        message: String,
    },
}

impl Mirror {
    fn invalid(errors: Vec<FieldError>, shows_store: bool) -> Self {
        Self::Rejected {
            reason: "Invalid",
            problems: errors.iter().map(ToString::to_string).collect(),
            shows_store,
        }
    }
}

/// What mirroring one resource needs: nothing more (the outcome is known), or a write.
#[derive(Debug, Clone)]
pub enum Planned {
    /// Nothing is to be written: the store holds it already, or it cannot be written.
    Decided(Mirror),
    /// `manifest` (as the JSON `document`) is to be applied on behalf of `owner`.
    Write {
        /// Whose resource it is.
        owner: Address,
        /// The typed resource.
        manifest: Box<Manifest>,
        /// The same resource as the document a signed request carries.
        document: Value,
    },
}

/// Mirrors `object`, a custom resource of `kind`, into `store` directly (a network of one
/// oracle; see [`crate::kube::signed`] for the write that reaches every oracle).
pub fn mirror(
    store: &ResourceStore,
    catalogue: &Catalogue,
    cluster: &ClusterView,
    kind: Kind,
    object: &DynamicObject,
) -> Result<Mirror, KubeError> {
    match plan(store, catalogue, cluster, kind, object)? {
        Planned::Decided(outcome) => Ok(outcome),
        Planned::Write {
            owner, manifest, ..
        } => apply_local(store, catalogue, owner, *manifest),
    }
}

/// Decides whether `object`, a custom resource of `kind`, is to be written to the store, and on
/// whose behalf; nothing is written.
pub fn plan(
    store: &ResourceStore,
    catalogue: &Catalogue,
    cluster: &ClusterView,
    kind: Kind,
    object: &DynamicObject,
) -> Result<Planned, KubeError> {
    let decided = |outcome| Ok(Planned::Decided(outcome));
    let document = desired_document(kind, object);
    let manifest = match parse(&document) {
        Ok(manifest) => manifest,
        Err(errors) => return decided(Mirror::invalid(errors, false)),
    };
    let namespace = manifest.namespace().to_owned();
    let owner = match owner_of(&manifest) {
        Some(Ok(owner)) => owner,
        Some(Err(errors)) => return decided(Mirror::invalid(errors, false)),
        None => match tenant(
            &namespace,
            &cluster.owners(&namespace),
            store.namespace_owner(&namespace)?,
        ) {
            Tenant::Owner(owner) => owner,
            Tenant::Waiting(message) => {
                return decided(Mirror::Waiting {
                    reason: "WaitingForOwner",
                    message,
                });
            }
            Tenant::Refused(message) => {
                return decided(Mirror::Rejected {
                    reason: "Forbidden",
                    problems: vec![message],
                    shows_store: false,
                });
            }
        },
    };
    let desired = Desired::of(&manifest);
    let key = ObjectKey::of(&manifest);
    if let Some(existing) = store.get(&key)?
        && !existing.metadata.deletion_requested
        && existing.metadata.owner == owner
        && existing.desired() == desired
    {
        return decided(Mirror::Accepted);
    }
    let missing = missing_references(store, &manifest)?;
    if !missing.is_empty() {
        let errors = validate(&manifest, catalogue, None);
        if !errors.is_empty() {
            return decided(Mirror::invalid(errors, true));
        }
        return decided(Mirror::Waiting {
            reason: "WaitingForReference",
            message: format!(
                "waiting for the oracle to accept {} in namespace {namespace}",
                missing.join(" and ")
            ),
        });
    }
    Ok(Planned::Write {
        owner,
        manifest: Box::new(manifest),
        document,
    })
}

/// Applies `manifest` into this oracle's store on behalf of `owner`.
pub fn apply_local(
    store: &ResourceStore,
    catalogue: &Catalogue,
    owner: Address,
    manifest: Manifest,
) -> Result<Mirror, KubeError> {
    let applied = apply::apply_parsed(
        store,
        catalogue,
        owner,
        vec![(1, manifest)],
        Vec::new(),
        &apply::Policy::default(),
    );
    match applied {
        Ok(_) => Ok(Mirror::Accepted),
        Err(ApplyError::Invalid(rejections)) => Ok(Mirror::Rejected {
            reason: "Invalid",
            problems: rejections
                .into_iter()
                .map(|r| FieldError::new(r.path, r.message).to_string())
                .collect(),
            shows_store: true,
        }),
        Err(error @ ApplyError::Forbidden { .. }) => Ok(Mirror::Rejected {
            reason: "Forbidden",
            problems: vec![error.to_string()],
            shows_store: false,
        }),
        Err(error @ ApplyError::Terminating(_)) => Ok(Mirror::Waiting {
            reason: "WaitingForDeletion",
            message: error.to_string(),
        }),
        Err(ApplyError::Store(e)) => Err(e.into()),
        Err(other) => Err(KubeError::Apply(other)),
    }
}

/// The manifest the CSP meant: kind, name, namespace, labels, annotations (without client
/// bookkeeping) and spec — none of the cluster's metadata or the status — plus the resource's uid
/// as an annotation, to recognise the store object as this resource's later.
pub fn desired_document(kind: Kind, object: &DynamicObject) -> Value {
    let meta = &object.metadata;
    let mut metadata = Map::new();
    if let Some(name) = &meta.name {
        metadata.insert("name".into(), name.clone().into());
    }
    if let Some(namespace) = &meta.namespace {
        metadata.insert("namespace".into(), namespace.clone().into());
    }
    if let Some(labels) = meta.labels.as_ref().filter(|l| !l.is_empty()) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        metadata.insert("labels".into(), Value::Object(labels));
    }
    let mut annotations: Map<String, Value> = meta
        .annotations
        .iter()
        .flatten()
        .filter(|(key, _)| !CLIENT_ANNOTATIONS.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Some(uid) = &meta.uid {
        annotations.insert(UID_ANNOTATION.into(), uid.clone().into());
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
    let mut document = Map::new();
    document.insert("apiVersion".into(), API_VERSION.into());
    document.insert("kind".into(), kind.as_str().into());
    document.insert("metadata".into(), Value::Object(metadata));
    if let Some(spec) = object.data.get("spec") {
        document.insert("spec".into(), spec.clone());
    }
    Value::Object(document)
}

/// The typed resource, or every problem with its field path.
fn parse(document: &Value) -> Result<Manifest, Vec<FieldError>> {
    let value =
        serde_yaml::to_value(document).map_err(|e| vec![FieldError::new("", e.to_string())])?;
    parse_value(value)
}

/// `spec.owner` of an escrow or project (or why it is unusable); `None` for kinds without one.
fn owner_of(manifest: &Manifest) -> Option<Result<Address, Vec<FieldError>>> {
    let owner = manifest.owner()?;
    Some(Address::from_str(owner).map_err(|e| {
        vec![FieldError::new(
            "spec.owner",
            format!("{owner:?} is not an EVM address: {e}"),
        )]
    }))
}

/// The objects a job refers to that the store does not hold (alive), as `Kind name`.
fn missing_references(
    store: &ResourceStore,
    manifest: &Manifest,
) -> Result<Vec<String>, KubeError> {
    let Manifest::Job(job) = manifest else {
        return Ok(Vec::new());
    };
    let mut missing = Vec::new();
    for (kind, _, name) in job.spec.references() {
        let key = ObjectKey::new(kind, manifest.namespace(), name);
        let alive = store
            .get(&key)?
            .is_some_and(|object| !object.metadata.deletion_requested);
        if !alive {
            missing.push(format!("{kind} {name}"));
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests;
