//! Deletion ↔ finalizer: a custom resource carries the `deeploy.ratio1.ai/onchain-cleanup`
//! finalizer from before it is first mirrored, so Kubernetes cannot forget it while the oracle
//! still has a job to close on chain. Deleting the resource requests the deletion in the store;
//! the finalizer goes once the store object is gone (the oracle's loops finalize the deletion
//! after their cleanup).

use alloy_primitives::Address;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use r1_crds::api::object::StoredObject;
use serde_json::json;

use crate::kube::resource::{FIELD_MANAGER, FINALIZER, UID_ANNOTATION};

/// Whether the resource carries r1's finalizer.
pub fn has_finalizer(object: &DynamicObject) -> bool {
    object
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

/// The resource's finalizers with r1's added (at the end) or removed.
pub fn finalizers(object: &DynamicObject, keep_ours: bool) -> Vec<String> {
    let mut list: Vec<String> = object
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if keep_ours {
        list.push(FINALIZER.to_owned());
    }
    list
}

/// The next step for a resource being deleted, given its object in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Nothing is left in the store: the finalizer can go.
    Release,
    /// The store object did not come from this resource (it was never mirrored, or another
    /// door wrote it since): the finalizer can go, the store object stays.
    Foreign,
    /// The store object is alive: request its deletion as its owner.
    RequestDeletion(Address),
    /// Deletion is requested; the oracle is still cleaning up.
    Wait,
}

/// Decides the next step of a deletion of the resource with `uid` from the store object under
/// its key (if any).
pub fn cleanup(stored: Option<&StoredObject>, uid: Option<&str>) -> Cleanup {
    let Some(object) = stored else {
        return Cleanup::Release;
    };
    let mirrored_from = object.metadata.annotations.get(UID_ANNOTATION);
    if uid.is_none() || mirrored_from.map(String::as_str) != uid {
        Cleanup::Foreign
    } else if object.metadata.deletion_requested {
        Cleanup::Wait
    } else {
        Cleanup::RequestDeletion(object.metadata.owner)
    }
}

/// Sets the resource's finalizers to `list`, provided it has not changed since it was read (the
/// resource version is a precondition); returns the resource as the API server has it now.
pub async fn set_finalizers(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    list: Vec<String>,
) -> Result<DynamicObject, kube::Error> {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let mut metadata = json!({ "finalizers": list });
    if let Some(version) = &object.metadata.resource_version {
        metadata["resourceVersion"] = version.clone().into();
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(
        name,
        &params,
        &Patch::Merge(json!({ "metadata": metadata })),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_crds::api::object::{Desired, ObjectKey};
    use r1_crds::manifest::Kind;

    fn object(finalizers: Option<Vec<&str>>) -> DynamicObject {
        let mut object = DynamicObject {
            types: None,
            metadata: Default::default(),
            data: json!({}),
        };
        object.metadata.finalizers = finalizers.map(|l| l.into_iter().map(str::to_owned).collect());
        object
    }

    #[test]
    fn ours_is_added_once_and_removed_alone() {
        assert!(!has_finalizer(&object(None)));
        assert_eq!(finalizers(&object(None), true), [FINALIZER]);
        let other = object(Some(vec!["example.com/other"]));
        assert_eq!(finalizers(&other, true), ["example.com/other", FINALIZER]);
        let both = object(Some(vec![FINALIZER, "example.com/other"]));
        assert!(has_finalizer(&both));
        assert_eq!(finalizers(&both, true), ["example.com/other", FINALIZER]);
        assert_eq!(finalizers(&both, false), ["example.com/other"]);
        assert!(finalizers(&object(Some(vec![FINALIZER])), false).is_empty());
    }

    #[test]
    fn cleanup_follows_the_store_object() {
        assert_eq!(cleanup(None, Some("uid-1")), Cleanup::Release);
        let key = ObjectKey::new(Kind::Tunnel, "shop", "web");
        let desired = Desired {
            spec: r1_crds::api::spec::Spec::Tunnel(r1_crds::TunnelSpec {
                provider: r1_crds::tunnel::TunnelProvider::Cloudflare,
                token_secret_ref: Some(r1_crds::common::SecretKeyRef {
                    name: "t".into(),
                    key: "k".into(),
                }),
                sealed_token: None,
                hostname: Some("a.example".into()),
                bore: None,
            }),
            labels: Default::default(),
            annotations: [(UID_ANNOTATION.to_owned(), "uid-1".to_owned())].into(),
        };
        let owner = Address::repeat_byte(9);
        let mut stored = StoredObject::create(&key, desired, owner, "u".into(), 1, "t".into());
        assert_eq!(
            cleanup(Some(&stored), Some("uid-1")),
            Cleanup::RequestDeletion(owner)
        );
        assert_eq!(cleanup(Some(&stored), Some("uid-2")), Cleanup::Foreign);
        assert_eq!(cleanup(Some(&stored), None), Cleanup::Foreign);
        stored.metadata.deletion_requested = true;
        assert_eq!(cleanup(Some(&stored), Some("uid-1")), Cleanup::Wait);
        stored.metadata.annotations.clear();
        assert_eq!(cleanup(Some(&stored), Some("uid-1")), Cleanup::Foreign);
    }
}
