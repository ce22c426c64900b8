//! Whether this node runs a workload, and how confined: the node's sandbox settings against
//! what the workload's job asks for and the host ports it was given. Pure; the supervisor
//! reports a refusal as the replica's `failed` state instead of running it less isolated.

use std::collections::BTreeMap;

use r1_protocol::messages::{SecurityRequest, WorkloadSpec};

use crate::config::{PortsConfig, SandboxConfig};
use crate::runtime::spec::{IdMap, Isolation};

/// The labels the node advertises for what its operator allows
/// ([`SecurityRequest::required_labels`]), so the oracles place such jobs only here.
pub fn allowance_labels(sandbox: &SandboxConfig) -> BTreeMap<String, String> {
    let host_users = !sandbox.user_namespace || sandbox.allow_host_users;
    [
        (host_users, SecurityRequest::HOST_USERS_LABEL),
        (
            sandbox.allow_writable_root_filesystem,
            SecurityRequest::WRITABLE_ROOT_LABEL,
        ),
    ]
    .into_iter()
    .filter(|(allowed, _)| *allowed)
    .map(|(_, label)| (label.to_owned(), SecurityRequest::ALLOWED.to_owned()))
    .collect()
}

/// The confinement of `workload` with host ports `host_ports` (TCP and UDP), or why this node
/// refuses to run it. The scratch disk is left for the caller to add.
pub fn admit<'a>(
    workload: &WorkloadSpec,
    mut host_ports: impl Iterator<Item = &'a u16>,
    sandbox: &SandboxConfig,
    ports: &PortsConfig,
) -> Result<Isolation, String> {
    if let Some(host) = host_ports.find(|&&host| !(ports.first..=ports.last).contains(&host)) {
        return Err(format!(
            "host port {host} is outside this node's range {}-{}",
            ports.first, ports.last
        ));
    }
    let asked = workload.security.unwrap_or_default();
    if asked.host_users && sandbox.user_namespace && !sandbox.allow_host_users {
        return Err(
            "the job asks to share the host's users (no user namespace), which this node does not allow"
                .into(),
        );
    }
    if asked.writable_root_filesystem && !sandbox.allow_writable_root_filesystem {
        return Err(
            "the job asks for a writable root file system, which this node does not allow".into(),
        );
    }
    Ok(Isolation {
        id_map: (sandbox.user_namespace && !asked.host_users).then_some(IdMap {
            host_base: sandbox.id_map_base,
            size: sandbox.id_map_size,
        }),
        writable_root: asked.writable_root_filesystem,
        tmp_bytes: sandbox.tmp_bytes,
        scratch: None,
    })
}

#[cfg(test)]
mod tests {
    use r1_protocol::messages::WorkloadId;

    use super::*;

    fn workload() -> WorkloadSpec {
        WorkloadSpec {
            id: WorkloadId { job: 1, replica: 0 },
            revision: "r".into(),
            image: "localhost/x:1".into(),
            command: vec![],
            args: vec![],
            env: BTreeMap::new(),
            ports: vec![],
            cpu_millis: 250,
            memory_bytes: 128 << 20,
            gpu: 0,
            health: None,
            secrets: None,
            tunnel: None,
            security: None,
        }
    }

    #[test]
    fn defaults_give_a_user_namespace_and_a_read_only_root() {
        let isolation = admit(
            &workload(),
            [30_080].iter(),
            &SandboxConfig::default(),
            &PortsConfig::default(),
        )
        .unwrap();
        assert_eq!(
            isolation.id_map,
            Some(IdMap {
                host_base: 100_000,
                size: 65_536
            })
        );
        assert!(!isolation.writable_root);
    }

    #[test]
    fn a_host_port_outside_the_range_is_refused() {
        let refused = admit(
            &workload(),
            [30_080, 22].iter(),
            &SandboxConfig::default(),
            &PortsConfig::default(),
        )
        .unwrap_err();
        assert_eq!(
            refused,
            "host port 22 is outside this node's range 30000-32767"
        );
    }

    #[test]
    fn a_writable_root_only_where_the_operator_allows_it() {
        let mut w = workload();
        w.security = Some(SecurityRequest {
            host_users: false,
            writable_root_filesystem: true,
            no_egress: false,
        });
        let mut sandbox = SandboxConfig::default();
        let none: [u16; 0] = [];
        let ports = PortsConfig::default();
        let refused = admit(&w, none.iter(), &sandbox, &ports).unwrap_err();
        assert!(refused.contains("writable root file system"), "{refused}");
        sandbox.allow_writable_root_filesystem = true;
        assert!(
            admit(&w, none.iter(), &sandbox, &ports)
                .unwrap()
                .writable_root
        );
        sandbox.user_namespace = false;
        assert_eq!(
            admit(&w, none.iter(), &sandbox, &ports).unwrap().id_map,
            None
        );
    }

    #[test]
    fn the_node_advertises_what_its_operator_allows() {
        let mut sandbox = SandboxConfig::default();
        assert!(allowance_labels(&sandbox).is_empty());
        sandbox.allow_writable_root_filesystem = true;
        let asked = SecurityRequest {
            host_users: false,
            writable_root_filesystem: true,
            no_egress: false,
        };
        let labels = allowance_labels(&sandbox);
        for (label, value) in asked.required_labels() {
            assert_eq!(labels.get(label).map(String::as_str), Some(value));
        }
        sandbox.user_namespace = false;
        assert!(allowance_labels(&sandbox).contains_key(SecurityRequest::HOST_USERS_LABEL));
    }

    #[test]
    fn host_users_only_where_the_operator_allows_it() {
        let mut w = workload();
        w.security = Some(SecurityRequest {
            host_users: true,
            writable_root_filesystem: false,
            no_egress: false,
        });
        let mut sandbox = SandboxConfig::default();
        let none: [u16; 0] = [];
        let ports = PortsConfig::default();
        let refused = admit(&w, none.iter(), &sandbox, &ports).unwrap_err();
        assert!(refused.contains("share the host's users"), "{refused}");
        sandbox.allow_host_users = true;
        let isolation = admit(&w, none.iter(), &sandbox, &ports).unwrap();
        assert_eq!(isolation.id_map, None);
        assert!(!isolation.writable_root);
    }
}
