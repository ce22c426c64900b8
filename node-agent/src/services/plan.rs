//! Where each local replica finds the services it may call: one loopback address per service
//! inside the replica's own network namespace (127.0.1.1 for the first by name, then .2, …),
//! a listener there on each of the service's ports, and the replica's `/etc/hosts` naming them
//! (`api` and `api.shop.internal`). Pure: the I/O is [`super::mesh`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use r1_protocol::messages::WorkloadId;

use super::book::ServiceBook;

/// A listener inside a replica's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listener {
    /// The replica whose namespace it is in.
    pub workload: WorkloadId,
    /// Its container's init pid (a restarted container has a new namespace).
    pub pid: u32,
    /// The loopback address of the service.
    pub ip: Ipv4Addr,
    /// The port.
    pub port: u16,
    /// The job it reaches.
    pub job: u64,
}

/// The listeners and `/etc/hosts` texts for `running` local replicas (with their pids).
pub fn plan(
    book: &ServiceBook,
    running: &BTreeMap<WorkloadId, u32>,
) -> (BTreeSet<Listener>, BTreeMap<WorkloadId, String>) {
    let mut listeners = BTreeSet::new();
    let mut hosts = BTreeMap::new();
    for (workload, pid) in running {
        let mut services = book.callable_by(workload.job);
        services.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
        for (n, (domain, service)) in services.iter().enumerate() {
            let Some(last) = u8::try_from(n + 1).ok().filter(|l| *l < 255) else {
                break;
            };
            let ip = Ipv4Addr::new(127, 0, 1, last);
            text.push_str(&format!("{ip}\t{0} {0}.{domain}\n", service.name));
            for port in &service.ports {
                listeners.insert(Listener {
                    workload: *workload,
                    pid: *pid,
                    ip,
                    port: port.port,
                    job: service.job,
                });
            }
        }
        hosts.insert(*workload, text);
    }
    (listeners, hosts)
}

#[cfg(test)]
mod tests {
    use r1_protocol::Address;
    use r1_protocol::services::{ProjectJob, ServicePort, ServiceTable};

    use super::*;

    fn job(name: &str, job: u64, ports: &[u16], callers: &[u64]) -> ProjectJob {
        ProjectJob {
            name: name.into(),
            job,
            ports: ports
                .iter()
                .map(|p| ServicePort {
                    name: format!("p{p}"),
                    port: *p,
                })
                .collect(),
            replicas: vec![],
            callers: callers.to_vec(),
        }
    }

    #[test]
    fn each_callable_service_gets_an_address_its_ports_and_a_hosts_line() {
        let mut book = ServiceBook::default();
        book.offer(ServiceTable {
            target: Address::ZERO,
            project: "shop/shop".into(),
            domain: "shop.internal".into(),
            issued_ms: 1,
            jobs: vec![
                job("web", 8, &[], &[]),
                job("db", 6, &[5432], &[7]),
                job("api", 7, &[9000, 9100], &[7, 8]),
            ],
        });
        let web = WorkloadId::of(8, 1, 0);
        let api = WorkloadId::of(7, 1, 0);
        let (listeners, hosts) = plan(&book, &BTreeMap::from([(web, 10), (api, 11)]));
        assert_eq!(
            hosts[&web],
            "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tapi api.shop.internal\n"
        );
        assert_eq!(
            hosts[&api],
            "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tapi api.shop.internal\n127.0.1.2\tdb db.shop.internal\n"
        );
        let of_web: Vec<(Ipv4Addr, u16, u64)> = listeners
            .iter()
            .filter(|l| l.workload == web)
            .map(|l| (l.ip, l.port, l.job))
            .collect();
        assert_eq!(
            of_web,
            [
                (Ipv4Addr::new(127, 0, 1, 1), 9000, 7),
                (Ipv4Addr::new(127, 0, 1, 1), 9100, 7)
            ]
        );
        assert_eq!(listeners.iter().filter(|l| l.workload == api).count(), 3);
        assert!(
            listeners
                .iter()
                .all(|l| l.pid == if l.workload == web { 10 } else { 11 })
        );
        let stranger = WorkloadId::of(99, 1, 0);
        let (none, hosts) = plan(&book, &BTreeMap::from([(stranger, 12)]));
        assert!(none.is_empty());
        assert_eq!(hosts[&stranger], "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
    }
}
