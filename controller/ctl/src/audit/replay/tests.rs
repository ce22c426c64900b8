//! The replay against a fake chain that emits what the contracts emit for one job's life:
//! funded, voted onto two nodes, allocated epoch by epoch, PoA minted, closed by vote and
//! refunded. The untouched history audits clean; leaving out any vote or changing any figure
//! makes it fail.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use proptest::prelude::*;
use r1_contracts::EscrowTotals;
use r1_contracts::history::{Entry, EscrowSnapshot, Fact, History, JobView, Position};

use super::{Replay, Selection, poa_reward};
use crate::audit::quorum::node_set_proposal;

const JOB: u64 = 1;
const GENESIS_TS: u64 = 1_000;

fn address(byte: u8) -> Address {
    Address::repeat_byte(byte)
}

/// What the contracts would emit and hold, for one job of one escrow.
struct FakeChain {
    history: History,
    escrow: Address,
    owner: Address,
    oracles: Vec<Address>,
    price: U256,
    next: u64,
    last: u64,
    balance: U256,
    active: Vec<Address>,
    balances: BTreeMap<Address, U256>,
    totals: EscrowTotals,
    closed: bool,
    started: u64,
    round: u64,
    poa: BTreeMap<u64, U256>,
}

impl FakeChain {
    fn new(price: u64) -> FakeChain {
        let mut chain = FakeChain {
            history: History::default(),
            escrow: address(0xe5),
            owner: address(0xc5),
            oracles: vec![address(0x01), address(0x02), address(0x03)],
            price: U256::from(price),
            next: 0,
            last: 0,
            balance: U256::ZERO,
            active: Vec::new(),
            balances: BTreeMap::new(),
            totals: EscrowTotals::default(),
            closed: false,
            started: 0,
            round: 0,
            poa: BTreeMap::new(),
        };
        let mut setup: Vec<Fact> = chain
            .oracles
            .iter()
            .map(|&oracle| Fact::OracleAdded { oracle })
            .collect();
        setup.push(Fact::JobTypePriceSet {
            job_type: 1,
            price: chain.price,
        });
        chain.tx(0, address(0x90), setup);
        chain
    }

    /// One transaction in a block of its own, in `epoch`, signed by `sender`.
    fn tx(&mut self, epoch: u64, sender: Address, facts: Vec<Fact>) {
        let block = self.history.until_block + 1;
        let tx = B256::from(U256::from(block));
        for (log_index, fact) in facts.into_iter().enumerate() {
            self.history.entries.push(Entry {
                at: Position {
                    block,
                    log_index: log_index as u64,
                },
                tx,
                fact,
            });
        }
        self.history.block_epochs.insert(block, epoch);
        self.history.senders.insert(tx, sender);
        self.history.until_block = block;
    }

    fn create(&mut self, epoch: u64, epochs: u64, nodes: u64) {
        let paid = self.price * U256::from(nodes) * U256::from(epochs);
        self.next = epoch + 1;
        self.last = epoch + epochs;
        self.balance = paid;
        self.totals.deposited += paid;
        self.totals.balance_usdc += paid;
        let fact = Fact::JobCreated {
            escrow: self.escrow,
            job: JOB,
            job_type: 1,
            project_hash: B256::repeat_byte(0x77),
            last_epoch: self.last,
            nodes,
            price: self.price,
            paid,
        };
        self.tx(epoch, self.owner, vec![fact]);
    }

    /// The escrow's `_settle`, as events.
    fn settle(&mut self, until: u64) -> Vec<Fact> {
        let end = until.min(self.last + 1);
        if end <= self.next || self.closed {
            return Vec::new();
        }
        let from = self.next;
        self.next = end;
        if self.active.is_empty() {
            return Vec::new();
        }
        let per_node = self.price * U256::from(end - from);
        let burn = per_node * U256::from(15u64) / U256::from(100u64);
        let count = U256::from(self.active.len());
        for node in &self.active {
            *self.balances.entry(*node).or_default() += per_node - burn;
        }
        let (to_nodes, burned) = ((per_node - burn) * count, burn * count);
        self.balance -= to_nodes + burned;
        self.totals.credited_to_nodes += to_nodes;
        self.totals.burned += burned;
        self.totals.balance_usdc -= burned;
        vec![
            Fact::EpochsSettled {
                escrow: self.escrow,
                job: JOB,
                from,
                to: end,
                nodes_paid: self.active.len() as u64,
                to_nodes,
                burned,
            },
            Fact::BurnQueued { usdc: burned },
        ]
    }

    /// Two of the three oracles vote for `nodes`; the second vote decides.
    fn vote(&mut self, epoch: u64, nodes: Vec<Address>) {
        let proposal = node_set_proposal(&nodes);
        let round = self.round;
        self.round += 1;
        let first = self.oracles[0];
        self.tx(
            epoch,
            first,
            vec![Fact::NodeUpdateSubmitted {
                job: JOB,
                round,
                oracle: first,
                proposal,
            }],
        );
        let second = self.oracles[(round as usize % 2) + 1];
        let mut facts = vec![
            Fact::NodeUpdateSubmitted {
                job: JOB,
                round,
                oracle: second,
                proposal,
            },
            Fact::NodeUpdateAccepted {
                job: JOB,
                round,
                proposal,
                nodes: nodes.clone(),
            },
        ];
        facts.extend(self.settle(epoch));
        if nodes.is_empty() {
            let refunded = self.balance;
            self.balance = U256::ZERO;
            self.totals.refunded += refunded;
            self.totals.balance_usdc -= refunded;
            self.closed = true;
            self.active.clear();
            facts.push(Fact::JobClosed {
                escrow: self.escrow,
                job: JOB,
                refunded,
            });
        } else {
            if self.started == 0 {
                self.started = GENESIS_TS + epoch;
                facts.push(Fact::JobStarted {
                    escrow: self.escrow,
                    job: JOB,
                    timestamp: self.started,
                });
            }
            for node in &nodes {
                self.balances.entry(*node).or_default();
            }
            self.active = nodes.clone();
            facts.push(Fact::ActiveNodesUpdated {
                escrow: self.escrow,
                job: JOB,
                nodes,
            });
        }
        self.tx(epoch, second, facts);
    }

    fn allocate(&mut self, from: u64, until: u64) {
        let settled = self.settle(until);
        let usdc_burned = settled.iter().fold(U256::ZERO, |sum, f| match f {
            Fact::EpochsSettled { burned, .. } => sum + *burned,
            _ => sum,
        });
        let oracle = self.oracles[2];
        let mut facts: Vec<Fact> = settled
            .iter()
            .filter(|f| matches!(f, Fact::EpochsSettled { .. }))
            .cloned()
            .collect();
        facts.push(Fact::AllocationPage {
            until,
            oracle,
            usdc_burned,
        });
        facts.push(Fact::RewardsAllocated {
            from,
            until,
            oracle,
            usdc_burned,
        });
        if !usdc_burned.is_zero() {
            facts.push(Fact::BurnQueued { usdc: usdc_burned });
        }
        self.tx(until, oracle, facts);
    }

    /// Every oracle reports full availability of `node` (licence `licence`) for `epoch`.
    fn availability(&mut self, epoch: u64, node: Address, licence: u64) {
        let proposal = B256::from(U256::from(epoch));
        let first = self.oracles[1];
        self.tx(
            epoch + 1,
            first,
            vec![Fact::AvailabilitySubmitted {
                epoch,
                oracle: first,
                proposal,
            }],
        );
        let second = self.oracles[0];
        let amount = poa_reward(255);
        *self.poa.entry(licence).or_default() += amount;
        let facts = vec![
            Fact::AvailabilitySubmitted {
                epoch,
                oracle: second,
                proposal,
            },
            Fact::AvailabilityAccepted { epoch, proposal },
            Fact::PoaMinted {
                epoch,
                licence,
                node,
                availability: 255,
                amount,
            },
        ];
        self.tx(epoch + 1, second, facts);
    }

    fn snapshot(&self) -> EscrowSnapshot {
        EscrowSnapshot {
            owner: self.owner,
            jobs: BTreeMap::from([(
                JOB,
                JobView {
                    job_type: 1,
                    project_hash: B256::repeat_byte(0x77),
                    start_timestamp: self.started,
                    last_epoch: self.last,
                    next_epoch_to_settle: self.next,
                    nodes: 2,
                    price: self.price,
                    balance: self.balance,
                    active_nodes: self.active.clone(),
                    closed: self.closed,
                },
            )]),
            node_balances: self.balances.clone(),
            totals: self.totals,
            poa_minted: self.poa.clone(),
        }
    }
}

/// A whole life: created in epoch 10 for `epochs` epochs, voted onto two nodes after `delay`
/// epochs, allocated in steps of `steps` epochs, a node's PoA minted, closed after its end.
fn life(price: u64, epochs: u64, delay: u64, steps: &[u64]) -> FakeChain {
    let mut chain = FakeChain::new(price);
    let nodes = vec![address(0xa1), address(0xa2)];
    chain.create(10, epochs, 2);
    let mut allocated = 10;
    let mut steps = steps.iter().cycle();
    let end = 10 + epochs + 1;
    let mut voted = false;
    while allocated < end {
        let next = (allocated + steps.next().copied().unwrap_or(1).max(1)).min(end);
        if !voted && next > 10 + delay {
            chain.vote(10 + delay, nodes.clone());
            voted = true;
        }
        chain.allocate(allocated, next);
        allocated = next;
    }
    if !voted {
        chain.vote(end, nodes.clone());
    }
    chain.availability(12, nodes[0], 7);
    chain.availability(13, nodes[0], 7);
    chain.vote(end + 1, Vec::new());
    chain
}

fn audit(chain: &FakeChain) -> super::Report {
    let replay = Replay::new(&chain.history, chain.escrow, chain.owner);
    replay.report(&chain.snapshot(), &Selection::Jobs(vec![JOB]))
}

fn rendered(report: &super::Report) -> String {
    let mut out = Vec::new();
    report.render(&mut out).expect("rendered");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn a_whole_life_audits_clean() {
    let chain = life(100_000, 30, 3, &[1]);
    let report = audit(&chain);
    let text = rendered(&report);
    assert!(report.ok(), "{text}");
    assert!(
        text.contains("job 1 funded: 30 epochs × 2 nodes × 0.10"),
        "{text}"
    );
    assert!(
        text.contains("epochs 13..13 × 2 nodes: 0.17 + 0.03 burned"),
        "{text}"
    );
    assert!(text.contains("job 1 refunded to the CSP"), "{text}");
    assert!(text.contains("2 of 2 votes"), "{text}");
    assert!(text.contains("PoA R1 minted for licence 7"), "{text}");
    // 28 epochs paid of 30: 2 × 0.10 × 2 epochs come back.
    assert_eq!(chain.totals.refunded, U256::from(400_000u64));
}

#[test]
fn a_vote_left_out_fails() {
    let mut chain = life(100_000, 30, 3, &[1]);
    let vote = chain
        .history
        .entries
        .iter()
        .position(|e| matches!(e.fact, Fact::NodeUpdateSubmitted { round: 0, .. }))
        .expect("a vote");
    chain.history.entries.remove(vote);
    let report = audit(&chain);
    assert!(!report.ok());
    let text = rendered(&report);
    assert!(text.contains("no quorum"), "{text}");
}

#[test]
fn a_changed_settlement_fails() {
    let mut chain = life(100_000, 30, 3, &[1]);
    let settled = chain
        .history
        .entries
        .iter_mut()
        .find_map(|e| match &mut e.fact {
            Fact::EpochsSettled { to_nodes, .. } => Some(to_nodes),
            _ => None,
        })
        .expect("a settlement");
    *settled += U256::from(1u64);
    assert!(!audit(&chain).ok());
}

#[test]
fn a_vote_signed_by_another_key_fails() {
    let mut chain = life(100_000, 30, 3, &[1]);
    let tx = chain
        .history
        .entries
        .iter()
        .find(|e| matches!(e.fact, Fact::NodeUpdateSubmitted { .. }))
        .map(|e| e.tx)
        .expect("a vote");
    chain.history.senders.insert(tx, address(0x66));
    let text = rendered(&audit(&chain));
    assert!(text.contains("signed by 0x6666…6666"), "{text}");
}

#[test]
fn a_state_off_by_one_unit_fails() {
    let chain = life(100_000, 30, 3, &[2, 1]);
    let replay = Replay::new(&chain.history, chain.escrow, chain.owner);
    let mut snapshot = chain.snapshot();
    snapshot.totals.balance_usdc += U256::from(1u64);
    assert!(!replay.report(&snapshot, &Selection::Escrow).ok());
    let mut snapshot = chain.snapshot();
    if let Some(balance) = snapshot.node_balances.values_mut().next() {
        *balance -= U256::from(1u64);
    }
    assert!(!replay.report(&snapshot, &Selection::Escrow).ok());
}

/// Every figure an entry carries, as a mutable amount, to tamper with one.
fn amounts(fact: &mut Fact) -> Vec<&mut U256> {
    match fact {
        Fact::JobCreated { paid, .. } => vec![paid],
        Fact::EpochsSettled {
            to_nodes, burned, ..
        } => vec![to_nodes, burned],
        Fact::JobClosed { refunded, .. } => vec![refunded],
        Fact::BurnQueued { usdc } => vec![usdc],
        Fact::RewardsAllocated { usdc_burned, .. } => vec![usdc_burned],
        Fact::AllocationPage { usdc_burned, .. } => vec![usdc_burned],
        Fact::PoaMinted { amount, .. } => vec![amount],
        _ => Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any life audits clean, and changing any one figure by any amount makes it fail.
    #[test]
    fn any_changed_figure_fails(
        price in 1u64..10_000_000,
        epochs in 30u64..50,
        delay in 1u64..40,
        steps in proptest::collection::vec(1u64..5, 1..4),
        pick in any::<proptest::sample::Index>(),
        delta in 1u64..1_000_000,
    ) {
        let mut chain = life(price, epochs, delay, &steps);
        let clean = audit(&chain);
        prop_assert!(clean.ok(), "{}", rendered(&clean));
        let mut figures: Vec<&mut U256> = chain
            .history
            .entries
            .iter_mut()
            .flat_map(|e| amounts(&mut e.fact))
            .filter(|a| !a.is_zero())
            .collect();
        prop_assume!(!figures.is_empty());
        let figure = pick.get_mut(&mut figures);
        **figure += U256::from(delta);
        prop_assert!(!audit(&chain).ok());
    }

    /// Leaving out any vote of a decided round makes the audit fail.
    #[test]
    fn any_vote_left_out_fails(
        delay in 1u64..40,
        pick in any::<proptest::sample::Index>(),
    ) {
        let mut chain = life(100_000, 30, delay, &[1]);
        let votes: Vec<usize> = chain
            .history
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.fact, Fact::NodeUpdateSubmitted { .. } | Fact::AvailabilitySubmitted { .. }))
            .map(|(i, _)| i)
            .collect();
        let left_out = *pick.get(&votes);
        chain.history.entries.remove(left_out);
        prop_assert!(!audit(&chain).ok());
    }
}
