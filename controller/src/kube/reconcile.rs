//! One reconcile of one custom resource, whatever woke it (a change in the cluster, a change in
//! the store, a resync): on deletion, request it in the store and hold the finalizer until the
//! store object is gone; otherwise make sure of the finalizer, mirror the resource into the store,
//! show the store's status on it (telling a job's story as events) and tie a job or tunnel to its
//! project by an owner reference. The adapter never deletes from the store on its own and never
//! writes status into it, so losing the Kubernetes API changes nothing there.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use alloy_primitives::Address;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use r1_crds::DeeployJobSpec;
use r1_crds::api::object::{ObjectKey, timestamp_now};
use r1_crds::common::{Condition, ConditionStatus};
use r1_crds::job::DeeployJobStatus;
use r1_crds::manifest::Kind;
use r1_crds::pricing::Catalogue;
use serde_json::Value;

use crate::intake::apply::{self, ApplyError};
use crate::intake::store::ResourceStore;
use crate::kube::cascade::{apply_owners, owner_patch, owning_projects, project_reference};
use crate::kube::error::KubeError;
use crate::kube::events::{self, EventType, Says};
use crate::kube::finalizer::{Cleanup, cleanup, finalizers, has_finalizer, set_finalizers};
use crate::kube::metrics::KubeMetrics;
use crate::kube::mirror::{Mirror, Planned, apply_local, plan};
use crate::kube::owner::ClusterView;
use crate::kube::pinning::{ImagePinner, stored_pin, tagged_image, with_image};
use crate::kube::resource::{FIELD_MANAGER, UID_ANNOTATION, api_resource, describe};
use crate::kube::secrets::references;
use crate::kube::settings::KubeSettings;
use crate::kube::signed::{Deletion, Network, Writes};
use crate::kube::status::{
    Generations, VALID, apply_status, condition, target_status, valid_condition,
};
use crate::kube::story::{Told, next_chapter};

/// How soon a resource waiting for another one is looked at again, in case what it waits for
/// arrives without changing the store (the cluster's view filling up after a restart).
const WAIT_REQUEUE: Duration = Duration::from_secs(5);

/// Everything a reconcile needs, shared by the controllers of the four kinds.
pub struct Reconciler {
    client: Client,
    store: Arc<ResourceStore>,
    catalogue: Catalogue,
    cluster: ClusterView,
    settings: KubeSettings,
    metrics: KubeMetrics,
    failures: Mutex<HashMap<ObjectKey, u32>>,
    blocked: Mutex<HashMap<ObjectKey, String>>,
    told: Mutex<HashMap<ObjectKey, Told>>,
    network: Network,
}

impl Reconciler {
    /// A reconciler writing to the cluster through `client` and mirroring into `store`; `cluster`
    /// is the watched escrows and projects that tell a namespace's owner.
    pub fn new(
        client: Client,
        store: Arc<ResourceStore>,
        catalogue: Catalogue,
        cluster: ClusterView,
        settings: KubeSettings,
        metrics: KubeMetrics,
    ) -> Self {
        Self {
            client,
            store,
            catalogue,
            cluster,
            settings,
            metrics,
            failures: Mutex::default(),
            blocked: Mutex::default(),
            told: Mutex::default(),
            network: Network::default(),
        }
    }

    /// The same reconciler, writing through `network` (signed, to every oracle) and funding
    /// jobs with it.
    pub fn with_network(self, network: Network) -> Self {
        Self { network, ..self }
    }

    /// Reconciles `object`, a custom resource of `kind`, once; says when to look at it again.
    pub async fn reconcile(&self, kind: Kind, object: &DynamicObject) -> Result<Action, KubeError> {
        let key = key_of(kind, object)?;
        let result = if object.metadata.deletion_timestamp.is_some() {
            self.finalize(kind, &key, object).await
        } else {
            self.sync(kind, &key, object).await
        };
        self.metrics.reconciled(kind);
        if result.is_ok() {
            self.failures_mut().remove(&key);
        }
        result
    }

    /// What to do after a failed reconcile: count it and retry with exponential backoff.
    pub fn error_policy(&self, kind: Kind, object: &DynamicObject, error: &KubeError) -> Action {
        self.metrics.failed(kind);
        let failures = match key_of(kind, object) {
            Ok(key) => {
                let mut all = self.failures_mut();
                let count = all.entry(key).or_default();
                *count = count.saturating_add(1);
                *count
            }
            Err(_) => 1,
        };
        let delay = self.settings.retry_delay(failures);
        tracing::warn!(
            resource = %describe(kind, object),
            %error,
            failures,
            retry_in_ms = delay.as_millis() as u64,
            "reconcile failed; retrying"
        );
        Action::requeue(delay)
    }

    fn failures_mut(&self) -> MutexGuard<'_, HashMap<ObjectKey, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers why the deletion of `key` is blocked; true when that is news.
    fn blocked_anew(&self, key: &ObjectKey, why: &str) -> bool {
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        blocked.insert(key.clone(), why.to_owned()).as_deref() != Some(why)
    }

    fn unblocked(&self, key: &ObjectKey) {
        self.blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn told_mut(&self) -> MutexGuard<'_, HashMap<ObjectKey, Told>> {
        self.told.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A live resource: finalizer, mirror, status.
    async fn sync(
        &self,
        kind: Kind,
        key: &ObjectKey,
        object: &DynamicObject,
    ) -> Result<Action, KubeError> {
        let resource = api_resource(kind);
        let api = self.api(key, &resource);
        let updated;
        let object = if has_finalizer(object) {
            object
        } else {
            updated = set_finalizers(&api, object, finalizers(object, true)).await?;
            &updated
        };
        let outcome = self.mirror(kind, key, object).await?;
        let funding_retry = match outcome {
            Mirror::Accepted if kind == Kind::Job => self.fund(key, object).await?,
            _ => false,
        };
        let generation = object.metadata.generation.unwrap_or_default();
        let current = object.data.get("status");
        let previous = condition(current, VALID);
        let valid = valid_condition(&outcome, generation, previous.as_ref(), &timestamp_now());
        if let Mirror::Rejected { reason, .. } = &outcome
            && is_news(previous.as_ref(), &valid)
        {
            tracing::warn!(
                resource = %describe(kind, object),
                reason,
                message = %valid.message,
                "not mirrored"
            );
            self.warn(&resource, object, "Mirror", reason, &valid.message)
                .await;
        }
        let head = match &outcome {
            Mirror::Accepted => Some(generation),
            Mirror::Rejected {
                shows_store: true, ..
            } => Some(generation - 1),
            Mirror::Rejected { .. } | Mirror::Waiting { .. } => None,
        };
        self.show_status(&api, &resource, key, object, head, &valid)
            .await?;
        self.link_owners(kind, key, &api, &resource, object).await?;
        Ok(match outcome {
            Mirror::Waiting { .. } => Action::requeue(WAIT_REQUEUE),
            Mirror::Accepted if funding_retry => Action::requeue(WAIT_REQUEUE),
            Mirror::Accepted | Mirror::Rejected { .. } => Action::requeue(self.settings.resync()),
        })
    }

    /// Mirrors `object` into the store: directly, or signed through the oracle's API so every
    /// oracle gets it.
    async fn mirror(
        &self,
        kind: Kind,
        key: &ObjectKey,
        object: &DynamicObject,
    ) -> Result<Mirror, KubeError> {
        let mut object = Cow::Borrowed(object);
        if matches!(kind, Kind::Job | Kind::Tunnel) {
            let stored = self.store.get(key)?;
            let stored_spec = stored.as_ref().map(|s| &s.spec);
            let stored = stored_spec.and_then(|spec| spec.job());
            let mut docker_config = None;
            if let Some(secrets) = &self.network.secrets
                && !references(&object).is_empty()
            {
                match secrets.seal(&object, stored_spec).await? {
                    Ok(sealed) => {
                        docker_config = sealed.docker_config;
                        object = Cow::Owned(sealed.object);
                    }
                    Err(message) => {
                        return Ok(Mirror::Waiting {
                            reason: "WaitingForSecret",
                            message,
                        });
                    }
                }
            }
            if let Some(pinner) = &self.network.pinning
                && kind == Kind::Job
                && let Some(image) = tagged_image(&object)
            {
                let pinned = self
                    .pin(
                        pinner,
                        key,
                        &object,
                        &image,
                        stored,
                        docker_config.as_deref(),
                    )
                    .await?;
                let Some(pinned) = pinned else {
                    return Ok(Mirror::Accepted);
                };
                object = Cow::Owned(pinned);
            }
        }
        let object = object.as_ref();
        match plan(&self.store, &self.catalogue, &self.cluster, kind, object)? {
            Planned::Decided(outcome) => Ok(outcome),
            Planned::Write {
                owner,
                manifest,
                document,
            } => match &self.network.writes {
                Writes::Local => apply_local(&self.store, &self.catalogue, owner, *manifest),
                Writes::Signed(signed) => signed.apply(owner, &document).await,
            },
        }
    }

    /// `object` with its image tag pinned to the digest the registry serves now (the tag as it
    /// is when it cannot say); `None` when the store already holds the resource, pinned with the
    /// stored digest or with its tag unpinned, so nothing is resolved or written.
    async fn pin(
        &self,
        pinner: &ImagePinner,
        key: &ObjectKey,
        object: &DynamicObject,
        image: &str,
        stored: Option<&DeeployJobSpec>,
        docker_config: Option<&[u8]>,
    ) -> Result<Option<DynamicObject>, KubeError> {
        let holds = |candidate: &DynamicObject| -> Result<bool, KubeError> {
            let planned = plan(
                &self.store,
                &self.catalogue,
                &self.cluster,
                Kind::Job,
                candidate,
            )?;
            Ok(matches!(planned, Planned::Decided(Mirror::Accepted)))
        };
        if let Some(pinned) = stored_pin(stored, image) {
            if holds(&with_image(object, &pinned))? {
                return Ok(None);
            }
        }
        if holds(object)? {
            return Ok(None);
        }
        match pinner.resolve(image, docker_config).await {
            Ok(digest) => {
                tracing::info!(object = %key, image, %digest, "image tag pinned");
                Ok(Some(with_image(object, &format!("{image}@{digest}"))))
            }
            Err(reason) => {
                tracing::warn!(object = %key, image, %reason, "image keeps its tag; each node resolves it");
                Ok(Some(object.clone()))
            }
        }
    }

    /// Funds the mirrored job `key` on chain, when the adapter funds jobs and the store object
    /// is this resource's; true when funding is to be tried again soon.
    async fn fund(&self, key: &ObjectKey, object: &DynamicObject) -> Result<bool, KubeError> {
        let Some(funding) = &self.network.funding else {
            return Ok(false);
        };
        let Some(stored) = self.store.get(key)? else {
            return Ok(false);
        };
        let uid = object.metadata.uid.as_deref();
        let mirrored = stored
            .metadata
            .annotations
            .get(UID_ANNOTATION)
            .map(String::as_str);
        let Some(spec) = stored
            .spec
            .job()
            .filter(|_| uid.is_some() && mirrored == uid)
        else {
            return Ok(false);
        };
        let status: DeeployJobStatus =
            serde_json::from_value(stored.status.clone()).unwrap_or_default();
        let now = timestamp_now();
        Ok(funding
            .fund(
                stored.metadata.owner,
                key,
                uid,
                spec,
                &status,
                &self.catalogue,
                &now,
            )
            .await)
    }

    /// A resource being deleted: request the deletion in the store, keep the finalizer while the
    /// store object exists, release it once the store object is gone.
    async fn finalize(
        &self,
        kind: Kind,
        key: &ObjectKey,
        object: &DynamicObject,
    ) -> Result<Action, KubeError> {
        if !has_finalizer(object) {
            return Ok(Action::await_change());
        }
        let resource = api_resource(kind);
        let api = self.api(key, &resource);
        let stored = self.store.get(key)?;
        match cleanup(stored.as_ref(), object.metadata.uid.as_deref()) {
            step @ (Cleanup::Release | Cleanup::Foreign) => {
                if step == Cleanup::Foreign {
                    tracing::info!(object = %key, "the store object is not this resource's; it stays");
                }
                set_finalizers(&api, object, finalizers(object, false)).await?;
                self.unblocked(key);
                self.told_mut().remove(key);
                if let Some(funding) = &self.network.funding {
                    funding.forget(key);
                }
                tracing::info!(resource = %describe(kind, object), "finalizer released");
                return Ok(Action::await_change());
            }
            Cleanup::RequestDeletion(owner) => match self.request_deletion(owner, key).await? {
                Deletion::Requested => self.unblocked(key),
                Deletion::Gone => return Ok(Action::requeue(Duration::ZERO)),
                Deletion::InUse(note) => {
                    if self.blocked_anew(key, &note) {
                        tracing::info!(object = %key, %note, "deletion waits");
                        self.warn(&resource, object, "Delete", "InUse", &note).await;
                    }
                    return Ok(Action::requeue(WAIT_REQUEUE));
                }
                Deletion::Refused { reason, message } => {
                    if self.blocked_anew(key, &message) {
                        tracing::warn!(object = %key, reason, %message, "deletion refused");
                        self.warn(&resource, object, "Delete", reason, &message)
                            .await;
                    }
                    return Ok(Action::requeue(WAIT_REQUEUE));
                }
            },
            Cleanup::Wait => {}
        }
        if let Some(valid) = condition(object.data.get("status"), VALID) {
            let generation = object.metadata.generation.unwrap_or_default();
            let mirrored = valid.status == ConditionStatus::True
                && valid.observed_generation == Some(generation);
            let head = if mirrored { generation } else { generation - 1 };
            self.show_status(&api, &resource, key, object, Some(head), &valid)
                .await?;
        }
        Ok(Action::requeue(self.settings.resync()))
    }

    /// Requests the deletion of `key` on behalf of `owner`: directly, or signed through the
    /// oracle's API so every oracle closes it.
    async fn request_deletion(
        &self,
        owner: Address,
        key: &ObjectKey,
    ) -> Result<Deletion, KubeError> {
        if let Writes::Signed(signed) = &self.network.writes {
            return signed.request_deletion(owner, key).await;
        }
        match apply::delete(&self.store, owner, key) {
            Ok(_) => Ok(Deletion::Requested),
            Err(ApplyError::NotFound(_)) => Ok(Deletion::Gone),
            Err(error @ ApplyError::InUse { .. }) => Ok(Deletion::InUse(error.to_string())),
            Err(ApplyError::Store(e)) => Err(e.into()),
            Err(other) => Err(KubeError::Apply(other)),
        }
    }

    /// Writes the status the resource should show, unless it shows it already. `head` is the
    /// resource generation the store's current generation stands for, when the store object is
    /// this resource's.
    async fn show_status(
        &self,
        api: &Api<DynamicObject>,
        resource: &ApiResource,
        key: &ObjectKey,
        object: &DynamicObject,
        head: Option<i64>,
        valid: &Condition,
    ) -> Result<(), KubeError> {
        let stored = match head {
            Some(_) => self.store.get(key)?,
            None => None,
        };
        let store_part = stored.as_ref().zip(head).map(|(stored, kube)| {
            let generations = Generations {
                store: stored.metadata.generation,
                kube,
            };
            (&stored.status, generations)
        });
        let funded = match &self.network.funding {
            Some(funding) if key.kind == Kind::Job => {
                funding.condition(key, object.metadata.uid.as_deref())
            }
            _ => None,
        };
        let own: Vec<&Condition> = std::iter::once(valid).chain(funded.as_ref()).collect();
        let target =
            target_status(store_part, &own).map_err(|e| KubeError::Object(e.to_string()))?;
        if object.data.get("status") == Some(&target) {
            return Ok(());
        }
        apply_status(api, resource, &key.name, &target).await?;
        if key.kind == Kind::Job {
            self.tell(resource, key, object, &target).await;
        }
        Ok(())
    }

    /// Publishes the events of a job's story after its status `written` was written over the
    /// one the resource showed, against what was last told about it.
    async fn tell(
        &self,
        resource: &ApiResource,
        key: &ObjectKey,
        object: &DynamicObject,
        written: &Value,
    ) {
        let Ok(next) = serde_json::from_value::<DeeployJobStatus>(written.clone()) else {
            return;
        };
        let shown = match object.data.get("status") {
            None | Some(Value::Null) => Some(DeeployJobStatus::default()),
            Some(status) => serde_json::from_value(status.clone()).ok(),
        };
        let events = {
            let mut told = self.told_mut();
            let (events, now) = next_chapter(
                told.get(key),
                shown.as_ref(),
                object.metadata.uid.as_deref(),
                &next,
            );
            told.insert(key.clone(), now);
            events
        };
        for event in events {
            tracing::info!(
                object = %key,
                reason = event.reason,
                note = %event.note,
                "job event"
            );
            let says = Says {
                type_: event.type_,
                action: event.action,
                reason: event.reason,
                note: &event.note,
            };
            self.publish(resource, object, says).await;
        }
    }

    /// Gives a job or tunnel the owner references of the projects it belongs to, when one is
    /// missing and the project is in the cluster. A refused write is logged and tried again at
    /// the next reconcile; it changes nothing else.
    async fn link_owners(
        &self,
        kind: Kind,
        key: &ObjectKey,
        api: &Api<DynamicObject>,
        resource: &ApiResource,
        object: &DynamicObject,
    ) -> Result<(), KubeError> {
        if !self.settings.owner_references || !matches!(kind, Kind::Job | Kind::Tunnel) {
            return Ok(());
        }
        let jobs = match kind {
            Kind::Tunnel => self.store.list(Kind::Job, Some(&key.namespace))?,
            _ => Vec::new(),
        };
        let wanted: Vec<_> = owning_projects(kind, object, &jobs)
            .iter()
            .filter_map(|name| self.cluster.project(&key.namespace, name))
            .filter_map(|project| project_reference(&project))
            .collect();
        let Some(patch) = owner_patch(resource, object, &wanted) else {
            return Ok(());
        };
        match apply_owners(api, &key.name, &patch).await {
            Ok(()) => tracing::info!(
                resource = %describe(kind, object),
                projects = ?wanted.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
                "owner references set"
            ),
            Err(error) => tracing::warn!(
                resource = %describe(kind, object),
                %error,
                "cannot set owner references; trying again at the next reconcile"
            ),
        }
        Ok(())
    }

    /// Publishes a Warning event; a failure is logged, not retried (the condition says it too).
    async fn warn(
        &self,
        resource: &ApiResource,
        object: &DynamicObject,
        action: &str,
        reason: &str,
        note: &str,
    ) {
        let says = Says {
            type_: EventType::Warning,
            action,
            reason,
            note,
        };
        self.publish(resource, object, says).await;
    }

    /// Publishes an event about `object`; a failure is logged, not retried (the status says it
    /// too).
    async fn publish(&self, resource: &ApiResource, object: &DynamicObject, says: Says<'_>) {
        let instance = self
            .settings
            .reporting_instance
            .as_deref()
            .unwrap_or(FIELD_MANAGER);
        let regarding = object.object_ref(resource);
        if let Err(error) = events::publish(&self.client, regarding, instance, says).await {
            tracing::warn!(%error, reason = says.reason, "cannot publish a Kubernetes event");
        }
    }

    fn api(&self, key: &ObjectKey, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &key.namespace, resource)
    }
}

/// Whether `valid` says something the resource does not show yet.
fn is_news(previous: Option<&Condition>, valid: &Condition) -> bool {
    previous.is_none_or(|p| {
        p.status != valid.status || p.reason != valid.reason || p.message != valid.message
    })
}

/// The store key of a namespaced custom resource.
fn key_of(kind: Kind, object: &DynamicObject) -> Result<ObjectKey, KubeError> {
    match (&object.metadata.namespace, &object.metadata.name) {
        (Some(namespace), Some(name)) => Ok(ObjectKey::new(kind, namespace, name)),
        _ => Err(KubeError::Object(format!(
            "a {kind} without a namespace or name cannot be mirrored"
        ))),
    }
}

#[cfg(test)]
mod tests;
