//! One job's budget as the escrow keeps it, rebuilt from its history: what each funding call
//! must cost, what each settlement must pay to which nodes and burn, and what is left. The
//! arithmetic is the contract's, written out so that every figure on chain can be recomputed.

use std::collections::BTreeSet;

use alloy_primitives::{Address, U256};

/// Share of every paid node-epoch that is burned, in percent (`CspEscrow.BURN_PERCENT`).
pub const BURN_PERCENT: u64 = 15;

/// One settlement as the escrow must make it: epochs `[from, to)` paid to `nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// First epoch paid.
    pub from: u64,
    /// First epoch not paid.
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
    /// USDC units per node per epoch.
    pub price: U256,
    /// Nodes requested.
    pub nodes: u64,
    /// Last paid epoch.
    pub last_epoch: u64,
    /// First epoch not settled yet.
    pub next_to_settle: u64,
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
    /// A job created in `epoch` for `nodes` nodes at `price` through `last_epoch`, with what it
    /// must cost: `price × nodes × (last_epoch − epoch)` (it pays from the next epoch on).
    pub fn create(price: U256, nodes: u64, last_epoch: u64, epoch: u64) -> (Ledger, U256) {
        let cost = price * U256::from(nodes) * U256::from(last_epoch.saturating_sub(epoch));
        let ledger = Ledger {
            price,
            nodes,
            last_epoch,
            next_to_settle: epoch.saturating_add(1),
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

    /// Moves the last epoch to `last_epoch`; returns what the added epochs must cost.
    pub fn extend_duration(&mut self, last_epoch: u64) -> U256 {
        let added = last_epoch.saturating_sub(self.last_epoch);
        let cost = self.price * U256::from(self.nodes) * U256::from(added);
        self.last_epoch = self.last_epoch.max(last_epoch);
        self.add(cost);
        cost
    }

    /// Raises the node count to `nodes` (after settling, as the escrow does); returns what the
    /// added nodes must cost for every epoch not settled yet.
    pub fn extend_nodes(&mut self, nodes: u64) -> U256 {
        let added = nodes.saturating_sub(self.nodes);
        let left = self
            .last_epoch
            .saturating_add(1)
            .saturating_sub(self.next_to_settle);
        let cost = self.price * U256::from(added) * U256::from(left);
        self.nodes = self.nodes.max(nodes);
        self.add(cost);
        cost
    }

    fn add(&mut self, cost: U256) {
        self.balance += cost;
        self.funded += cost;
    }

    /// Settles the epochs before `until` (never beyond the last one) with the agreed set less
    /// `blacklisted`, as `CspEscrow._settle` does: the epochs count as settled even when no
    /// node is paid, and then nothing is emitted (`None`).
    pub fn settle(&mut self, until: u64, blacklisted: &BTreeSet<Address>) -> Option<Settlement> {
        let end = until.min(self.last_epoch.saturating_add(1));
        let from = self.next_to_settle;
        if end <= from {
            return None;
        }
        self.next_to_settle = end;
        let per_node_total = self.price * U256::from(end - from);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(byte: u8) -> Address {
        Address::repeat_byte(byte)
    }

    #[test]
    fn a_settlement_pays_85_and_burns_15_percent_per_node() {
        let (mut ledger, cost) = Ledger::create(U256::from(100_000u64), 2, 40, 10);
        assert_eq!(cost, U256::from(6_000_000u64));
        ledger.active = vec![node(1), node(2)];
        let paid = ledger.settle(13, &BTreeSet::new()).expect("paid");
        assert_eq!((paid.from, paid.to), (11, 13));
        assert_eq!(paid.per_node, U256::from(170_000u64));
        assert_eq!(paid.to_nodes, U256::from(340_000u64));
        assert_eq!(paid.burned, U256::from(60_000u64));
        assert_eq!(ledger.balance, U256::from(5_600_000u64));
    }

    #[test]
    fn epochs_without_nodes_are_settled_unpaid() {
        let (mut ledger, _) = Ledger::create(U256::from(100u64), 1, 40, 10);
        assert_eq!(ledger.settle(15, &BTreeSet::new()), None);
        assert_eq!(ledger.next_to_settle, 15);
        ledger.active = vec![node(1)];
        assert_eq!(
            ledger.settle(16, &BTreeSet::new()).map(|s| s.from),
            Some(15)
        );
    }

    #[test]
    fn blacklisted_nodes_are_not_paid() {
        let (mut ledger, _) = Ledger::create(U256::from(100u64), 2, 40, 10);
        ledger.active = vec![node(1), node(2)];
        let paid = ledger.settle(12, &BTreeSet::from([node(2)])).expect("paid");
        assert_eq!(paid.nodes, vec![node(1)]);
    }

    #[test]
    fn node_extensions_pay_for_the_epochs_not_settled() {
        let (mut ledger, _) = Ledger::create(U256::from(10u64), 1, 40, 10);
        ledger.settle(21, &BTreeSet::new());
        assert_eq!(ledger.extend_nodes(3), U256::from(10u64 * 2 * 20));
        assert_eq!(ledger.extend_duration(45), U256::from(10u64 * 3 * 5));
    }

    proptest! {
        /// Whatever the settlements, the money adds up: funded = credited + burned + refunded
        /// + what is left, and every paid node-epoch costs exactly the price.
        #[test]
        fn money_is_conserved(
            price in 1u64..5_000_000,
            nodes in 1u64..6,
            epochs in 30u64..200,
            cuts in proptest::collection::vec(0u64..250, 0..12),
            set in 0usize..6,
            close in any::<bool>(),
        ) {
            let (mut ledger, _) = Ledger::create(U256::from(price), nodes, 100 + epochs, 100);
            ledger.active = (1..=set.min(nodes as usize) as u8).map(node).collect();
            let mut sorted = cuts.clone();
            sorted.sort();
            let mut node_epochs = 0u64;
            for cut in sorted {
                if let Some(paid) = ledger.settle(100 + cut, &BTreeSet::new()) {
                    node_epochs += (paid.to - paid.from) * paid.nodes.len() as u64;
                }
            }
            if close {
                ledger.close();
            }
            prop_assert_eq!(
                ledger.funded,
                ledger.to_nodes + ledger.burned + ledger.refunded + ledger.balance
            );
            prop_assert_eq!(ledger.to_nodes + ledger.burned, U256::from(price) * U256::from(node_epochs));
            prop_assert!(node_epochs <= nodes * epochs);
        }
    }
}
