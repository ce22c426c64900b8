//! The placement of one job, or of several jobs sharing the same nodes.
//!
//! 1. Pinned replicas stay where the caller says. Existing replicas stay where they run while
//!    their node may keep them (licensed, not confirmed lost, still matching selector and GPU
//!    model); replicas beyond the wanted count and a second replica on the same node are
//!    dropped.
//! 2. Every other replica, in ascending index, takes the highest-scoring node (see
//!    [`rank`](super::rank)) of its shard that is alive, fits, hosts no replica of the job yet
//!    and — when any such node exists — belongs to an operator not yet used by the job. A fleet
//!    of more than [`SHARD_NODES`] nodes is split into shards by address prefix (a power of two
//!    of them, so each holds about half to all of [`SHARD_NODES`]): a replica ranks the shard
//!    its ring point ([`ring_point`](super::rank::ring_point)) falls in, then the following
//!    ones while none fits, and looks [`OPERATOR_SHARDS`] shards further for an unused
//!    operator. Ranking every node for every replica cost 10 ms a replica at 10,000 nodes.
//! 3. New replicas consume the node's free resources, so later replicas and later jobs in the
//!    same call see what is left.
//!
//! The result depends only on the set of candidates, never on their order: a node address that
//! appears twice with different data is ignored (its reports conflict).

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::Address;

use r1_protocol::messages::Resources;

use super::fit::{Candidate, Demand, Rejection, Rejections, may_keep, reject};
use super::rank::{ring_point, score};

/// Most nodes of one shard: a fleet up to this size is one shard, ranked whole.
pub const SHARD_NODES: usize = 64;

/// Shards past the first holding a node that fits where a replica still looks for one of an
/// operator the job does not use yet.
pub const OPERATOR_SHARDS: u64 = 4;

/// What to place for one job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlacementRequest {
    /// On-chain job id.
    pub job_id: u64,
    /// Extra input to the scores (e.g. the spec generation); 0 when unused.
    pub salt: u64,
    /// Replicas wanted (indices `0..replicas`).
    pub replicas: u32,
    /// What each replica needs.
    pub demand: Demand,
    /// Labels a node must carry.
    pub node_selector: BTreeMap<String, String>,
    /// Replicas already running, by index, kept while their node may keep them. Their nodes'
    /// free resources already account for them.
    pub existing: BTreeMap<u32, Address>,
    /// Replicas the caller holds where they are whatever this call thinks of the node (e.g.
    /// a node whose liveness is Unknown): never moved, never re-placed.
    pub pinned: BTreeMap<u32, Address>,
    /// Nodes never chosen for a new replica (e.g. where the replica just failed).
    pub exclude: BTreeSet<Address>,
}

/// A replica no node can take, and why each node was turned down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaceable {
    /// Replica index.
    pub replica: u32,
    /// Nodes turned down, by reason.
    pub why: Rejections,
}

/// The outcome for one job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// Node of every placed replica (kept and new).
    pub assignments: BTreeMap<u32, Address>,
    /// Replicas kept where they already ran.
    pub kept: BTreeSet<u32>,
    /// Replicas that could not be placed.
    pub unplaceable: Vec<Unplaceable>,
}

impl Placement {
    /// Replicas placed by this call (not kept), with their nodes.
    pub fn new_assignments(&self) -> impl Iterator<Item = (u32, Address)> + '_ {
        self.assignments
            .iter()
            .filter(|(replica, _)| !self.kept.contains(replica))
            .map(|(&r, &n)| (r, n))
    }
}

/// The nodes a pass may place on, sorted by address once, without conflicting duplicates: a
/// pass places and checks every job against the same candidates, so they are ordered once a
/// pass (sorting them, or building a map of them, for each job cost O(jobs × nodes log nodes)),
/// and each lookup is a binary search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Candidates {
    sorted: Vec<Candidate>,
}

impl Candidates {
    /// Orders `candidates` by address; an address given twice with different data is dropped
    /// (its reports conflict), given twice alike is kept once.
    pub fn new(mut candidates: Vec<Candidate>) -> Self {
        if !candidates.windows(2).all(|w| w[0].node < w[1].node) {
            candidates.sort_by(|a, b| a.node.cmp(&b.node));
            let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
            for same in candidates.chunk_by(|a, b| a.node == b.node) {
                if same.iter().all(|c| *c == same[0]) {
                    kept.push(same[0].clone());
                }
            }
            candidates = kept;
        }
        Self { sorted: candidates }
    }

    /// The candidate at `node`, if any.
    pub fn get(&self, node: &Address) -> Option<&Candidate> {
        self.sorted
            .binary_search_by(|c| c.node.cmp(node))
            .ok()
            .map(|i| &self.sorted[i])
    }

    /// Every candidate, in address order.
    pub fn iter(&self) -> std::slice::Iter<'_, Candidate> {
        self.sorted.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// How many address bits pick a shard: the shards are a power of two, each about
    /// [`SHARD_NODES`] / 2 to [`SHARD_NODES`] nodes (0 bits: one shard of every node).
    fn shard_bits(&self) -> u32 {
        let fleet = self.sorted.len().max(1).next_power_of_two();
        (fleet / SHARD_NODES).max(1).trailing_zeros()
    }

    /// The candidates whose address starts with the `bits`-bit `prefix`.
    fn shard(&self, bits: u32, prefix: u64) -> &[Candidate] {
        let start = self
            .sorted
            .partition_point(|c| address_prefix(&c.node, bits) < prefix);
        let end = self
            .sorted
            .partition_point(|c| address_prefix(&c.node, bits) <= prefix);
        &self.sorted[start..end]
    }
}

/// The first `bits` bits of `address` (at most 63).
fn address_prefix(address: &Address, bits: u32) -> u64 {
    let mut top = [0u8; 8];
    top.copy_from_slice(&address.as_slice()[..8]);
    match bits {
        0 => 0,
        bits => u64::from_be_bytes(top) >> (64 - bits.min(63)),
    }
}

impl From<Vec<Candidate>> for Candidates {
    fn from(candidates: Vec<Candidate>) -> Self {
        Self::new(candidates)
    }
}

/// The candidates of one call and the free resources of the nodes new replicas took from.
struct Nodes<'a> {
    candidates: &'a Candidates,
    left: BTreeMap<Address, Resources>,
}

impl<'a> Nodes<'a> {
    fn new(candidates: &'a Candidates) -> Self {
        Self {
            candidates,
            left: BTreeMap::new(),
        }
    }

    fn get(&self, node: &Address) -> Option<&'a Candidate> {
        self.candidates.get(node)
    }

    /// What `candidate` has free after the replicas this call put on it.
    fn free(&self, candidate: &Candidate) -> Resources {
        self.left
            .get(&candidate.node)
            .copied()
            .unwrap_or(candidate.free)
    }

    fn take(&mut self, candidate: &Candidate, amounts: &Resources) {
        let left = self.free(candidate).minus(amounts);
        self.left.insert(candidate.node, left);
    }
}

/// Places one job.
pub fn place(request: &PlacementRequest, candidates: &Candidates) -> Placement {
    place_one(request, &mut Nodes::new(candidates))
}

/// Places several jobs on the same nodes, in ascending job id (then input order), each seeing
/// the resources the previous ones took. Results come back in input order.
pub fn place_jobs(requests: &[PlacementRequest], candidates: &Candidates) -> Vec<Placement> {
    let mut nodes = Nodes::new(candidates);
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| requests[i].job_id);
    let mut results: Vec<Option<Placement>> = vec![None; requests.len()];
    for i in order {
        results[i] = Some(place_one(&requests[i], &mut nodes));
    }
    results.into_iter().map(Option::unwrap_or_default).collect()
}

fn place_one(request: &PlacementRequest, nodes: &mut Nodes<'_>) -> Placement {
    let mut placement = Placement::default();
    let mut used_nodes = BTreeSet::new();
    let mut used_operators = BTreeSet::new();
    for (&replica, &node) in request.pinned.range(..request.replicas) {
        if used_nodes.insert(node) {
            if let Some(candidate) = nodes.get(&node) {
                used_operators.insert(candidate.operator);
            }
            placement.assignments.insert(replica, node);
            placement.kept.insert(replica);
        }
    }
    for (&replica, &node) in request.existing.range(..request.replicas) {
        if placement.assignments.contains_key(&replica) {
            continue;
        }
        let keep = match nodes.get(&node) {
            Some(candidate) => may_keep(candidate, &request.demand, &request.node_selector),
            None => true,
        };
        if keep && used_nodes.insert(node) {
            if let Some(candidate) = nodes.get(&node) {
                used_operators.insert(candidate.operator);
            }
            placement.assignments.insert(replica, node);
            placement.kept.insert(replica);
        }
    }
    for replica in 0..request.replicas {
        if placement.assignments.contains_key(&replica) {
            continue;
        }
        let bits = nodes.candidates.shard_bits();
        let shards = 1u64 << bits;
        let first = address_prefix(&ring_point(request.job_id, request.salt, replica), bits);
        let mut why = Rejections::default();
        let mut fallback: Option<&Candidate> = None;
        let mut chosen = None;
        let mut shards_since_fallback = 0;
        for k in 0..shards {
            let shard = nodes.candidates.shard(bits, (first + k) % shards);
            let mut ranked: Vec<(alloy_primitives::B256, &Candidate)> = shard
                .iter()
                .map(|candidate| {
                    (
                        score(request.job_id, request.salt, replica, &candidate.node),
                        candidate,
                    )
                })
                .collect();
            ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.node.cmp(&b.1.node)));
            for (_, candidate) in &ranked {
                let node = candidate.node;
                let rejection = if used_nodes.contains(&node) || request.exclude.contains(&node) {
                    Some(Rejection::Taken)
                } else {
                    reject(
                        candidate,
                        &nodes.free(candidate),
                        &request.demand,
                        &request.node_selector,
                    )
                };
                match rejection {
                    Some(rejection) => why.add(rejection),
                    None if used_operators.contains(&candidate.operator) => {
                        fallback.get_or_insert(*candidate);
                    }
                    None => {
                        chosen = Some(*candidate);
                        break;
                    }
                }
            }
            if chosen.is_some() {
                break;
            }
            if fallback.is_some() {
                shards_since_fallback += 1;
                if shards_since_fallback > OPERATOR_SHARDS {
                    break;
                }
            }
        }
        match chosen.or(fallback) {
            Some(candidate) => {
                used_nodes.insert(candidate.node);
                used_operators.insert(candidate.operator);
                nodes.take(candidate, &request.demand.amounts());
                placement.assignments.insert(replica, candidate.node);
            }
            None => placement.unplaceable.push(Unplaceable { replica, why }),
        }
    }
    placement
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::liveness::NodeLiveness;
    use proptest::prelude::*;

    /// [`super::place`] over candidates in any order.
    fn place(request: &PlacementRequest, candidates: &[Candidate]) -> Placement {
        super::place(request, &Candidates::new(candidates.to_vec()))
    }

    /// [`super::place_jobs`] over candidates in any order.
    fn place_jobs(requests: &[PlacementRequest], candidates: &[Candidate]) -> Vec<Placement> {
        super::place_jobs(requests, &Candidates::new(candidates.to_vec()))
    }

    fn addr(i: u32) -> Address {
        let mut bytes = [0u8; 20];
        bytes[16..].copy_from_slice(&i.to_be_bytes());
        Address::from(bytes)
    }

    fn node(i: u32, operator: u32) -> Candidate {
        Candidate {
            node: addr(i),
            operator: addr(1_000_000 + operator),
            licensed: true,
            liveness: NodeLiveness::Alive,
            labels: BTreeMap::new(),
            free: Resources {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
                disk_bytes: 100 << 30,
                gpu: 0,
            },
            gpu_model: None,
        }
    }

    fn small() -> Demand {
        Demand {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
            disk_bytes: 0,
            gpu: 0,
            gpu_model: None,
        }
    }

    fn request(job_id: u64, replicas: u32) -> PlacementRequest {
        PlacementRequest {
            job_id,
            replicas,
            demand: small(),
            ..PlacementRequest::default()
        }
    }

    fn fleet(n: u32) -> Vec<Candidate> {
        (0..n).map(|i| node(i, i)).collect()
    }

    #[test]
    fn places_every_replica_on_distinct_nodes() {
        let p = place(&request(1, 3), &fleet(5));
        assert_eq!(p.assignments.len(), 3);
        assert!(p.unplaceable.is_empty());
        assert!(p.kept.is_empty());
        let nodes: BTreeSet<_> = p.assignments.values().collect();
        assert_eq!(nodes.len(), 3);
        assert_eq!(p.new_assignments().count(), 3);
    }

    #[test]
    fn too_few_nodes_leaves_replicas_unplaceable_with_reasons() {
        let mut nodes = fleet(2);
        nodes.push(Candidate {
            licensed: false,
            ..node(7, 7)
        });
        let p = place(&request(1, 3), &nodes);
        assert_eq!(p.assignments.len(), 2);
        assert_eq!(p.unplaceable.len(), 1);
        let why = &p.unplaceable[0].why;
        assert_eq!(why.0.get(&Rejection::Taken), Some(&2));
        assert_eq!(why.0.get(&Rejection::NotLicensed), Some(&1));
        assert_eq!(
            place(&request(1, 1), &[]).unplaceable[0].why.to_string(),
            "no candidate nodes"
        );
    }

    #[test]
    fn operators_spread_when_possible() {
        // Four nodes of operator 0, one of operator 1: two replicas go to different operators.
        let mut nodes: Vec<Candidate> = (0..4).map(|i| node(i, 0)).collect();
        nodes.push(node(9, 1));
        for job in 0..50 {
            let p = place(&request(job, 2), &nodes);
            let ops: BTreeSet<_> = p
                .assignments
                .values()
                .map(|n| nodes.iter().find(|c| c.node == *n).map(|c| c.operator))
                .collect();
            assert_eq!(ops.len(), 2, "job {job}");
        }
        // Only one operator: still placed, on distinct nodes.
        let same: Vec<Candidate> = (0..3).map(|i| node(i, 0)).collect();
        assert_eq!(place(&request(1, 3), &same).assignments.len(), 3);
    }

    #[test]
    fn sticky_replicas_stay_unless_their_node_may_not_keep_them() {
        let nodes = fleet(6);
        let first = place(&request(3, 2), &nodes);
        let mut again = request(3, 2);
        again.existing = first.assignments.clone();
        let second = place(&again, &nodes);
        assert_eq!(second.assignments, first.assignments);
        assert_eq!(second.kept, BTreeSet::from([0, 1]));

        // Replica 0's node is lost: it moves, replica 1 stays.
        let lost = first.assignments[&0];
        let nodes_lost: Vec<Candidate> = nodes
            .iter()
            .map(|c| {
                if c.node == lost {
                    Candidate {
                        liveness: NodeLiveness::Lost,
                        ..c.clone()
                    }
                } else {
                    c.clone()
                }
            })
            .collect();
        let third = place(&again, &nodes_lost);
        assert_ne!(third.assignments[&0], lost);
        assert_eq!(third.assignments[&1], first.assignments[&1]);
        assert_eq!(third.kept, BTreeSet::from([1]));

        // Unknown, Suspect, full or absent nodes keep their replica.
        for liveness in [NodeLiveness::Unknown, NodeLiveness::Suspect] {
            let view: Vec<Candidate> = nodes
                .iter()
                .map(|c| {
                    if c.node == lost {
                        Candidate {
                            liveness,
                            free: Resources::default(),
                            ..c.clone()
                        }
                    } else {
                        c.clone()
                    }
                })
                .collect();
            assert_eq!(place(&again, &view).assignments, first.assignments);
        }
        let without: Vec<Candidate> = nodes.iter().filter(|c| c.node != lost).cloned().collect();
        assert_eq!(place(&again, &without).assignments, first.assignments);
    }

    #[test]
    fn existing_beyond_the_count_or_doubled_up_is_dropped() {
        let nodes = fleet(4);
        let mut r = request(1, 2);
        r.existing = BTreeMap::from([(0, addr(0)), (1, addr(0)), (5, addr(3))]);
        let p = place(&r, &nodes);
        assert_eq!(p.assignments[&0], addr(0));
        assert_ne!(p.assignments[&1], addr(0));
        assert_eq!(p.kept, BTreeSet::from([0]));
        assert!(!p.assignments.contains_key(&5));
    }

    #[test]
    fn pinned_replicas_are_never_moved() {
        let nodes = vec![
            Candidate {
                licensed: false,
                ..node(0, 0)
            },
            node(1, 1),
            node(2, 2),
        ];
        let mut r = request(1, 2);
        r.pinned = BTreeMap::from([(0, addr(0))]);
        r.existing = BTreeMap::from([(0, addr(1))]);
        let p = place(&r, &nodes);
        assert_eq!(p.assignments[&0], addr(0));
        assert_ne!(p.assignments[&1], addr(0));
        assert_eq!(p.kept, BTreeSet::from([0]));
    }

    #[test]
    fn excluded_nodes_are_not_chosen() {
        let nodes = fleet(3);
        let mut r = request(1, 1);
        r.exclude = BTreeSet::from([addr(0), addr(1)]);
        assert_eq!(place(&r, &nodes).assignments[&0], addr(2));
    }

    #[test]
    fn conflicting_duplicate_reports_are_ignored() {
        let a = node(0, 0);
        let b = Candidate {
            licensed: false,
            ..node(0, 0)
        };
        let p = place(&request(1, 1), &[a.clone(), b.clone()]);
        assert_eq!(p.unplaceable.len(), 1);
        let p = place(&request(1, 1), &[a.clone(), a]);
        assert_eq!(p.assignments[&0], addr(0));
    }

    #[test]
    fn jobs_in_one_call_share_resources() {
        // One node with room for two small replicas, three one-replica jobs.
        let mut only = node(0, 0);
        only.free.cpu_millis = 2000;
        let requests = [request(3, 1), request(1, 1), request(2, 1)];
        let results = place_jobs(&requests, &[only]);
        // Jobs 1 and 2 (lowest ids) get the node; job 3 does not.
        assert_eq!(results[1].assignments[&0], addr(0));
        assert_eq!(results[2].assignments[&0], addr(0));
        assert_eq!(
            results[0].unplaceable[0]
                .why
                .0
                .get(&Rejection::InsufficientCpu),
            Some(&1)
        );
    }

    #[test]
    fn gpu_jobs_go_to_matching_gpus() {
        let mut nodes = fleet(4);
        nodes[2].free.gpu = 2;
        nodes[2].gpu_model = Some("NVIDIA L4".to_owned());
        nodes[3].free.gpu = 2;
        nodes[3].gpu_model = Some("NVIDIA H100".to_owned());
        let mut r = request(1, 1);
        r.demand.gpu = 1;
        r.demand.gpu_model = Some("nvidia h100".to_owned());
        assert_eq!(place(&r, &nodes).assignments[&0], addr(3));
    }

    #[test]
    fn adding_a_node_moves_about_replicas_over_n() {
        // Fresh placements of 400 jobs × 3 replicas on 20 nodes, then on 21: the expected
        // number of moved replicas is about 3/21 per job; allow twice that.
        let (jobs, replicas, n) = (400u64, 3u32, 20u32);
        let before = fleet(n);
        let after = fleet(n + 1);
        let mut moved = 0u64;
        for job in 0..jobs {
            let a = place(&request(job, replicas), &before);
            let b = place(&request(job, replicas), &after);
            moved += (0..replicas)
                .filter(|r| a.assignments.get(r) != b.assignments.get(r))
                .count() as u64;
        }
        let expected = jobs * u64::from(replicas) / u64::from(n + 1);
        assert!(
            moved <= 2 * expected,
            "moved {moved}, expected about {expected}"
        );
    }

    /// A fleet of `n` nodes with addresses spread over the address space, as real ones are.
    fn spread_fleet(n: u32) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                node: Address::from_slice(&alloy_primitives::keccak256(i.to_be_bytes())[..20]),
                ..node(i, i)
            })
            .collect()
    }

    #[test]
    fn a_big_fleet_is_ranked_a_shard_at_a_time() {
        let fleet = spread_fleet(2_000);
        let candidates = Candidates::new(fleet.clone());
        let bits = candidates.shard_bits();
        assert_eq!(bits, 5, "2,000 nodes: 32 shards of about 62");
        let mut per_node: BTreeMap<Address, u32> = BTreeMap::new();
        for job in 0..500 {
            let placement = super::place(&request(job, 2), &candidates);
            for (replica, node) in &placement.assignments {
                let prefix = address_prefix(&ring_point(job, 0, *replica), bits);
                let shard = candidates.shard(bits, prefix);
                let best = shard
                    .iter()
                    .filter(|c| placement.assignments.get(&(1 - replica)) != Some(&c.node))
                    .max_by_key(|c| score(job, 0, *replica, &c.node))
                    .map(|c| c.node);
                assert_eq!(Some(*node), best, "job {job} replica {replica}");
                *per_node.entry(*node).or_default() += 1;
            }
        }
        let busiest = per_node.values().max().copied().unwrap_or(0);
        assert!(
            busiest <= 6,
            "1,000 replicas on 2,000 nodes, the busiest took {busiest}"
        );

        let (job, before) = (7, super::place(&request(7, 2), &candidates));
        for gone in fleet
            .iter()
            .filter(|c| !before.assignments.values().any(|n| *n == c.node))
            .take(50)
        {
            let rest: Vec<Candidate> = fleet
                .iter()
                .filter(|c| c.node != gone.node)
                .cloned()
                .collect();
            assert_eq!(
                place(&request(job, 2), &rest).assignments,
                before.assignments
            );
        }
    }

    #[test]
    fn a_replica_no_node_of_its_shard_fits_goes_to_the_next_shards() {
        let mut fleet = spread_fleet(2_000);
        let candidates = Candidates::new(fleet.clone());
        let bits = candidates.shard_bits();
        let home = address_prefix(&ring_point(3, 0, 0), bits);
        for c in &mut fleet {
            if address_prefix(&c.node, bits) == home {
                c.liveness = NodeLiveness::Lost;
            }
        }
        let placement = place(&request(3, 1), &fleet);
        let node = placement.assignments[&0];
        assert_eq!(address_prefix(&node, bits), (home + 1) % (1 << bits));
        let nothing_fits = PlacementRequest {
            demand: Demand {
                cpu_millis: 1_000_000,
                ..small()
            },
            ..request(3, 1)
        };
        let refused = place(&nothing_fits, &fleet);
        assert_eq!(refused.unplaceable.len(), 1);
        assert_eq!(
            refused.unplaceable[0].why.0.values().sum::<u32>(),
            2_000,
            "every node was asked and said why"
        );
    }

    fn arb_candidate(i: u32) -> impl Strategy<Value = Candidate> {
        (
            0u32..4,
            proptest::bool::weighted(0.9),
            prop_oneof![8 => Just(NodeLiveness::Alive), 1 => Just(NodeLiveness::Suspect), 1 => Just(NodeLiveness::Lost), 1 => Just(NodeLiveness::Unknown)],
            proptest::bool::weighted(0.8),
            0u64..5,
            0u64..5,
            0u32..3,
        )
            .prop_map(move |(operator, licensed, liveness, kyb, cpu, mem, gpu)| Candidate {
                node: addr(i),
                operator: addr(1_000_000 + operator),
                licensed,
                liveness,
                labels: if kyb { BTreeMap::from([("kyb".to_owned(), "true".to_owned())]) } else { BTreeMap::new() },
                free: Resources { cpu_millis: cpu * 1000, memory_bytes: mem << 30, disk_bytes: 10 << 30, gpu },
                gpu_model: (gpu > 0).then(|| "L4".to_owned()),
            })
    }

    fn arb_fleet() -> impl Strategy<Value = Vec<Candidate>> {
        (1u32..14).prop_flat_map(|n| (0..n).map(arb_candidate).collect::<Vec<_>>())
    }

    fn arb_request() -> impl Strategy<Value = PlacementRequest> {
        (
            any::<u64>(),
            1u32..5,
            0u64..3,
            0u64..3,
            0u32..2,
            any::<bool>(),
        )
            .prop_map(|(job_id, replicas, cpu, mem, gpu, kyb)| PlacementRequest {
                job_id,
                replicas,
                demand: Demand {
                    cpu_millis: cpu * 1000,
                    memory_bytes: mem << 30,
                    disk_bytes: 0,
                    gpu,
                    gpu_model: None,
                },
                node_selector: if kyb {
                    BTreeMap::from([("kyb".to_owned(), "true".to_owned())])
                } else {
                    BTreeMap::new()
                },
                ..PlacementRequest::default()
            })
    }

    proptest! {
        #[test]
        fn agreement_whatever_the_candidate_order(fleet in arb_fleet(), request in arb_request(), seed in any::<u64>()) {
            let mut shuffled = fleet.clone();
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(place(&request, &fleet), place(&request, &shuffled));
        }

        #[test]
        fn distinct_nodes_and_resources_fit(fleet in arb_fleet(), requests in proptest::collection::vec(arb_request(), 1..4)) {
            let results = place_jobs(&requests, &fleet);
            let mut used: BTreeMap<Address, Resources> = BTreeMap::new();
            for (request, placement) in requests.iter().zip(&results) {
                let nodes: BTreeSet<_> = placement.assignments.values().collect();
                prop_assert_eq!(nodes.len(), placement.assignments.len());
                prop_assert_eq!(placement.assignments.len() + placement.unplaceable.len(), request.replicas as usize);
                for node in placement.assignments.values() {
                    let candidate = fleet.iter().find(|c| c.node == *node).expect("placed on a candidate");
                    prop_assert!(candidate.licensed && candidate.liveness == NodeLiveness::Alive);
                    let total = used.entry(*node).or_default();
                    total.cpu_millis += request.demand.cpu_millis;
                    total.memory_bytes += request.demand.memory_bytes;
                    total.gpu += request.demand.gpu;
                    prop_assert!(total.cpu_millis <= candidate.free.cpu_millis);
                    prop_assert!(total.memory_bytes <= candidate.free.memory_bytes);
                    prop_assert!(total.gpu <= candidate.free.gpu);
                    for (k, v) in &request.node_selector {
                        prop_assert_eq!(candidate.labels.get(k), Some(v));
                    }
                }
            }
        }

        #[test]
        fn removing_an_unchosen_node_changes_nothing(fleet in arb_fleet(), request in arb_request(), pick in any::<usize>()) {
            let before = place(&request, &fleet);
            let unchosen: Vec<&Candidate> = fleet.iter().filter(|c| !before.assignments.values().any(|n| *n == c.node)).collect();
            prop_assume!(!unchosen.is_empty());
            let gone = unchosen[pick % unchosen.len()].node;
            let rest: Vec<Candidate> = fleet.iter().filter(|c| c.node != gone).cloned().collect();
            let after = place(&request, &rest);
            prop_assert_eq!(before.assignments, after.assignments);
        }

        #[test]
        fn placed_replicas_stick_when_nodes_join(fleet in arb_fleet(), request in arb_request(), extra in arb_candidate(500)) {
            let first = place(&request, &fleet);
            let mut again = request.clone();
            again.existing = first.assignments.clone();
            let mut grown = fleet.clone();
            grown.push(extra);
            let second = place(&again, &grown);
            for (replica, node) in &first.assignments {
                prop_assert_eq!(second.assignments.get(replica), Some(node));
            }
        }

        #[test]
        fn distinct_operators_when_enough_exist(request in arb_request(), operators in proptest::collection::vec(0u32..6, 1..12)) {
            let fleet: Vec<Candidate> = operators.iter().enumerate().map(|(i, &op)| node(u32::try_from(i).expect("small"), op)).collect();
            let mut request = request;
            request.demand = small();
            request.node_selector.clear();
            let distinct: BTreeSet<_> = operators.iter().collect();
            prop_assume!(distinct.len() >= request.replicas as usize);
            let placement = place(&request, &fleet);
            let used: BTreeSet<_> = placement.assignments.values().map(|n| fleet.iter().find(|c| c.node == *n).map(|c| c.operator)).collect();
            prop_assert_eq!(used.len(), request.replicas as usize);
        }
    }
}
