//! Jobs of one project finding each other by name: an oracle tells every node that runs a
//! replica of a project's job the project's [`ServiceTable`] — each job, the named TCP ports it
//! serves, where its replicas run and which of them are ready, and which jobs may call it. The
//! node makes each served job reachable inside its own replicas' network namespaces as
//! `NAME:PORT` (and `NAME.PROJECT.internal:PORT`), and forwards each call to a ready replica,
//! on the node or over a peer-to-peer stream to another node, which checks the caller against
//! its own copy of the table before it connects. The table is sent on the node's command topic,
//! signed, like a deploy; a node keeps the newest of each project.

use serde::{Deserialize, Serialize};

use crate::Address;
use crate::envelope::{Message, MessageKind};
use crate::messages::WorkloadId;

/// Most jobs a table lists.
pub const MAX_JOBS: usize = 64;
/// Most replicas a table lists per job.
pub const MAX_REPLICAS: usize = 256;
/// Most ports a job serves.
pub const MAX_PORTS: usize = 16;
/// Longest job or port name (a DNS label).
pub const MAX_NAME_LEN: usize = 63;

/// A project's jobs as a node needs them to route calls between them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceTable {
    /// The node this table is for.
    pub target: Address,
    /// The project, `namespace/name`.
    pub project: String,
    /// The project's DNS name: `NAME.{domain}` reaches job `NAME` (`{project}.internal`).
    pub domain: String,
    /// When the oracle made it (ms since the Unix epoch); a node keeps the newest.
    pub issued_ms: u64,
    /// Every job of the project.
    pub jobs: Vec<ProjectJob>,
}

/// One job of a project.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectJob {
    /// Its name in the project, which is its service name.
    pub name: String,
    /// Its job id in the escrow contract.
    pub job: u64,
    /// The named TCP ports it serves to the project (none: it only calls others).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Every replica nodes report, ready or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
    /// The jobs (by id) whose replicas may call this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<u64>,
}

/// A named port a job serves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Its name.
    pub name: String,
    /// The container port, which callers use too.
    pub port: u16,
}

/// Where a replica runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replica {
    /// The node running it.
    pub node: Address,
    /// Its id on the node.
    pub workload: WorkloadId,
    /// Running and healthy: calls go to it.
    pub ready: bool,
}

impl Message for ServiceTable {
    const KIND: MessageKind = MessageKind::ServiceTable;
}

impl ServiceTable {
    /// What is wrong with the table, if anything: a receiver refuses it whole.
    pub fn problem(&self) -> Option<String> {
        if self.jobs.len() > MAX_JOBS {
            return Some(format!("{} jobs, more than {MAX_JOBS}", self.jobs.len()));
        }
        if !self.domain.split('.').all(is_label) {
            return Some(format!("domain {:?} is not a DNS name", self.domain));
        }
        let mut names = std::collections::BTreeSet::new();
        for job in &self.jobs {
            if !is_label(&job.name) || !names.insert(job.name.as_str()) {
                return Some(format!("job name {:?} is not a unique DNS label", job.name));
            }
            if job.ports.len() > MAX_PORTS || job.replicas.len() > MAX_REPLICAS {
                return Some(format!("job {} lists too many ports or replicas", job.name));
            }
            if let Some(port) = job.ports.iter().find(|p| !is_label(&p.name) || p.port == 0) {
                return Some(format!("job {}: bad port {:?}", job.name, port.name));
            }
            if job.callers.len() > MAX_JOBS {
                return Some(format!("job {} lists too many callers", job.name));
            }
        }
        None
    }
}

/// Whether `text` is a lowercase DNS label.
fn is_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ServiceTable {
        ServiceTable {
            target: Address::repeat_byte(1),
            project: "shop/shop".into(),
            domain: "shop.internal".into(),
            issued_ms: 1,
            jobs: vec![ProjectJob {
                name: "api".into(),
                job: 7,
                ports: vec![ServicePort {
                    name: "http".into(),
                    port: 9000,
                }],
                replicas: vec![Replica {
                    node: Address::repeat_byte(2),
                    workload: WorkloadId::of(7, 1, 0),
                    ready: true,
                }],
                callers: vec![8],
            }],
        }
    }

    #[test]
    fn a_sound_table_passes_and_a_bad_name_or_size_does_not() {
        assert_eq!(table().problem(), None);
        let mut bad = table();
        bad.jobs[0].name = "API".into();
        assert!(bad.problem().is_some());
        let mut twice = table();
        twice.jobs.push(twice.jobs[0].clone());
        assert!(twice.problem().is_some());
        let mut port = table();
        port.jobs[0].ports[0].port = 0;
        assert!(port.problem().is_some());
        let mut domain = table();
        domain.domain = "shop..internal".into();
        assert!(domain.problem().is_some());
        let mut many = table();
        many.jobs[0].replicas = vec![many.jobs[0].replicas[0]; MAX_REPLICAS + 1];
        assert!(many.problem().is_some());
    }
}
