//! Apply, delete, get and list: the one way resources enter and leave the store, whichever door
//! they come through (the HTTP API, the Kubernetes adapter, tests). Plain functions over the
//! store, free of HTTP.
//!
//! An apply checks the whole multi-document set first — schema and values with r1-crds,
//! references against the set and the store, owners against the signer, immutable fields
//! against the stored objects — and writes all of it in one batch or nothing.
//!
//! Tenancy: a namespace belongs to the CSP address that first applied anything in it (when the
//! [`Policy`] lets that signer claim namespaces); nobody else may apply, delete or read there.
//! Reads and deletes in another CSP's namespace answer exactly as for a missing object, and an
//! apply there is refused without naming the owner, so nobody learns who owns what.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use alloy_primitives::Address;
use r1_crds::api::object::{Desired, ObjectKey, StoredObject, timestamp_now};
use r1_crds::api::outcome::{Action, Applied, DeleteAction, Deleted, Rejection, count};
use r1_crds::api::selector::LabelSelector;
use r1_crds::field::FieldError;
use r1_crds::manifest::{Kind, Manifest, parse_documents};
use r1_crds::pricing::Catalogue;
use r1_crds::validate::{ManifestSet, ResourceIndex, validate};

use crate::intake::quotas::{Exceeded, Quotas, Usage};
use crate::intake::rules;
use crate::intake::store::{ResourceStore, StoreError, StoreIndex};

/// Why an apply, delete or read was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The set is invalid; nothing was written.
    #[error("{}; nothing was applied", count(.0.len(), "problem"))]
    Invalid(Vec<Rejection>),
    /// The namespace belongs to another CSP, or is unclaimed and the signer may not claim it.
    /// The message is the same either way and never names the owner.
    #[error("namespace {namespace} is not yours")]
    Forbidden {
        /// The namespace.
        namespace: String,
    },
    /// The apply would take the signer past one of its [`Quotas`].
    #[error(transparent)]
    Quota(#[from] Exceeded),
    /// The object is being deleted and cannot be changed meanwhile.
    #[error("{0} is being deleted; apply it again once it is gone")]
    Terminating(ObjectKey),
    /// A live job still refers to the object.
    #[error("{key} is still used by {user}; delete that first")]
    InUse {
        /// The object to delete.
        key: ObjectKey,
        /// A job referring to it.
        user: ObjectKey,
    },
    /// No such object (or not one the caller may see).
    #[error("{0} not found")]
    NotFound(ObjectKey),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an apply may do beyond what validation checks: how much the signer may own, and
/// whether it may claim namespaces nobody owns yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The signer's quotas.
    pub quotas: Quotas,
    /// Whether the signer may claim unclaimed namespaces (the HTTP API asks the chain first).
    pub may_claim: bool,
}

impl Default for Policy {
    /// Default quotas; claiming allowed (the doors that checked nothing else before).
    fn default() -> Self {
        Self {
            quotas: Quotas::default(),
            may_claim: true,
        }
    }
}

/// Validates `documents` (YAML or JSON, one or more documents) as one set and applies all of it
/// as `signer`, or nothing, under the default [`Policy`].
pub fn apply(
    store: &ResourceStore,
    catalogue: &Catalogue,
    signer: Address,
    documents: &str,
) -> Result<Vec<Applied>, ApplyError> {
    apply_with(store, catalogue, signer, documents, &Policy::default())
}

/// The namespaces `documents` name that nobody owns yet: what applying them would claim. Reads
/// only; unparsable documents name no namespace (the apply reports them).
pub fn unclaimed_namespaces(
    store: &ResourceStore,
    documents: &str,
) -> Result<Vec<String>, ApplyError> {
    let (parsed, _) = parse_set(documents);
    let namespaces: BTreeSet<&str> = parsed.iter().map(|(_, m)| m.namespace()).collect();
    let mut unclaimed = Vec::new();
    for namespace in namespaces {
        if store.namespace_owner(namespace)?.is_none() {
            unclaimed.push(namespace.to_owned());
        }
    }
    Ok(unclaimed)
}

/// [`apply`] under `policy`: refuses claiming a namespace the policy does not allow, and sets
/// that would take the signer past its quotas.
pub fn apply_with(
    store: &ResourceStore,
    catalogue: &Catalogue,
    signer: Address,
    documents: &str,
    policy: &Policy,
) -> Result<Vec<Applied>, ApplyError> {
    let (parsed, rejections) = parse_set(documents);
    apply_parsed(store, catalogue, signer, parsed, rejections, policy)
}

/// Applies resources already read (with their document numbers) as `signer`, or nothing:
/// the step every door shares once it has its manifests, so a door that parsed a document
/// (the kube mirror) does not serialize and parse it again. `rejections` are the problems its
/// parsing found; any of them refuses the whole set.
pub fn apply_parsed(
    store: &ResourceStore,
    catalogue: &Catalogue,
    signer: Address,
    parsed: Vec<(usize, Manifest)>,
    mut rejections: Vec<Rejection>,
    policy: &Policy,
) -> Result<Vec<Applied>, ApplyError> {
    if parsed.is_empty() && rejections.is_empty() {
        rejections.push(Rejection::new(
            None,
            None,
            FieldError::new("", "the request holds no resources"),
        ));
    }
    let mut tx = store.begin();
    let namespaces: BTreeSet<&str> = parsed.iter().map(|(_, m)| m.namespace()).collect();
    let mut unclaimed = Vec::new();
    for &namespace in &namespaces {
        match tx.namespace_owner(namespace)? {
            None if policy.may_claim => unclaimed.push(namespace),
            None => {
                tracing::warn!(namespace, signer = %signer, "refused: signer may not claim");
                return Err(forbidden(namespace));
            }
            Some(owner) => check_tenant(namespace, owner, signer, "apply")?,
        }
    }

    let mut set = ManifestSet::default();
    for (_, manifest) in &parsed {
        set.insert(manifest.clone());
    }
    let referenced = parsed.iter().flat_map(|(_, manifest)| match manifest {
        Manifest::Job(job) => job
            .spec
            .references()
            .into_iter()
            .map(|(kind, _, name)| ObjectKey::new(kind, manifest.namespace(), name))
            .collect(),
        _ => Vec::new(),
    });
    let stored = store.index(referenced)?;
    let index = Overlay {
        set: &set,
        stored: &stored,
    };
    let mut plans = Vec::with_capacity(parsed.len());
    let mut terminating = None;
    for (document, manifest) in &parsed {
        let key = ObjectKey::of(manifest);
        let reject = |error| Rejection::new(Some(*document), Some(manifest.display_name()), error);
        let mut errors = validate(manifest, catalogue, Some(&index));
        errors.extend(rules::owner_errors(manifest, signer));
        let desired = Desired::of(manifest);
        let existing = tx.get(&key)?;
        if let Some(existing) = &existing {
            errors.extend(rules::immutable_errors(&existing.spec, &desired.spec));
            if existing.metadata.deletion_requested {
                terminating.get_or_insert_with(|| key.clone());
            }
        }
        rejections.extend(errors.into_iter().map(reject));
        plans.push((key, desired, existing));
    }
    if !rejections.is_empty() {
        return Err(ApplyError::Invalid(rejections));
    }
    if let Some(key) = terminating {
        return Err(ApplyError::Terminating(key));
    }
    let adding = Usage {
        namespaces: unclaimed.len(),
        objects: plans.iter().filter(|(_, _, e)| e.is_none()).count(),
    };
    if adding != Usage::default() {
        policy.quotas.check(store_usage(store, signer)?, adding)?;
    }

    let now = timestamp_now();
    let mut applied = Vec::with_capacity(plans.len());
    for (key, desired, existing) in plans {
        let (object, action) = match existing {
            None => {
                let uid = tx.new_uid(&key);
                let object = StoredObject::create(&key, desired, signer, uid, 0, now.clone());
                (tx.put(object)?, Action::Created)
            }
            Some(existing) if existing.desired() == desired => (existing, Action::Unchanged),
            Some(mut existing) => {
                if existing.spec != desired.spec {
                    existing.metadata.generation += 1;
                }
                existing.spec = desired.spec;
                existing.metadata.labels = desired.labels;
                existing.metadata.annotations = desired.annotations;
                (tx.put(existing)?, Action::Configured)
            }
        };
        applied.push(Applied {
            kind: key.kind,
            namespace: key.namespace,
            name: key.name,
            action,
            generation: object.metadata.generation,
            resource_version: object.metadata.resource_version,
        });
    }
    for namespace in unclaimed {
        tx.claim_namespace(namespace, signer);
    }
    tx.commit()?;
    for a in applied.iter().filter(|a| a.action != Action::Unchanged) {
        tracing::info!(
            kind = %a.kind,
            namespace = %a.namespace,
            name = %a.name,
            action = %a.action,
            generation = a.generation,
            signer = %signer,
            "applied"
        );
    }
    Ok(applied)
}

/// Requests the deletion of the object under `key` as `signer`. The object stays, marked, until
/// the reconciler has cleaned up after it and calls [`ResourceStore::finalize_delete`].
/// Escrows, projects and tunnels that a live job still uses are refused.
pub fn delete(
    store: &ResourceStore,
    signer: Address,
    key: &ObjectKey,
) -> Result<Deleted, ApplyError> {
    let mut tx = store.begin();
    if tx.namespace_owner(&key.namespace)? != Some(signer) {
        return Err(hidden(key, signer, "delete"));
    }
    let mut object = tx
        .get(key)?
        .ok_or_else(|| ApplyError::NotFound(key.clone()))?;
    let deleted = |action, resource_version| Deleted {
        kind: key.kind,
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        action,
        resource_version,
    };
    if object.metadata.deletion_requested {
        return Ok(deleted(
            DeleteAction::AlreadyRequested,
            object.metadata.resource_version,
        ));
    }
    if let Some(user) = live_user(store, key)? {
        return Err(ApplyError::InUse {
            key: key.clone(),
            user,
        });
    }
    object.metadata.deletion_requested = true;
    object.metadata.deletion_timestamp = Some(timestamp_now());
    let object = tx.put(object)?;
    tx.commit()?;
    tracing::info!(object = %key, signer = %signer, "deletion requested");
    Ok(deleted(
        DeleteAction::Requested,
        object.metadata.resource_version,
    ))
}

/// The object under `key`, if `signer` owns its namespace; [`ApplyError::NotFound`] otherwise,
/// exactly as for a missing object.
pub fn get(
    store: &ResourceStore,
    signer: Address,
    key: &ObjectKey,
) -> Result<StoredObject, ApplyError> {
    if store.namespace_owner(&key.namespace)? != Some(signer) {
        return Err(hidden(key, signer, "read"));
    }
    store
        .get(key)?
        .ok_or_else(|| ApplyError::NotFound(key.clone()))
}

/// Objects of `kind` (every kind when `None`) in `namespace`, or in every namespace `signer`
/// owns when `namespace` is `None`, whose labels `selector` selects. A namespace the signer
/// does not own lists as empty, exactly as one nobody owns.
pub fn list(
    store: &ResourceStore,
    signer: Address,
    kind: Option<Kind>,
    namespace: Option<&str>,
    selector: &LabelSelector,
) -> Result<Vec<StoredObject>, ApplyError> {
    let namespaces: Vec<String> = match namespace {
        Some(namespace) if store.namespace_owner(namespace)? == Some(signer) => {
            vec![namespace.to_owned()]
        }
        Some(_) => Vec::new(),
        None => store
            .namespaces()?
            .into_iter()
            .filter(|(_, owner)| *owner == signer)
            .map(|(namespace, _)| namespace)
            .collect(),
    };
    let kinds = match kind {
        Some(kind) => vec![kind],
        None => Kind::ALL.to_vec(),
    };
    let mut objects = Vec::new();
    for kind in kinds {
        for namespace in &namespaces {
            objects.extend(
                store
                    .list(kind, Some(namespace))?
                    .into_iter()
                    .filter(|object| selector.matches(&object.metadata.labels))
                    .map(Arc::unwrap_or_clone),
            );
        }
    }
    Ok(objects)
}

/// Parses every document; duplicates and unparsable documents become rejections. A document
/// refused only for unknown fields is returned too, so that its value errors are found. What
/// [`apply_parsed`] takes.
pub fn parse_set(documents: &str) -> (Vec<(usize, Manifest)>, Vec<Rejection>) {
    let mut parsed = Vec::new();
    let mut rejections = Vec::new();
    let mut first_seen: HashMap<ObjectKey, usize> = HashMap::new();
    for doc in parse_documents(documents) {
        match doc.result {
            Ok(manifest) => {
                let key = ObjectKey::of(&manifest);
                if let Some(first) = first_seen.get(&key) {
                    rejections.push(Rejection::new(
                        Some(doc.index),
                        Some(manifest.display_name()),
                        FieldError::new(
                            "metadata.name",
                            format!("is defined twice (first in document {first})"),
                        ),
                    ));
                    continue;
                }
                first_seen.insert(key, doc.index);
                parsed.push((doc.index, manifest));
            }
            Err(errors) => {
                rejections.extend(
                    errors
                        .into_iter()
                        .map(|e| Rejection::new(Some(doc.index), None, e)),
                );
                // Validated with the rest so its value errors come in the same answer; the
                // rejection above keeps it from being applied.
                parsed.extend(doc.despite_unknown_fields.map(|m| (doc.index, m)));
            }
        }
    }
    (parsed, rejections)
}

/// Refuses (and logs) `signer` acting in a namespace `owner` owns.
fn check_tenant(
    namespace: &str,
    owner: Address,
    signer: Address,
    action: &str,
) -> Result<(), ApplyError> {
    if owner == signer {
        return Ok(());
    }
    tracing::warn!(
        namespace,
        owner = %owner,
        signer = %signer,
        action,
        "refused: namespace belongs to another CSP"
    );
    Err(forbidden(namespace))
}

fn forbidden(namespace: &str) -> ApplyError {
    ApplyError::Forbidden {
        namespace: namespace.to_owned(),
    }
}

/// A read or delete outside the signer's namespaces: logged, answered as not found.
fn hidden(key: &ObjectKey, signer: Address, action: &str) -> ApplyError {
    tracing::debug!(object = %key, signer = %signer, action, "not the signer's namespace");
    ApplyError::NotFound(key.clone())
}

/// What `signer` owns now.
fn store_usage(store: &ResourceStore, signer: Address) -> Result<Usage, StoreError> {
    let owned: Vec<String> = store
        .namespaces()?
        .into_iter()
        .filter(|(_, owner)| *owner == signer)
        .map(|(namespace, _)| namespace)
        .collect();
    let mut objects = 0;
    for namespace in &owned {
        objects += store.count_objects(namespace)?;
    }
    Ok(Usage {
        namespaces: owned.len(),
        objects,
    })
}

/// A job not being deleted that refers to the object under `key`.
fn live_user(store: &ResourceStore, key: &ObjectKey) -> Result<Option<ObjectKey>, StoreError> {
    Ok(store
        .list(Kind::Job, Some(&key.namespace))?
        .into_iter()
        .find(|job| !job.metadata.deletion_requested && refers_to(job, key))
        .map(|job| job.key()))
}

/// Whether the stored `job` refers to the project, escrow or tunnel `key` (see
/// [`DeeployJobSpec::references`]; a job refers to no other job). A spec that does not read
/// as a job's refers to nothing.
pub fn refers_to(job: &StoredObject, key: &ObjectKey) -> bool {
    job.metadata.namespace == key.namespace
        && job.spec.job().is_some_and(|spec| {
            spec.references()
                .into_iter()
                .any(|(kind, _, name)| kind == key.kind && name == key.name)
        })
}

/// References resolve against the applied set first, then the store.
struct Overlay<'a> {
    set: &'a ManifestSet,
    stored: &'a StoreIndex,
}

impl ResourceIndex for Overlay<'_> {
    fn lookup(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Manifest> {
        self.set
            .lookup(kind, namespace, name)
            .or_else(|| self.stored.lookup(kind, namespace, name))
    }
}

#[cfg(test)]
mod tests;
