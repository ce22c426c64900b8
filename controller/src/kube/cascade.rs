//! Owner references that make deleting a project cascade in the cluster: a `DeeployJob` is owned
//! by the `DeeployProject` its `projectRef` names, a `Tunnel` by the projects of the jobs that
//! use it. The references block the owner's foreground deletion and control nothing
//! (`blockOwnerDeletion: true`, `controller: false`), so deleting a project in the foreground
//! (`kubectl delete --cascade=foreground`, Argo CD's default) deletes its jobs and tunnels first,
//! each through the oracle's on-chain cleanup finalizer.
//!
//! [`owning_projects`], [`project_reference`] and [`owner_patch`] decide; [`apply_owners`]
//! writes `metadata.ownerReferences` by server-side apply as the adapter's field manager, only
//! when a reference is missing and the project's uid is known (it is in the cluster).

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use r1_crds::api::object::StoredObject;
use r1_crds::manifest::Kind;
use serde_json::{Value, json};

use crate::kube::resource::{FIELD_MANAGER, api_resource};

/// The names of the projects (in the object's namespace) that should own `object`, a resource
/// of `kind`: a job's `projectRef`; for a tunnel, the projects of the live jobs among `jobs`
/// (the store's jobs of its namespace) whose `tunnelRef` names it; none for other kinds.
pub fn owning_projects(
    kind: Kind,
    object: &DynamicObject,
    jobs: &[Arc<StoredObject>],
) -> BTreeSet<String> {
    match kind {
        Kind::Job => object
            .data
            .get("spec")
            .and_then(|spec| spec.get("projectRef"))
            .and_then(|reference| reference.get("name"))
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .into_iter()
            .collect(),
        Kind::Tunnel => {
            let Some(tunnel) = object.metadata.name.as_deref() else {
                return BTreeSet::new();
            };
            jobs.iter()
                .filter(|job| !job.metadata.deletion_requested)
                .filter(|job| object.metadata.namespace.as_deref() == Some(&job.metadata.namespace))
                .filter_map(|job| job.spec.job())
                .filter(|spec| spec.tunnel_ref.as_ref().is_some_and(|t| t.name == tunnel))
                .map(|spec| spec.project_ref.name.clone())
                .collect()
        }
        Kind::Project | Kind::Escrow => BTreeSet::new(),
    }
}

/// The owner reference to `project`, a `DeeployProject` as the cluster has it: none while its
/// name or uid is unknown or while it is being deleted (nothing new is tied to a project on its
/// way out).
pub fn project_reference(project: &DynamicObject) -> Option<OwnerReference> {
    if project.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let resource = api_resource(Kind::Project);
    Some(OwnerReference {
        api_version: resource.api_version,
        kind: resource.kind,
        name: project.metadata.name.clone()?,
        uid: project.metadata.uid.clone().filter(|uid| !uid.is_empty())?,
        block_owner_deletion: Some(true),
        controller: Some(false),
    })
}

/// The server-side apply patch giving `object` (of API resource `resource`) the owner
/// references `wanted`, or `None` when none is wanted or it has every one already (by uid). The
/// patch names exactly the wanted references: one the adapter applied earlier and no longer
/// wants (a job moved to another project) goes with it; references of other managers stay.
pub fn owner_patch(
    resource: &ApiResource,
    object: &DynamicObject,
    wanted: &[OwnerReference],
) -> Option<Value> {
    let present: BTreeSet<&str> = object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|reference| reference.uid.as_str())
        .collect();
    if wanted.iter().all(|w| present.contains(w.uid.as_str())) {
        return None;
    }
    let mut references = wanted.to_vec();
    references.sort_by(|a, b| (&a.name, &a.uid).cmp(&(&b.name, &b.uid)));
    references.dedup_by(|a, b| a.uid == b.uid);
    Some(json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {
            "name": object.metadata.name,
            "ownerReferences": references,
        },
    }))
}

/// Applies `patch` (from [`owner_patch`]) to the resource `name`, as field manager `r1-oracle`
/// and without forcing: a reference another manager holds differently is left to it.
pub async fn apply_owners(
    api: &Api<DynamicObject>,
    name: &str,
    patch: &Value,
) -> Result<(), kube::Error> {
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;
    use alloy_primitives::Address;
    use r1_crds::api::object::{Desired, ObjectKey};
    use r1_crds::api::spec::Spec;

    const JOB: &str = include_str!("../../../crds/examples/job-http.yaml");

    fn dynamic(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    fn project(name: &str, uid: Option<&str>) -> DynamicObject {
        let mut value = json!({
            "apiVersion": "deeploy.ratio1.ai/v1alpha1",
            "kind": "DeeployProject",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"},
        });
        if let Some(uid) = uid {
            value["metadata"]["uid"] = uid.into();
        }
        dynamic(value)
    }

    fn job() -> DynamicObject {
        let mut value: Value = serde_yaml::from_str(JOB).unwrap();
        value["metadata"]["namespace"] = "shop".into();
        value["metadata"]["uid"] = "uid-job".into();
        dynamic(value)
    }

    fn reference(name: &str, uid: &str) -> OwnerReference {
        project_reference(&project(name, Some(uid))).unwrap()
    }

    /// A job of the store in `namespace` using tunnel `tunnel` (if any) for project `project`.
    fn stored_job(
        namespace: &str,
        name: &str,
        project: &str,
        tunnel: Option<&str>,
    ) -> StoredObject {
        let mut value: Value = serde_yaml::from_str(JOB).unwrap();
        value["spec"]["projectRef"]["name"] = project.into();
        if let Some(tunnel) = tunnel {
            value["spec"]["tunnelRef"] = json!({"name": tunnel});
        }
        let spec: r1_crds::DeeployJobSpec = serde_json::from_value(value["spec"].clone()).unwrap();
        let key = ObjectKey::new(Kind::Job, namespace, name);
        let desired = Desired {
            spec: Spec::Job(Box::new(spec)),
            labels: Default::default(),
            annotations: Default::default(),
        };
        StoredObject::create(
            &key,
            desired,
            Address::repeat_byte(1),
            "u".into(),
            1,
            "t".into(),
        )
    }

    #[test]
    fn a_job_is_owned_by_its_project() {
        assert_eq!(
            owning_projects(Kind::Job, &job(), &[]),
            BTreeSet::from(["hello".to_owned()])
        );
        let mut no_ref = job();
        no_ref.data["spec"]["projectRef"] = json!({});
        assert!(owning_projects(Kind::Job, &no_ref, &[]).is_empty());
        let escrow = dynamic(json!({"metadata": {"name": "e", "namespace": "shop"}, "spec": {}}));
        assert!(owning_projects(Kind::Escrow, &escrow, &[]).is_empty());
        assert!(owning_projects(Kind::Project, &project("p", Some("u")), &[]).is_empty());
    }

    #[test]
    fn a_tunnel_is_owned_by_the_projects_of_the_live_jobs_using_it() {
        let tunnel = dynamic(json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {}}));
        let mut leaving = stored_job("shop", "old", "gone", Some("web"));
        leaving.metadata.deletion_requested = true;
        let jobs = [
            stored_job("shop", "a", "hello", Some("web")),
            stored_job("shop", "b", "hello", Some("web")),
            stored_job("shop", "c", "shop", Some("web")),
            stored_job("shop", "d", "other", Some("api")),
            stored_job("shop", "e", "plain", None),
            stored_job("elsewhere", "f", "far", Some("web")),
            leaving,
        ]
        .map(Arc::new);
        assert_eq!(
            owning_projects(Kind::Tunnel, &tunnel, &jobs),
            BTreeSet::from(["hello".to_owned(), "shop".to_owned()])
        );
    }

    #[test]
    fn a_reference_needs_a_known_project_that_stays() {
        let reference = reference("hello", "uid-project");
        assert_eq!(reference.api_version, "deeploy.ratio1.ai/v1alpha1");
        assert_eq!(reference.kind, "DeeployProject");
        assert_eq!(reference.name, "hello");
        assert_eq!(reference.uid, "uid-project");
        assert_eq!(reference.block_owner_deletion, Some(true));
        assert_eq!(reference.controller, Some(false));
        assert_eq!(project_reference(&project("hello", None)), None);
        assert_eq!(project_reference(&project("hello", Some(""))), None);
        let mut leaving = project("hello", Some("uid-project"));
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(project_reference(&leaving), None);
    }

    #[test]
    fn the_patch_is_sent_only_for_a_missing_reference() {
        let resource = api_resource(Kind::Job);
        let hello = reference("hello", "uid-project");
        let patch = owner_patch(&resource, &job(), std::slice::from_ref(&hello)).unwrap();
        assert_eq!(
            patch,
            json!({
                "apiVersion": "deeploy.ratio1.ai/v1alpha1",
                "kind": "DeeployJob",
                "metadata": {
                    "name": "hello-web",
                    "ownerReferences": [{
                        "apiVersion": "deeploy.ratio1.ai/v1alpha1",
                        "kind": "DeeployProject",
                        "name": "hello",
                        "uid": "uid-project",
                        "blockOwnerDeletion": true,
                        "controller": false,
                    }],
                },
            })
        );
        // Nothing wanted, or everything there already (whoever put it there): no patch.
        assert_eq!(owner_patch(&resource, &job(), &[]), None);
        let mut owned = job();
        let mut theirs = hello.clone();
        theirs.block_owner_deletion = None;
        owned.metadata.owner_references = Some(vec![theirs]);
        assert_eq!(
            owner_patch(&resource, &owned, std::slice::from_ref(&hello)),
            None
        );
        // Another owner of the job stays out of the adapter's patch.
        let mut other = job();
        other.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "x".into(),
            uid: "uid-x".into(),
            ..OwnerReference::default()
        }]);
        let patch = owner_patch(&resource, &other, std::slice::from_ref(&hello)).unwrap();
        let references = patch["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(references.len(), 1);
        assert_eq!(references[0]["uid"], "uid-project");
    }

    #[test]
    fn a_tunnel_patch_names_every_wanted_project_once_in_order() {
        let resource = api_resource(Kind::Tunnel);
        let tunnel = dynamic(json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {}}));
        let shop = reference("shop", "uid-shop");
        let hello = reference("hello", "uid-hello");
        let patch = owner_patch(&resource, &tunnel, &[shop.clone(), hello.clone(), shop]).unwrap();
        assert_eq!(patch["kind"], "Tunnel");
        let names: Vec<&str> = patch["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["hello", "shop"]);
    }
}
