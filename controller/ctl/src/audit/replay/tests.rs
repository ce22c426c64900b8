//! The replay against a fake chain that emits what the contracts emit for one job's life:
//! funded mid-epoch, voted onto two nodes mid-epoch, allocated epoch by epoch, PoA minted,
//! closed by vote (after its end, or mid-epoch) and refunded, settled by the second. The untouched history audits clean; leaving out any vote or changing any figure
//! makes it fail.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use proptest::prelude::*;
use r1_contracts::EscrowTotals;
use r1_contracts::epoch::EpochClock;
use r1_contracts::history::{Entry, EscrowSnapshot, Fact, History, JobView, Position};

use super::{Replay, Selection, poa_reward};
use crate::audit::quorum::node_set_proposal;

const JOB: u64 = 1;
const GENESIS_TS: u64 = 1_000;
/// Epoch length of the fake chain, seconds.
const EPOCH_S: u64 = 100;

fn clock() -> EpochClock {
    EpochClock::new(GENESIS_TS, EPOCH_S).expect("non-zero length")
}

/// `offset` seconds into `epoch`.
fn at(epoch: u64, offset: u64) -> u64 {
    clock().start_s(epoch) + offset
}

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
    settled_until: u64,
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
            settled_until: 0,
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
        chain.history.clock = Some(clock());
        chain.tx(GENESIS_TS, address(0x90), setup);
        chain
    }

    /// One transaction in a block of its own, at `time`, signed by `sender`.
    fn tx(&mut self, time: u64, sender: Address, facts: Vec<Fact>) {
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
        self.history.block_times.insert(block, time);
        self.history.senders.insert(tx, sender);
        self.history.until_block = block;
    }

    /// Creates the job at `time` for the `epochs` epochs after the one `time` is in.
    fn create(&mut self, time: u64, epochs: u64, nodes: u64) {
        let epoch = clock().epoch_at(time).expect("after genesis");
        self.last = epoch + epochs;
        let span = clock().end_s(self.last) - time;
        let paid = self.price * U256::from(nodes) * U256::from(span) / U256::from(EPOCH_S);
        self.settled_until = time;
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
        self.tx(time, self.owner, vec![fact]);
    }

    /// The escrow's `_settle` up to `until`, as events.
    fn settle(&mut self, until: u64) -> Vec<Fact> {
        let end = until.min(clock().end_s(self.last));
        if end <= self.settled_until || self.closed {
            return Vec::new();
        }
        let from = self.settled_until;
        self.settled_until = end;
        if self.active.is_empty() {
            return Vec::new();
        }
        let per_node = self.price * U256::from(end - from) / U256::from(EPOCH_S);
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
            Fact::Settled {
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

    /// Two of the three oracles vote for `nodes`; the second vote, at `time`, decides.
    fn vote(&mut self, time: u64, nodes: Vec<Address>) {
        let proposal = node_set_proposal(&nodes);
        let round = self.round;
        self.round += 1;
        let first = self.oracles[0];
        self.tx(
            time - 1,
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
        facts.extend(self.settle(time));
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
                self.started = time;
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
        self.tx(time, second, facts);
    }

    /// Allocates epochs `[from, until)`, a few seconds into epoch `until`.
    fn allocate(&mut self, from: u64, until: u64) {
        let settled = self.settle(clock().start_s(until));
        let usdc_burned = settled.iter().fold(U256::ZERO, |sum, f| match f {
            Fact::Settled { burned, .. } => sum + *burned,
            _ => sum,
        });
        let oracle = self.oracles[2];
        let mut facts: Vec<Fact> = settled
            .iter()
            .filter(|f| matches!(f, Fact::Settled { .. }))
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
        self.tx(at(until, 3), oracle, facts);
    }

    /// Every oracle reports full availability of `node` (licence `licence`) for `epoch`.
    fn availability(&mut self, epoch: u64, node: Address, licence: u64) {
        let proposal = B256::from(U256::from(epoch));
        let first = self.oracles[1];
        self.tx(
            at(epoch + 1, 5),
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
        ];
        self.tx(at(epoch + 1, 6), second, facts);
        let page = vec![
            Fact::AvailabilityPageRecorded { epoch, page: 0 },
            Fact::PoaMinted {
                epoch,
                licence,
                node,
                availability: 255,
                amount,
            },
        ];
        self.tx(at(epoch + 1, 7), first, page);
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
                    next_epoch_to_settle: clock()
                        .epoch_at(self.settled_until)
                        .expect("after genesis"),
                    settled_until: self.settled_until,
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

/// A whole life: created 37 s into epoch 10 for `epochs` epochs, voted onto two nodes 50 s
/// into the epoch `delay` epochs later, allocated in steps of `steps` epochs, a node's PoA
/// minted, closed after its end.
fn life(price: u64, epochs: u64, delay: u64, steps: &[u64]) -> FakeChain {
    let mut chain = FakeChain::new(price);
    let nodes = vec![address(0xa1), address(0xa2)];
    chain.create(at(10, 37), epochs, 2);
    let mut allocated = 10;
    let mut steps = steps.iter().cycle();
    let end = 10 + epochs + 1;
    let mut voted = false;
    while allocated < end {
        let next = (allocated + steps.next().copied().unwrap_or(1).max(1)).min(end);
        if !voted && next > 10 + delay {
            chain.vote(at(10 + delay, 50), nodes.clone());
            voted = true;
        }
        chain.allocate(allocated, next);
        allocated = next;
    }
    if !voted {
        chain.vote(at(end, 50), nodes.clone());
    }
    chain.availability(12, nodes[0], 7);
    chain.availability(13, nodes[0], 7);
    chain.vote(at(end + 1, 50), Vec::new());
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
        text.contains(
            "job 1 funded: 3063 s to the end of epoch 40 × 2 nodes × 0.10 per epoch of 100 s"
        ),
        "{text}"
    );
    // Validated 50 s into epoch 13: its other 50 s are paid, then whole epochs.
    assert!(
        text.contains(&format!("50 s from t={} × 2 nodes", at(13, 50))),
        "{text}"
    );
    assert!(
        text.contains("100 s from t=2400 × 2 nodes: 0.17 + 0.03 burned"),
        "{text}"
    );
    assert!(text.contains("job 1 refunded to the CSP"), "{text}");
    assert!(text.contains("2 of 2 votes"), "{text}");
    assert!(text.contains("PoA R1 minted for licence 7"), "{text}");
    // Paid from 50 s into epoch 13 through epoch 40: 27.5 epochs of 30.63 × 2 × 0.10 back.
    assert_eq!(chain.totals.refunded, U256::from(626_000u64));
}

#[test]
fn a_close_mid_epoch_pays_the_seconds_served_and_refunds_the_rest() {
    let mut chain = FakeChain::new(166_666);
    chain.create(at(10, 90), 30, 2);
    chain.vote(at(10, 95), vec![address(0xa1), address(0xa2)]);
    chain.allocate(10, 11);
    chain.vote(at(11, 41), Vec::new());
    let report = audit(&chain);
    let text = rendered(&report);
    assert!(report.ok(), "{text}");
    // 5 s of epoch 10 and 41 s of epoch 11, each rounded down per node.
    let per_node = 166_666 * 5 / 100 + 166_666 * 41 / 100;
    assert_eq!(
        chain.totals.credited_to_nodes + chain.totals.burned,
        U256::from(2 * per_node)
    );
    assert!(
        text.contains(&format!("41 s from t={} × 2 nodes", at(11, 0))),
        "{text}"
    );
    let funded = 166_666u64 * 2 * 3_010 / 100;
    assert_eq!(chain.totals.refunded, U256::from(funded - 2 * per_node));
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
            Fact::Settled { to_nodes, .. } => Some(to_nodes),
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
        Fact::Settled {
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

#[test]
fn poa_minted_outside_an_agreed_tables_page_fails() {
    let mut chain = life(100_000, 30, 3, &[1]);
    let node = address(0xa1);
    let amount = poa_reward(255);
    *chain.poa.entry(7).or_default() += amount * U256::from(2u64);
    // A page of an epoch no quorum agreed on, and a mint of an agreed epoch outside a page.
    let sender = chain.oracles[0];
    let mint = |epoch| Fact::PoaMinted {
        epoch,
        licence: 7,
        node,
        availability: 255,
        amount,
    };
    chain.tx(
        at(42, 1),
        sender,
        vec![
            Fact::AvailabilityPageRecorded { epoch: 14, page: 0 },
            mint(14),
        ],
    );
    chain.tx(at(42, 2), sender, vec![mint(12)]);
    let report = audit(&chain);
    let text = rendered(&report);
    assert!(!report.ok(), "{text}");
    assert!(
        text.contains("PoA of licence 7 in epoch 14 (availability 255)"),
        "{text}"
    );
    assert!(
        text.contains("PoA of licence 7 in epoch 12 (availability 255)"),
        "{text}"
    );
    assert_eq!(text.matches("without an agreed table").count(), 2, "{text}");
}
