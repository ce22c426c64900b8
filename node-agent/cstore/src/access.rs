//! Who may read and write which namespace. The rules are entries of the system namespace
//! [`SYSTEM`], which only the network's oracles write (nodes refuse system entries from anyone
//! else, and no workload or operator command may write there):
//!
//! * `job:<id>` holds the namespace job `<id>`'s workloads own (their project's); a workload
//!   reads and writes there.
//! * the hash `readers:<namespace>` has a field per namespace whose workloads may also read
//!   `<namespace>` (the projects it grants).
//!
//! Everything else is refused with Redis's `NOPERM` error, counted by the engine.

use thiserror::Error;

use crate::entry::Key;
use crate::replica::Replica;

/// The oracles' namespace of access rules.
pub const SYSTEM: &str = "r1.system";

/// Who runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// The node's operator (on the node's socket): reads anything, writes any namespace but
    /// the system one.
    Operator,
    /// A workload of an on-chain job (through the Redis port inside its container).
    Job(u64),
}

/// What a command does to a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only.
    Read,
    /// Writes.
    Write,
}

/// Why access is refused; the text is what the client sees after `NOPERM`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Denied {
    /// The oracles have not (yet) assigned the job a namespace.
    #[error("no CSTORE namespace is assigned to job {0} (its oracles have not published it yet)")]
    NoNamespace(u64),
    /// Only oracles write the system namespace.
    #[error("the system namespace {SYSTEM} is written by oracles only")]
    System,
    /// Writing a namespace another project owns.
    #[error("job {job} may not write namespace {namespace}: its project owns {own}")]
    NotOwner {
        /// The job.
        job: u64,
        /// The namespace asked for.
        namespace: String,
        /// The job's own.
        own: String,
    },
    /// Reading a namespace whose project has not granted the job's project.
    #[error("job {job} may not read namespace {namespace}: its project has not granted {own}")]
    NotGranted {
        /// The job.
        job: u64,
        /// The namespace asked for.
        namespace: String,
        /// The job's own.
        own: String,
    },
}

/// The key of job `job`'s namespace rule.
pub fn job_key(job: u64) -> Key {
    Key {
        namespace: SYSTEM.to_owned(),
        key: format!("job:{job}").into_bytes(),
        field: None,
    }
}

/// The key of the grant to `reader` of reading `namespace`.
pub fn grant_key(namespace: &str, reader: &str) -> Key {
    Key {
        namespace: SYSTEM.to_owned(),
        key: format!("readers:{namespace}").into_bytes(),
        field: Some(reader.as_bytes().to_vec()),
    }
}

/// The namespace job `job`'s workloads own, by the rules at `now_ms`.
pub fn own_namespace(replica: &Replica, job: u64, now_ms: u64) -> Option<String> {
    let value = replica.get(&job_key(job), now_ms)?;
    String::from_utf8(value.to_vec()).ok()
}

/// Whether `who` may `access` `namespace`, by the rules in `replica` at `now_ms`.
pub fn check(
    replica: &Replica,
    who: Principal,
    namespace: &str,
    access: Access,
    now_ms: u64,
) -> Result<(), Denied> {
    let job = match who {
        Principal::Operator if namespace == SYSTEM && access == Access::Write => {
            return Err(Denied::System);
        }
        Principal::Operator => return Ok(()),
        Principal::Job(job) => job,
    };
    if namespace == SYSTEM {
        return Err(Denied::System);
    }
    let own = own_namespace(replica, job, now_ms).ok_or(Denied::NoNamespace(job))?;
    if namespace == own {
        return Ok(());
    }
    let denied = |namespace: &str, own: String| match access {
        Access::Write => Denied::NotOwner {
            job,
            namespace: namespace.to_owned(),
            own,
        },
        Access::Read => Denied::NotGranted {
            job,
            namespace: namespace.to_owned(),
            own,
        },
    };
    if access == Access::Write {
        return Err(denied(namespace, own));
    }
    if replica.get(&grant_key(namespace, &own), now_ms).is_some() {
        Ok(())
    } else {
        Err(denied(namespace, own))
    }
}

#[cfg(test)]
mod tests {
    use r1_protocol::Identity;

    use super::*;
    use crate::clock::Stamp;
    use crate::entry::Entry;

    fn rule(replica: &mut Replica, key: Key, value: Option<&str>, wall_ms: u64) {
        let oracle = Identity::generate();
        let stamp = Stamp {
            wall_ms,
            logical: 0,
        };
        let value = value.map(|v| v.as_bytes().to_vec());
        replica.apply(Entry::signed(key, value, None, stamp, &oracle).unwrap());
    }

    #[test]
    fn a_job_writes_its_own_namespace_and_reads_what_it_was_granted() {
        let mut replica = Replica::new();
        let read = |r: &Replica, job, ns| check(r, Principal::Job(job), ns, Access::Read, 10);
        let write = |r: &Replica, job, ns| check(r, Principal::Job(job), ns, Access::Write, 10);
        assert_eq!(read(&replica, 7, "p.acme"), Err(Denied::NoNamespace(7)));

        rule(&mut replica, job_key(7), Some("p.acme"), 1);
        rule(&mut replica, job_key(8), Some("p.other"), 1);
        assert_eq!(write(&replica, 7, "p.acme"), Ok(()));
        assert!(matches!(
            write(&replica, 8, "p.acme"),
            Err(Denied::NotOwner { .. })
        ));
        assert!(matches!(
            read(&replica, 8, "p.acme"),
            Err(Denied::NotGranted { .. })
        ));

        rule(&mut replica, grant_key("p.acme", "p.other"), Some("1"), 2);
        assert_eq!(read(&replica, 8, "p.acme"), Ok(()));
        assert!(
            matches!(write(&replica, 8, "p.acme"), Err(Denied::NotOwner { .. })),
            "a grant is for reading only"
        );
        rule(&mut replica, grant_key("p.acme", "p.other"), None, 3);
        assert!(matches!(
            read(&replica, 8, "p.acme"),
            Err(Denied::NotGranted { .. })
        ));
    }

    #[test]
    fn only_oracles_touch_the_system_namespace() {
        let replica = Replica::new();
        for access in [Access::Read, Access::Write] {
            assert_eq!(
                check(&replica, Principal::Job(1), SYSTEM, access, 0),
                Err(Denied::System)
            );
        }
        assert_eq!(
            check(&replica, Principal::Operator, SYSTEM, Access::Write, 0),
            Err(Denied::System)
        );
        assert_eq!(
            check(&replica, Principal::Operator, SYSTEM, Access::Read, 0),
            Ok(())
        );
        assert_eq!(
            check(&replica, Principal::Operator, "p.any", Access::Write, 0),
            Ok(())
        );
    }
}
