use std::collections::BTreeMap;

use super::*;
use crate::unixfs::{CidVersion, Importer};

const CHUNK: usize = 262_144;

fn peer(byte: u8) -> Address {
    Address::repeat_byte(byte)
}

/// A file of `chunks` distinct chunks: its root and every block by CID.
fn dag(chunks: usize, version: CidVersion) -> (Cid, BTreeMap<Cid, Vec<u8>>) {
    let data: Vec<u8> = (0..chunks * CHUNK)
        .map(|i| ((i / CHUNK) as u8) ^ (i as u8).rotate_left(3))
        .collect();
    let imported = Importer::new(version).add_bytes(&data);
    let blocks = imported
        .blocks
        .into_iter()
        .map(|b| (b.cid, b.data))
        .collect();
    (imported.root, blocks)
}

/// Answers every request from `blocks`, as an honest provider holding them all.
fn answer(blocks: &BTreeMap<Cid, Vec<u8>>, asked: &[Cid]) -> Vec<(Cid, Vec<u8>)> {
    asked
        .iter()
        .filter_map(|c| blocks.get(c).map(|b| (*c, b.clone())))
        .collect()
}

/// Runs the schedule to the end against honest providers; returns the requests each got.
fn run(schedule: &mut Schedule, blocks: &BTreeMap<Cid, Vec<u8>>) -> BTreeMap<Address, usize> {
    let mut asked_of = BTreeMap::new();
    while !schedule.is_done() {
        let requests = schedule.next_requests().expect("providers");
        assert!(!requests.is_empty(), "nothing to ask but not done");
        for (provider, asked) in requests {
            *asked_of.entry(provider).or_default() += asked.len();
            let found = answer(blocks, &asked);
            let outcome = schedule.answered(provider, &asked, found);
            assert!(!outcome.penalised);
        }
    }
    asked_of
}

#[test]
fn the_whole_dag_arrives_and_is_spread_over_the_providers() {
    for version in [CidVersion::V0, CidVersion::V1] {
        let (root, blocks) = dag(6, version);
        let mut schedule = Schedule::new(root, [peer(1), peer(2), peer(3)], 2);
        let asked_of = run(&mut schedule, &blocks);
        assert_eq!(schedule.done(), blocks.len(), "{version:?}");
        assert_eq!(
            asked_of.len(),
            3,
            "every provider shares the work: {asked_of:?}"
        );
        assert!(asked_of.values().all(|&n| n <= 3), "{asked_of:?}");
    }
}

#[test]
fn the_window_bounds_what_one_provider_has_in_flight() {
    let (root, blocks) = dag(10, CidVersion::V0);
    let mut schedule = Schedule::new(root, [peer(1)], 4);
    let first = schedule.next_requests().unwrap();
    let outcome = schedule.answered(peer(1), &first[0].1, answer(&blocks, &first[0].1));
    assert_eq!(outcome.accepted.len(), 1, "the root");
    let requests = schedule.next_requests().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].1.len(), 4, "ten leaves queued, four asked");
    assert!(schedule.next_requests().unwrap().is_empty(), "window full");
}

#[test]
fn wrong_bytes_drop_the_provider_and_the_block_comes_from_another() {
    let (root, blocks) = dag(4, CidVersion::V1);
    let mut schedule = Schedule::new(root, [peer(1), peer(2)], 8);
    let mut penalised = Vec::new();
    while !schedule.is_done() {
        for (provider, asked) in schedule
            .next_requests()
            .expect("an honest provider is left")
        {
            let mut found = answer(&blocks, &asked);
            if provider == peer(1) {
                for (_, bytes) in &mut found {
                    bytes[0] ^= 0xff;
                }
            }
            if schedule.answered(provider, &asked, found).penalised {
                penalised.push(provider);
            }
        }
    }
    assert_eq!(penalised, [peer(1)]);
    assert_eq!(schedule.providers_left(), 1);
    assert_eq!(schedule.done(), blocks.len());
}

#[test]
fn a_provider_that_dies_mid_transfer_leaves_its_blocks_to_the_others() {
    let (root, blocks) = dag(8, CidVersion::V0);
    let mut schedule = Schedule::new(root, [peer(1), peer(2)], 3);
    let mut dead_asked = 0;
    while !schedule.is_done() {
        for (provider, asked) in schedule.next_requests().expect("peer 2 is left") {
            if provider == peer(1) && schedule.done() > 1 {
                dead_asked += 1;
                schedule.failed(provider, &asked);
            } else {
                let found = answer(&blocks, &asked);
                schedule.answered(provider, &asked, found);
            }
        }
    }
    assert!(
        dead_asked <= MAX_FAILURES as usize,
        "{dead_asked} requests to a dead peer"
    );
    assert_eq!(schedule.done(), blocks.len());
}

#[test]
fn a_block_nobody_has_stops_the_fetch_with_its_cid() {
    let (root, mut blocks) = dag(3, CidVersion::V1);
    let leaf = *blocks.keys().find(|c| **c != root).unwrap();
    blocks.remove(&leaf);
    let mut schedule = Schedule::new(root, [peer(1), peer(2)], 8);
    let stuck = loop {
        match schedule.next_requests() {
            Err(stuck) => break stuck,
            Ok(requests) => {
                for (provider, asked) in requests {
                    let found = answer(&blocks, &asked);
                    schedule.answered(provider, &asked, found);
                }
            }
        }
    };
    assert_eq!(stuck, Stuck::NoProvider(leaf));
}

#[test]
fn blocks_already_held_are_not_asked_for_again() {
    let (root, blocks) = dag(5, CidVersion::V0);
    let mut schedule = Schedule::new(root, [peer(1)], 8);
    assert!(schedule.held(root, &blocks[&root]));
    let leaves: Vec<Cid> = schedule.pending().copied().collect();
    assert_eq!(leaves.len(), 5);
    assert!(!schedule.held(leaves[0], b"not it"));
    for leaf in &leaves[..3] {
        assert!(schedule.held(*leaf, &blocks[leaf]));
    }
    let requests = schedule.next_requests().unwrap();
    assert_eq!(requests[0].1, leaves[3..].to_vec());
}
