//! Which tunnel clients should run: one beside each running replica whose job has a tunnel,
//! forwarding to the host port of its first port; a client whose replica stopped, moved away
//! or changed (tunnel, port) is stopped; a missing one starts when its schedule allows. Pure,
//! so the loop that acts on it ([`super::runner`]) holds no decision of its own.

use std::collections::BTreeMap;

use r1_protocol::messages::{WorkloadId, WorkloadTunnel};

use super::schedule::{Schedule, Tries};

/// A client one running replica wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The tunnel.
    pub tunnel: WorkloadTunnel,
    /// The host port of the replica's first port, which the client forwards to.
    pub local_port: u16,
    /// The revision of the replica's spec (a new revision restarts the client: its token may
    /// have changed).
    pub revision: String,
}

/// One step towards the wanted clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Stop this replica's client.
    Stop(WorkloadId),
    /// Start a client for this replica.
    Start(WorkloadId),
}

/// The steps from the clients `running` (each with what it was started for) to `wanted`, at
/// `now_ms`, under `schedule`; stops come first.
pub fn plan(
    wanted: &BTreeMap<WorkloadId, Wanted>,
    running: &BTreeMap<WorkloadId, Wanted>,
    tries: &mut BTreeMap<WorkloadId, Tries>,
    now_ms: u64,
    schedule: &Schedule,
) -> Vec<Step> {
    let mut steps: Vec<Step> = running
        .iter()
        .filter(|(id, started)| wanted.get(id) != Some(started))
        .map(|(id, _)| Step::Stop(*id))
        .collect();
    tries.retain(|id, _| wanted.contains_key(id));
    for id in wanted.keys() {
        let replaced = steps.contains(&Step::Stop(*id));
        if (replaced || !running.contains_key(id))
            && tries.entry(*id).or_default().may_start(now_ms, schedule)
        {
            steps.push(Step::Start(*id));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use r1_protocol::messages::TunnelClient;

    use super::*;

    fn id(replica: u32) -> WorkloadId {
        WorkloadId { job: 1, replica }
    }

    fn want(port: u16) -> Wanted {
        Wanted {
            tunnel: WorkloadTunnel {
                name: "web".into(),
                provider: TunnelClient::Bore {
                    server: "127.0.0.1".into(),
                    port: Some(4000),
                },
            },
            local_port: port,
            revision: "r".into(),
        }
    }

    #[test]
    fn starts_stops_and_replaces() {
        let schedule = Schedule::default();
        let wanted = BTreeMap::from([(id(0), want(80)), (id(1), want(81)), (id(2), want(82))]);
        let running = BTreeMap::from([(id(1), want(81)), (id(2), want(99)), (id(3), want(83))]);
        let mut tries = BTreeMap::new();
        assert_eq!(
            plan(&wanted, &running, &mut tries, 0, &schedule),
            [
                Step::Stop(id(2)),
                Step::Stop(id(3)),
                Step::Start(id(0)),
                Step::Start(id(2))
            ]
        );
        tries.get_mut(&id(0)).map(|t| t.failed(0, &schedule));
        let steps = plan(&wanted, &BTreeMap::new(), &mut tries, 1_000, &schedule);
        assert!(!steps.contains(&Step::Start(id(0))), "backing off");
        let steps = plan(&wanted, &BTreeMap::new(), &mut tries, 2_000, &schedule);
        assert!(steps.contains(&Step::Start(id(0))));
        plan(
            &BTreeMap::new(),
            &BTreeMap::new(),
            &mut tries,
            3_000,
            &schedule,
        );
        assert!(tries.is_empty(), "forgotten with the replica");
    }

    proptest! {
        /// With no backoff pending, applying the plan leaves exactly the wanted clients
        /// running, each for what it is wanted for.
        #[test]
        fn the_plan_converges(
            wanted in proptest::collection::btree_map(0u32..8, 1u16..4, 0..6),
            running in proptest::collection::btree_map(0u32..8, 1u16..4, 0..6),
        ) {
            let wanted: BTreeMap<_, _> = wanted.into_iter().map(|(r, p)| (id(r), want(p))).collect();
            let mut clients: BTreeMap<_, _> =
                running.into_iter().map(|(r, p)| (id(r), want(p))).collect();
            let steps = plan(&wanted, &clients, &mut BTreeMap::new(), 0, &Schedule::default());
            for step in steps {
                match step {
                    Step::Stop(id) => { prop_assert!(clients.remove(&id).is_some()); }
                    Step::Start(id) => {
                        prop_assert!(clients.insert(id, wanted[&id].clone()).is_none());
                    }
                }
            }
            prop_assert_eq!(clients, wanted);
        }
    }
}
