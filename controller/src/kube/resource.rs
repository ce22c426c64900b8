//! The four r1 kinds as the Kubernetes API serves them: their API resources (group, version,
//! plural) for dynamic clients, and the names r1 writes into the cluster.

use kube::api::{ApiResource, DynamicObject};
use r1_crds::manifest::Kind;
use r1_crds::{DeeployJob, DeeployProject, Escrow, Tunnel};

/// The finalizer that keeps a custom resource until the oracle has cleaned up after it on chain.
pub const FINALIZER: &str = "deeploy.ratio1.ai/onchain-cleanup";

/// Annotation the mirrored store object carries with the custom resource's uid, so a deletion in
/// the cluster only ever deletes the store object that came from that very resource.
pub const UID_ANNOTATION: &str = "deeploy.ratio1.ai/kube-uid";

/// The field manager of every write r1 makes to the cluster, so `kubectl` shows who owns what.
pub const FIELD_MANAGER: &str = "r1-oracle";

/// The API resource of `kind`, taken from the r1-crds types so the adapter and the generated
/// CRDs cannot disagree.
pub fn api_resource(kind: Kind) -> ApiResource {
    match kind {
        Kind::Project => ApiResource::erase::<DeeployProject>(&()),
        Kind::Job => ApiResource::erase::<DeeployJob>(&()),
        Kind::Tunnel => ApiResource::erase::<Tunnel>(&()),
        Kind::Escrow => ApiResource::erase::<Escrow>(&()),
    }
}

/// `Kind namespace/name` of a custom resource, for logs and messages.
pub fn describe(kind: Kind, object: &DynamicObject) -> String {
    format!(
        "{kind} {}/{}",
        object.metadata.namespace.as_deref().unwrap_or_default(),
        object.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_resources_match_the_crds() {
        let job = api_resource(Kind::Job);
        assert_eq!(job.group, "deeploy.ratio1.ai");
        assert_eq!(job.version, "v1alpha1");
        assert_eq!(job.api_version, "deeploy.ratio1.ai/v1alpha1");
        assert_eq!(job.kind, "DeeployJob");
        for kind in Kind::ALL {
            let resource = api_resource(kind);
            assert_eq!(resource.kind, kind.as_str());
        }
    }
}
