//! Who owns a custom resource in the kube path. The cluster's RBAC decides who may write there;
//! the CSP address on whose behalf the oracle acts is the `spec.owner` of the namespace's
//! `Escrow`s and `DeeployProject`s. Jobs and tunnels carry no owner of their own: they take their
//! namespace's, provided the oracle's store agrees on who owns that namespace.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use alloy_primitives::Address;
use kube::api::DynamicObject;
use kube::runtime::reflector::Store;

/// The cluster's `Escrow`s and `DeeployProject`s as the adapter's watches last saw them.
#[derive(Clone)]
pub struct ClusterView {
    /// Every watched `Escrow`.
    pub escrows: Store<DynamicObject>,
    /// Every watched `DeeployProject`.
    pub projects: Store<DynamicObject>,
}

impl ClusterView {
    /// The distinct owners the namespace's escrows and projects name (malformed addresses are
    /// skipped: those objects are rejected on their own).
    pub fn owners(&self, namespace: &str) -> BTreeSet<Address> {
        self.escrows
            .state()
            .into_iter()
            .chain(self.projects.state())
            .filter(|object| object.metadata.namespace.as_deref() == Some(namespace))
            .filter_map(|object| spec_owner(&object))
            .collect()
    }

    /// The watched `DeeployProject` `namespace/name`, if the cluster has it.
    pub fn project(&self, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        self.projects.find(|project| {
            project.metadata.namespace.as_deref() == Some(namespace)
                && project.metadata.name.as_deref() == Some(name)
        })
    }
}

/// `spec.owner` of an escrow or project, if it is an address.
pub fn spec_owner(object: &DynamicObject) -> Option<Address> {
    object
        .data
        .get("spec")?
        .get("owner")?
        .as_str()
        .and_then(|text| Address::from_str(text).ok())
}

/// On whose behalf a job or tunnel is mirrored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenant {
    /// The namespace's owner, agreed by the cluster and the store.
    Owner(Address),
    /// Not known yet: the namespace's escrow or project is not mirrored yet.
    Waiting(String),
    /// The cluster and the store disagree; mirroring would act for the wrong CSP.
    Refused(String),
}

/// Decides the tenant of a job or tunnel in `namespace` from the owners its escrows and projects
/// name in the cluster and the owner the store records for the namespace.
pub fn tenant(namespace: &str, cluster: &BTreeSet<Address>, store: Option<Address>) -> Tenant {
    let mut owners = cluster.iter();
    let owner = match (owners.next(), owners.next()) {
        (None, _) => {
            return Tenant::Waiting(format!(
                "namespace {namespace} has no Escrow or DeeployProject naming its owner yet"
            ));
        }
        (Some(&owner), None) => owner,
        (Some(_), Some(_)) => {
            let names: Vec<String> = cluster.iter().map(|a| a.to_checksum(None)).collect();
            return Tenant::Refused(format!(
                "the Escrows and DeeployProjects of namespace {namespace} name different owners ({}); a namespace belongs to one CSP",
                names.join(", ")
            ));
        }
    };
    match store {
        None => Tenant::Waiting(format!(
            "waiting for the oracle to accept an Escrow or DeeployProject of namespace {namespace}"
        )),
        Some(stored) if stored == owner => Tenant::Owner(owner),
        Some(stored) => Tenant::Refused(format!(
            "namespace {namespace} belongs to {} in the oracle, not to {}",
            stored.to_checksum(None),
            owner.to_checksum(None)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(byte: u8) -> Address {
        Address::repeat_byte(byte)
    }

    #[test]
    fn one_owner_agreed_by_cluster_and_store_is_the_tenant() {
        let cluster = BTreeSet::from([address(1)]);
        assert_eq!(
            tenant("shop", &cluster, Some(address(1))),
            Tenant::Owner(address(1))
        );
    }

    #[test]
    fn no_owner_yet_waits() {
        let none = BTreeSet::new();
        assert!(matches!(
            tenant("shop", &none, Some(address(1))),
            Tenant::Waiting(m) if m.contains("no Escrow or DeeployProject")
        ));
        let cluster = BTreeSet::from([address(1)]);
        assert!(matches!(
            tenant("shop", &cluster, None),
            Tenant::Waiting(m) if m.contains("waiting for the oracle")
        ));
    }

    #[test]
    fn disagreement_is_refused() {
        let two = BTreeSet::from([address(1), address(2)]);
        assert!(matches!(
            tenant("shop", &two, Some(address(1))),
            Tenant::Refused(m) if m.contains("different owners")
        ));
        let cluster = BTreeSet::from([address(2)]);
        assert!(matches!(
            tenant("shop", &cluster, Some(address(1))),
            Tenant::Refused(m) if m.contains("belongs to 0x0101")
        ));
    }

    #[test]
    fn spec_owner_reads_an_address_or_nothing() {
        let mut object = DynamicObject {
            types: None,
            metadata: Default::default(),
            data: serde_json::json!({"spec": {"owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}}),
        };
        assert_eq!(
            spec_owner(&object).map(|a| a.to_checksum(None)),
            Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8".to_owned())
        );
        object.data = serde_json::json!({"spec": {"owner": "nobody"}});
        assert_eq!(spec_owner(&object), None);
        object.data = serde_json::json!({});
        assert_eq!(spec_owner(&object), None);
    }
}
