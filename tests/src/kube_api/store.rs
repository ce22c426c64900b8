//! The fake API server's state: every object under one global resource version counter (each
//! write takes the next number), and a bounded history of the changes so watches can resume
//! from an older resource version or learn that it is too old (410 Expired).
//!
//! Writes behave as the real server's do for the parts clients rely on: the server alone sets
//! `uid`, `creationTimestamp`, `resourceVersion`, `generation` and the deletion fields; a
//! `resourceVersion` in a write is a precondition (409 Conflict when stale); a write that
//! changes nothing is not stored and wakes no watch; an object with finalizers is only marked
//! for deletion and goes once its last finalizer is removed, and no finalizer can be added while
//! it is being deleted; the garbage collector ([`gc`]) follows owner references.

mod gc;

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::error::ApiError;
use super::object::{
    check_identity, check_shape, check_type, finalizers, is_deleting, keep_system_fields, meta_str,
    new_uid, normalize, now, remove_meta, set_finalizers, spec_changed, strip_system_fields,
};
use super::patch;
use super::resources::Resource;

/// How many changes the history keeps; a watch from before them gets 410 Expired.
const HISTORY: usize = 4096;
/// The finalizer of an owner deleted in the foreground.
const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an owner deleted with its dependents orphaned.
const ORPHAN: &str = "orphan";

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Its resource type.
    pub resource: &'static Resource,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// The part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The object itself (everything but `.status`, for custom resources).
    Main,
    /// The `/status` subresource (only `.status`).
    Status,
}

/// A partial update of an object.
#[derive(Debug, Clone)]
pub enum Patch {
    /// A JSON merge patch (`application/merge-patch+json`).
    Merge(Value),
    /// A JSON patch (`application/json-patch+json`).
    Json(json_patch::Patch),
    /// A server-side apply configuration (`application/apply-patch+yaml`) of a field manager.
    Apply {
        /// The applied configuration.
        config: Value,
        /// The `fieldManager` of the request.
        manager: String,
    },
}

/// What happens to the dependents of a deleted object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// The object goes (after its finalizers); the garbage collector then deletes dependents
    /// left without owners.
    #[default]
    Background,
    /// The object waits (finalizer `foregroundDeletion`) until its dependents that block owner
    /// deletion are gone; every dependent is deleted first.
    Foreground,
    /// The object waits (finalizer `orphan`) until its dependents no longer refer to it.
    Orphan,
}

/// How an object is deleted.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// What happens to its dependents.
    pub propagation: Propagation,
    /// Delete only if its uid is this.
    pub uid: Option<String>,
    /// Delete only if its resource version is this.
    pub resource_version: Option<String>,
}

/// The outcome of a deletion.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// The object waits for its finalizers; this is its state now.
    Pending(Value),
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// An object was created.
    Added,
    /// An object was changed.
    Modified,
    /// An object was removed.
    Deleted,
}

impl ChangeType {
    /// The watch event type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One stored change.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resource version it created.
    pub revision: u64,
    /// The object it changed.
    pub key: Key,
    /// What happened.
    pub change: ChangeType,
    /// The object after the change (its last state for a deletion).
    pub object: Value,
}

/// Every object and the recent changes.
#[derive(Debug)]
pub struct Store {
    revision: u64,
    objects: BTreeMap<Key, Value>,
    applied: BTreeMap<(Key, String, Part), Value>,
    history: VecDeque<Change>,
    compacted: u64,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            revision: 1,
            objects: BTreeMap::new(),
            applied: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 0,
        }
    }
}

impl Store {
    /// The current resource version.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The object under `key`.
    pub fn get(&self, key: &Key) -> Result<Value, ApiError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key.resource, &key.name))
    }

    /// The objects of `resource`, in `namespace` or in all, ordered by namespace and name.
    pub fn list(&self, resource: &Resource, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(key, _)| {
                key.resource == resource && namespace.is_none_or(|ns| key.namespace == ns)
            })
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// The changes after resource version `since`, or 410 Expired when some of them are no
    /// longer kept.
    pub fn changes_since(&self, since: u64) -> Result<impl Iterator<Item = &Change>, ApiError> {
        if since < self.compacted {
            return Err(ApiError::expired(since, self.compacted + 1));
        }
        Ok(self.history.iter().filter(move |c| c.revision > since))
    }

    /// Forgets the history, as an etcd compaction does: watches from before now get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.revision;
    }

    /// Creates an object of `resource` in `namespace` from `body`.
    pub fn create(
        &mut self,
        resource: &'static Resource,
        namespace: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        check_shape(&mut body)?;
        check_type(resource, &body, false)?;
        check_identity(&body, namespace, None)?;
        let name = match (meta_str(&body, "name"), meta_str(&body, "generateName")) {
            (Some(name), _) if !name.is_empty() => name.to_owned(),
            (_, Some(prefix)) if !prefix.is_empty() => {
                format!("{prefix}{}", &new_uid()[..5])
            }
            _ => {
                return Err(ApiError::invalid(
                    resource,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        let key = Key {
            resource,
            namespace: namespace.to_owned(),
            name: name.clone(),
        };
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(resource, &name));
        }
        strip_system_fields(&mut body);
        body["apiVersion"] = json!(resource.api_version());
        body["kind"] = json!(resource.kind);
        body["metadata"]["name"] = json!(name);
        body["metadata"]["namespace"] = json!(namespace);
        body["metadata"]["uid"] = json!(new_uid());
        body["metadata"]["creationTimestamp"] = json!(now());
        if resource.custom {
            body["metadata"]["generation"] = json!(1);
            if let Some(fields) = body.as_object_mut() {
                fields.remove("status");
            }
        }
        normalize(resource, &mut body)?;
        Ok(self.commit(&key, body, ChangeType::Added))
    }

    /// Replaces `part` of the object under `key` with that of `body`.
    pub fn replace(&mut self, key: &Key, part: Part, mut body: Value) -> Result<Value, ApiError> {
        let live = self.get(key)?;
        check_shape(&mut body)?;
        self.write(key, part, live, body)
    }

    /// Patches `part` of the object under `key`.
    pub fn patch(&mut self, key: &Key, part: Part, patch: Patch) -> Result<Value, ApiError> {
        let (config, manager) = match patch {
            Patch::Apply { config, manager } => (config, manager),
            Patch::Merge(merge) => {
                let live = self.get(key)?;
                let mut patched = live.clone();
                patch::merge(&mut patched, &merge);
                check_shape(&mut patched)?;
                return self.write(key, part, live, patched);
            }
            Patch::Json(operations) => {
                let live = self.get(key)?;
                let mut patched = live.clone();
                json_patch::patch(&mut patched, &operations)
                    .map_err(|e| ApiError::invalid(key.resource, &key.name, &e.to_string()))?;
                check_shape(&mut patched)?;
                return self.write(key, part, live, patched);
            }
        };
        self.apply(key, part, config, manager)
    }

    /// Server-side apply of `config` to `part` of the object under `key` by `manager` (see
    /// [`patch`]); applying to a missing object creates it.
    fn apply(
        &mut self,
        key: &Key,
        part: Part,
        mut config: Value,
        manager: String,
    ) -> Result<Value, ApiError> {
        check_shape(&mut config)?;
        check_type(key.resource, &config, true)?;
        check_identity(&config, &key.namespace, Some(&key.name))?;
        if key.resource.custom
            && part == Part::Main
            && let Some(fields) = config.as_object_mut()
        {
            fields.remove("status");
        }
        let slot = (key.clone(), manager, part);
        let written = match (self.objects.get(key).cloned(), part) {
            (None, Part::Main) => {
                let mut body = config.clone();
                body["metadata"]["name"] = json!(key.name);
                self.create(key.resource, &key.namespace, body)?
            }
            (None, Part::Status) => return Err(ApiError::not_found(key.resource, &key.name)),
            (Some(live), _) => {
                let mut patched = live.clone();
                patch::apply(&mut patched, &config, self.applied.get(&slot));
                check_shape(&mut patched)?;
                self.write(key, part, live, patched)?
            }
        };
        if self.objects.contains_key(key) {
            remove_meta(&mut config, "resourceVersion");
            self.applied.insert(slot, config);
        }
        Ok(written)
    }

    /// Writes `candidate` (a new version of the whole object, checked with
    /// [`check_shape`]) over `live` under `key`, as far as `part` allows.
    fn write(
        &mut self,
        key: &Key,
        part: Part,
        live: Value,
        candidate: Value,
    ) -> Result<Value, ApiError> {
        check_type(key.resource, &candidate, false)?;
        check_identity(&candidate, &key.namespace, Some(&key.name))?;
        if let Some(version) = meta_str(&candidate, "resourceVersion")
            && !version.is_empty()
            && Some(version) != meta_str(&live, "resourceVersion")
        {
            return Err(ApiError::conflict(
                key.resource,
                &key.name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let mut object = match (key.resource.custom, part) {
            (false, _) => candidate,
            (true, Part::Main) => with_status(candidate, live.get("status")),
            (true, Part::Status) => with_status(live.clone(), candidate.get("status")),
        };
        keep_system_fields(&live, &mut object);
        normalize(key.resource, &mut object)?;
        let deleting = is_deleting(&live);
        let before = finalizers(&live);
        let after = finalizers(&object);
        if deleting && after.iter().any(|f| !before.contains(f)) {
            return Err(ApiError::invalid(
                key.resource,
                &key.name,
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
        if key.resource.custom && spec_changed(&live, &object) {
            let generation = live["metadata"]["generation"].as_i64().unwrap_or(0);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        if object == live {
            return Ok(live);
        }
        let change = if deleting && after.is_empty() {
            ChangeType::Deleted
        } else {
            ChangeType::Modified
        };
        Ok(self.commit(key, object, change))
    }

    /// Deletes the object under `key`: at once when it has no finalizers (after adding the one
    /// its propagation asks for), otherwise by marking it for deletion.
    pub fn delete(&mut self, key: &Key, options: &DeleteOptions) -> Result<Deleted, ApiError> {
        let live = self.get(key)?;
        let failed = |what: &str, want: &str, got: Option<&str>| {
            let why = format!(
                "Precondition failed: {what} in precondition: {want}, {what} in object meta: {}",
                got.unwrap_or_default()
            );
            ApiError::conflict(key.resource, &key.name, &why)
        };
        if let Some(uid) = &options.uid
            && Some(uid.as_str()) != meta_str(&live, "uid")
        {
            return Err(failed("UID", uid, meta_str(&live, "uid")));
        }
        if let Some(version) = &options.resource_version
            && Some(version.as_str()) != meta_str(&live, "resourceVersion")
        {
            return Err(failed(
                "ResourceVersion",
                version,
                meta_str(&live, "resourceVersion"),
            ));
        }
        let mut object = live.clone();
        let mut list = finalizers(&object);
        let added = match options.propagation {
            Propagation::Background => None,
            Propagation::Foreground => Some(FOREGROUND),
            Propagation::Orphan => Some(ORPHAN),
        };
        if let Some(finalizer) = added
            && !list.iter().any(|f| f == finalizer)
        {
            list.push(finalizer.to_owned());
        }
        if list.is_empty() {
            return Ok(Deleted::Gone(self.commit(key, object, ChangeType::Deleted)));
        }
        set_finalizers(&mut object, list);
        if !is_deleting(&object) {
            object["metadata"]["deletionTimestamp"] = json!(now());
            object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if let Some(generation) = object["metadata"]["generation"].as_i64() {
                object["metadata"]["generation"] = json!(generation + 1);
            }
        }
        if object == live {
            return Ok(Deleted::Pending(live));
        }
        Ok(Deleted::Pending(self.commit(
            key,
            object,
            ChangeType::Modified,
        )))
    }

    /// Stores `object` under `key` (or removes it, for a deletion) with the next resource
    /// version and records the change.
    fn commit(&mut self, key: &Key, mut object: Value, change: ChangeType) -> Value {
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        if change == ChangeType::Deleted {
            self.objects.remove(key);
            self.applied.retain(|(k, _, _), _| k != key);
        } else {
            self.objects.insert(key.clone(), object.clone());
        }
        self.history.push_back(Change {
            revision: self.revision,
            key: key.clone(),
            change,
            object: object.clone(),
        });
        while self.history.len() > HISTORY {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.revision;
            }
        }
        object
    }
}

/// `object` with its `.status` replaced by `status` (removed when `None`).
fn with_status(mut object: Value, status: Option<&Value>) -> Value {
    if let Some(fields) = object.as_object_mut() {
        match status {
            Some(status) => fields.insert("status".to_owned(), status.clone()),
            None => fields.remove("status"),
        };
    }
    object
}
