//! One job's budget as the escrow keeps it, rebuilt from its history: what each funding call
//! must cost, what each settlement must pay to which nodes and burn, and what is left. The
//! arithmetic is the contract's, written out so that every figure on chain can be recomputed:
//! a job buys node time by the second from its request to the end of its last epoch.

use std::collections::BTreeSet;

use alloy_primitives::{Address, U256};
use r1_contracts::epoch::EpochClock;

/// Share of every paid node-epoch that is burned, in percent (`CspEscrow.BURN_PERCENT`).
pub const BURN_PERCENT: u64 = 15;

/// One settlement as the escrow must make it: the seconds `[from, to)` paid to `nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// First second paid (unix time).
    pub from: u64,
    /// First second not paid (unix time).
    pub to: u64,
    /// The nodes paid (the agreed set less blacklisted nodes).
    pub nodes: Vec<Address>,
    /// What each of them is credited.
    pub per_node: U256,
    /// USDC units credited to the nodes in all (85 %).
    pub to_nodes: U256,
    /// USDC units burned (15 %).
    pub burned: U256,
}

/// A job's budget and node set, as its history says they must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// The manager's epoch clock, which turns epochs into seconds.
    pub clock: EpochClock,
    /// USDC units per node per epoch.
    pub price: U256,
    /// Nodes requested.
    pub nodes: u64,
    /// Last paid epoch.
    pub last_epoch: u64,
    /// The time up to which the job is settled.
    pub settled_until: u64,
    /// USDC units left.
    pub balance: U256,
    /// The agreed node set.
    pub active: Vec<Address>,
    /// Whether it closed.
    pub closed: bool,
    /// Block time of its first agreed node set.
    pub started: Option<u64>,
    /// USDC units paid in, ever.
    pub funded: U256,
    /// USDC units credited to nodes, ever.
    pub to_nodes: U256,
    /// USDC units burned, ever.
    pub burned: U256,
    /// USDC units refunded.
    pub refunded: U256,
}

impl Ledger {
    /// A job created at block time `at` for `nodes` nodes at `price` through `last_epoch`, with
    /// what it must cost: `⌊price × nodes × (end(last_epoch) − at) / epoch length⌋`.
    pub fn create(
        clock: EpochClock,
        price: U256,
        nodes: u64,
        last_epoch: u64,
        at: u64,
    ) -> (Ledger, U256) {
        let span = clock.end_s(last_epoch).saturating_sub(at);
        let cost = cost(&clock, price, nodes, span);
        let ledger = Ledger {
            clock,
            price,
            nodes,
            last_epoch,
            settled_until: at,
            balance: cost,
            active: Vec::new(),
            closed: false,
            started: None,
            funded: cost,
            to_nodes: U256::ZERO,
            burned: U256::ZERO,
            refunded: U256::ZERO,
        };
        (ledger, cost)
    }

    /// The epoch holding `settled_until`, as the escrow's `nextEpochToSettle` says it.
    pub fn next_to_settle(&self) -> u64 {
        self.clock.epoch_at(self.settled_until).unwrap_or(0)
    }

    /// Moves the last epoch to `last_epoch`; returns what the added epochs must cost.
    pub fn extend_duration(&mut self, last_epoch: u64) -> U256 {
        let added = last_epoch.saturating_sub(self.last_epoch);
        let cost = self.price * U256::from(self.nodes) * U256::from(added);
        self.last_epoch = self.last_epoch.max(last_epoch);
        self.add(cost);
        cost
    }

    /// Raises the node count to `nodes` (after settling up to the extension, as the escrow
    /// does); returns what the added nodes must cost for the seconds left.
    pub fn extend_nodes(&mut self, nodes: u64) -> U256 {
        let added = nodes.saturating_sub(self.nodes);
        let left = self
            .clock
            .end_s(self.last_epoch)
            .saturating_sub(self.settled_until);
        let cost = cost(&self.clock, self.price, added, left);
        self.nodes = self.nodes.max(nodes);
        self.add(cost);
        cost
    }

    fn add(&mut self, cost: U256) {
        self.balance += cost;
        self.funded += cost;
    }

    /// Settles the seconds before `until` (never beyond the end of the last epoch) with the
    /// agreed set less `blacklisted`, as `CspEscrow._settle` does: each node is paid
    /// `⌊price × seconds / epoch length⌋`, 15 % of it (rounded down) burned; the seconds count
    /// as settled even when no node is paid, and then nothing is emitted (`None`).
    pub fn settle(&mut self, until: u64, blacklisted: &BTreeSet<Address>) -> Option<Settlement> {
        let end = until.min(self.clock.end_s(self.last_epoch));
        let from = self.settled_until;
        if end <= from {
            return None;
        }
        self.settled_until = end;
        let per_node_total = cost(&self.clock, self.price, 1, end - from);
        let per_node_burn = per_node_total * U256::from(BURN_PERCENT) / U256::from(100u64);
        let per_node = per_node_total - per_node_burn;
        let nodes: Vec<Address> = self
            .active
            .iter()
            .copied()
            .filter(|n| !blacklisted.contains(n))
            .collect();
        if nodes.is_empty() {
            return None;
        }
        let paid = U256::from(nodes.len());
        let settlement = Settlement {
            from,
            to: end,
            per_node,
            to_nodes: per_node * paid,
            burned: per_node_burn * paid,
            nodes,
        };
        let spent = settlement.to_nodes + settlement.burned;
        self.balance = self.balance.saturating_sub(spent);
        self.to_nodes += settlement.to_nodes;
        self.burned += settlement.burned;
        Some(settlement)
    }

    /// Closes the job; returns the refund: whatever is left.
    pub fn close(&mut self) -> U256 {
        let refund = self.balance;
        self.balance = U256::ZERO;
        self.refunded += refund;
        self.active.clear();
        self.closed = true;
        refund
    }
}

/// What `nodes` nodes cost for `span` seconds at `price` per node per epoch, rounded down as
/// the escrow rounds it.
fn cost(clock: &EpochClock, price: U256, nodes: u64, span: u64) -> U256 {
    price * U256::from(nodes) * U256::from(span) / U256::from(clock.length_s())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(byte: u8) -> Address {
        Address::repeat_byte(byte)
    }

    /// 100-second epochs from t = 1000.
    fn clock() -> EpochClock {
        EpochClock::new(1_000, 100).expect("non-zero length")
    }

    #[test]
    fn a_settlement_pays_85_and_burns_15_percent_per_node() {
        let c = clock();
        let (mut ledger, cost) = Ledger::create(c, U256::from(100_000u64), 2, 40, c.start_s(11));
        assert_eq!(cost, U256::from(6_000_000u64), "30 whole epochs × 2 nodes");
        ledger.active = vec![node(1), node(2)];
        let paid = ledger
            .settle(c.start_s(13), &BTreeSet::new())
            .expect("paid");
        assert_eq!((paid.from, paid.to), (c.start_s(11), c.start_s(13)));
        assert_eq!(paid.per_node, U256::from(170_000u64));
        assert_eq!(paid.to_nodes, U256::from(340_000u64));
        assert_eq!(paid.burned, U256::from(60_000u64));
        assert_eq!(ledger.balance, U256::from(5_600_000u64));
        assert_eq!(ledger.next_to_settle(), 13);
    }

    #[test]
    fn a_job_created_mid_epoch_pays_the_rest_of_it_by_the_second() {
        let c = clock();
        // 25 s into epoch 10, through epoch 40: 75 s + 30 epochs at 7 units per 100 s.
        let (mut ledger, cost) = Ledger::create(c, U256::from(7u64), 1, 40, c.start_s(10) + 25);
        assert_eq!(cost, U256::from((7 * 3_075) / 100u64));
        ledger.active = vec![node(1)];
        let paid = ledger
            .settle(c.start_s(10) + 58, &BTreeSet::new())
            .expect("paid");
        assert_eq!(
            paid.per_node + paid.burned,
            U256::from(7 * 33 / 100u64),
            "33 s at 7 per 100 s, rounded down"
        );
        assert_eq!(ledger.next_to_settle(), 10);
        // Never beyond the end of the last epoch.
        let rest = ledger.settle(c.end_s(60), &BTreeSet::new()).expect("paid");
        assert_eq!(rest.to, c.end_s(40));
    }

    #[test]
    fn seconds_without_nodes_are_settled_unpaid() {
        let c = clock();
        let (mut ledger, _) = Ledger::create(c, U256::from(100u64), 1, 40, c.start_s(10) + 50);
        assert_eq!(ledger.settle(c.start_s(15), &BTreeSet::new()), None);
        assert_eq!(ledger.settled_until, c.start_s(15));
        ledger.active = vec![node(1)];
        assert_eq!(
            ledger
                .settle(c.start_s(16), &BTreeSet::new())
                .map(|s| s.from),
            Some(c.start_s(15))
        );
    }

    #[test]
    fn blacklisted_nodes_are_not_paid() {
        let c = clock();
        let (mut ledger, _) = Ledger::create(c, U256::from(100u64), 2, 40, c.start_s(10));
        ledger.active = vec![node(1), node(2)];
        let paid = ledger
            .settle(c.start_s(12), &BTreeSet::from([node(2)]))
            .expect("paid");
        assert_eq!(paid.nodes, vec![node(1)]);
    }

    #[test]
    fn node_extensions_pay_for_the_seconds_left() {
        let c = clock();
        let (mut ledger, _) = Ledger::create(c, U256::from(10u64), 1, 40, c.start_s(10));
        ledger.settle(c.start_s(21) + 40, &BTreeSet::new());
        // 60 s of epoch 21 and epochs 22..=40 for 2 more nodes.
        assert_eq!(
            ledger.extend_nodes(3),
            U256::from(10u64 * 2 * (60 + 1_900) / 100)
        );
        assert_eq!(ledger.extend_duration(45), U256::from(10u64 * 3 * 5));
    }

    proptest! {
        /// Whatever the settlements, the money adds up: funded = credited + burned + refunded
        /// + what is left, the budget always covers what is paid, and no node is paid more than
        /// its seconds are worth.
        #[test]
        fn money_is_conserved(
            price in 1u64..5_000_000,
            nodes in 1u64..6,
            epochs in 30u64..200,
            into in 0u64..100,
            cuts in proptest::collection::vec(0u64..25_000, 0..12),
            set in 0usize..6,
            close in any::<bool>(),
        ) {
            let c = clock();
            let created = c.start_s(100) + into;
            let (mut ledger, _) = Ledger::create(c, U256::from(price), nodes, 100 + epochs, created);
            ledger.active = (1..=set.min(nodes as usize) as u8).map(node).collect();
            let mut sorted = cuts.clone();
            sorted.sort();
            let mut node_seconds = 0u64;
            for cut in sorted {
                if let Some(paid) = ledger.settle(created + cut, &BTreeSet::new()) {
                    node_seconds += (paid.to - paid.from) * paid.nodes.len() as u64;
                }
                prop_assert!(ledger.to_nodes + ledger.burned <= ledger.funded);
            }
            if close {
                ledger.close();
            }
            prop_assert_eq!(
                ledger.funded,
                ledger.to_nodes + ledger.burned + ledger.refunded + ledger.balance
            );
            prop_assert!(
                ledger.to_nodes + ledger.burned
                    <= U256::from(price) * U256::from(node_seconds) / U256::from(100u64)
            );
            prop_assert!(node_seconds <= nodes * (epochs * 100 + 100 - into));
        }
    }
}
