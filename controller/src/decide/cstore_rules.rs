//! The CSTORE access rules this oracle publishes to the nodes, as entries of the system
//! namespace ([`r1_cstore::access`]): each on-chain job's namespace (its project's), and each
//! project's grants of reading it to other projects of the same Kubernetes namespace; and,
//! against what was published last, which entries to write or delete.

use std::collections::BTreeMap;

use r1_cstore::Key;
use r1_cstore::access::{grant_key, job_key};
use r1_cstore::entry::MAX_NAMESPACE;
use sha2::{Digest, Sha256};

/// A job that has an on-chain id, and its project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    /// The on-chain job id (what a node knows a workload by).
    pub chain_job: u64,
    /// The Kubernetes namespace of the job and its project.
    pub namespace: String,
    /// The project's name.
    pub project: String,
}

/// A project's grants of reading its CSTORE namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// The Kubernetes namespace.
    pub namespace: String,
    /// The project granting.
    pub project: String,
    /// The projects (same namespace) that may read.
    pub readers: Vec<String>,
}

/// The CSTORE namespace of `project` in Kubernetes namespace `namespace`:
/// `p.<namespace>.<project>`, or `p.` and a hash of both when that is too long.
pub fn project_namespace(namespace: &str, project: &str) -> String {
    let plain = format!("p.{namespace}.{project}");
    if plain.len() <= MAX_NAMESPACE {
        return plain;
    }
    let digest = Sha256::digest(format!("{namespace}/{project}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("p.{hex}")
}

/// The rules for `jobs` and `grants`, key by key.
pub fn rules(jobs: &[JobRef], grants: &[Grants]) -> BTreeMap<Key, Vec<u8>> {
    let mut out = BTreeMap::new();
    for job in jobs {
        let namespace = project_namespace(&job.namespace, &job.project);
        out.insert(job_key(job.chain_job), namespace.into_bytes());
    }
    for project in grants {
        let granting = project_namespace(&project.namespace, &project.project);
        for reader in &project.readers {
            let reading = project_namespace(&project.namespace, reader);
            out.insert(grant_key(&granting, &reading), b"1".to_vec());
        }
    }
    out
}

/// What to publish to go from `published` to `desired`: each changed or new key with its
/// value, each dropped key with `None` (a delete).
pub fn changes(
    desired: &BTreeMap<Key, Vec<u8>>,
    published: &BTreeMap<Key, Vec<u8>>,
) -> Vec<(Key, Option<Vec<u8>>)> {
    let written = desired
        .iter()
        .filter(|(key, value)| published.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), Some(value.clone())));
    let dropped = published
        .keys()
        .filter(|key| !desired.contains_key(*key))
        .map(|key| (key.clone(), None));
    written.chain(dropped).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn job(id: u64, project: &str) -> JobRef {
        JobRef {
            chain_job: id,
            namespace: "acme".into(),
            project: project.into(),
        }
    }

    #[test]
    fn jobs_get_their_projects_namespace_and_grants_name_readers() {
        let rules = rules(
            &[job(1, "shop"), job(2, "shop"), job(3, "stats")],
            &[Grants {
                namespace: "acme".into(),
                project: "shop".into(),
                readers: vec!["stats".into()],
            }],
        );
        assert_eq!(rules[&job_key(1)], b"p.acme.shop");
        assert_eq!(rules[&job_key(3)], b"p.acme.stats");
        assert!(rules.contains_key(&grant_key("p.acme.shop", "p.acme.stats")));
        assert_eq!(rules.len(), 4);
    }

    #[test]
    fn long_names_are_hashed_into_a_valid_namespace() {
        let long = "x".repeat(63);
        let name = project_namespace(&long, &"y".repeat(200));
        assert!(name.len() <= MAX_NAMESPACE);
        assert!(Key::new(&name, b"k".to_vec(), None).is_ok());
        assert_ne!(name, project_namespace(&long, &"z".repeat(200)));
    }

    proptest! {
        #[test]
        fn applying_the_changes_to_what_was_published_gives_what_is_desired(
            desired in proptest::collection::btree_map(0u64..20, 0u8..3, 0..10),
            published in proptest::collection::btree_map(0u64..20, 0u8..3, 0..10),
        ) {
            let as_rules = |m: &BTreeMap<u64, u8>| -> BTreeMap<Key, Vec<u8>> {
                m.iter().map(|(k, v)| (job_key(*k), vec![*v])).collect()
            };
            let (desired, mut published) = (as_rules(&desired), as_rules(&published));
            for (key, value) in changes(&desired, &published) {
                match value {
                    Some(value) => published.insert(key, value),
                    None => published.remove(&key),
                };
            }
            prop_assert_eq!(published, desired);
        }
    }
}
