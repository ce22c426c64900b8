//! The BFT median of the oracles' availability bytes (`A = med(H_O1 … H_On)`).
//!
//! The median is the **lower median**: the value at index `⌊(n−1)/2⌋` of the ascending sort. It
//! is always a value some oracle reported (no averaging), identical for every order of the
//! inputs, and it lies within the range of the honest values as long as at most `⌊(n−1)/2⌋`
//! values are byzantine — in particular whenever fewer than a third are.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::Address;

/// The lower median of `values` (`None` when empty).
pub fn bft_median(values: &[u8]) -> Option<u8> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get((sorted.len() - 1) / 2).copied()
}

/// The per-node median table of the availability tables of the oracles allowed to vote (the
/// caller leaves out oracles below 98 % self-availability).
///
/// Every node any table names is judged by every table: a table that does not name a node
/// says it received nothing from it (0). Nodes whose median is 0 are left out, so a node one
/// byzantine oracle invents does not appear.
pub fn median_table(tables: &[&BTreeMap<Address, u8>]) -> BTreeMap<Address, u8> {
    let nodes: BTreeSet<Address> = tables
        .iter()
        .flat_map(|table| table.keys().copied())
        .collect();
    nodes
        .into_iter()
        .filter_map(|node| {
            let values: Vec<u8> = tables
                .iter()
                .map(|table| table.get(&node).copied().unwrap_or(0))
                .collect();
            bft_median(&values)
                .filter(|&median| median > 0)
                .map(|median| (node, median))
        })
        .collect()
}

/// The availability tables of one oracle's epochs, its own and those other oracles published,
/// kept for the current and the two previous epochs.
#[derive(Debug, Default)]
pub struct AvailabilityTables {
    by_epoch: BTreeMap<u64, BTreeMap<Address, BTreeMap<Address, u8>>>,
}

impl AvailabilityTables {
    /// Records `oracle`'s table of `epoch` (the newest it sent wins).
    pub fn observe(&mut self, oracle: Address, epoch: u64, table: BTreeMap<Address, u8>) {
        self.by_epoch
            .entry(epoch)
            .or_default()
            .insert(oracle, table);
    }

    /// Records this oracle's (`me`) own table of `epoch` and forgets epochs before the two
    /// previous ones; true the first time, when the table is to be published.
    pub fn record_own(&mut self, me: Address, epoch: u64, table: BTreeMap<Address, u8>) -> bool {
        let first = !self
            .by_epoch
            .get(&epoch)
            .is_some_and(|tables| tables.contains_key(&me));
        self.by_epoch.retain(|e, _| *e + 2 >= epoch);
        self.observe(me, epoch, table);
        first
    }

    /// Every table of `epoch`, by oracle.
    pub fn of(&self, epoch: u64) -> BTreeMap<Address, BTreeMap<Address, u8>> {
        self.by_epoch.get(&epoch).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(byte: u8) -> Address {
        Address::with_last_byte(byte)
    }

    /// The lower median by its definition, counting instead of sorting (so it shares nothing
    /// with `bft_median`): the reported value `v` with at most `k = ⌊(n−1)/2⌋` values below it
    /// and more than `k` values at or below it.
    fn lower_median_by_counting(values: &[u8]) -> Option<u8> {
        let k = values.len().checked_sub(1)? / 2;
        values.iter().copied().find(|&v| {
            let below = values.iter().filter(|&&x| x < v).count();
            let at_or_below = values.iter().filter(|&&x| x <= v).count();
            below <= k && k < at_or_below
        })
    }

    #[test]
    fn tables_are_published_once_and_kept_for_two_epochs() {
        let (me, other) = (node(1), node(2));
        let table = |byte: u8| BTreeMap::from([(node(9), byte)]);
        let mut tables = AvailabilityTables::default();
        tables.observe(other, 10, table(200));
        assert!(tables.record_own(me, 10, table(255)), "first: publish");
        assert!(!tables.record_own(me, 10, table(254)), "not twice");
        assert_eq!(
            tables.of(10),
            BTreeMap::from([(me, table(254)), (other, table(200))])
        );
        tables.record_own(me, 12, table(1));
        assert_eq!(tables.of(10).len(), 2, "two epochs back is kept");
        tables.record_own(me, 13, table(1));
        assert!(tables.of(10).is_empty(), "three epochs back is forgotten");
    }

    #[test]
    fn odd_and_even_counts() {
        assert_eq!(bft_median(&[]), None);
        assert_eq!(bft_median(&[7]), Some(7));
        assert_eq!(bft_median(&[9, 1]), Some(1));
        assert_eq!(bft_median(&[3, 9, 1]), Some(3));
        assert_eq!(bft_median(&[4, 3, 9, 1]), Some(3));
        assert_eq!(bft_median(&[255, 255, 0, 0]), Some(0));
        assert_eq!(bft_median(&[0, 255]), Some(0));
        assert_eq!(bft_median(&[2, 2, 1, 2]), Some(2));
        assert_eq!(bft_median(&[9, 5, 1, 5, 9]), Some(5));
        assert_eq!(bft_median(&[60, 10, 50, 20, 40, 30]), Some(30));
    }

    #[test]
    fn tables_fill_missing_nodes_with_zero() {
        let a = BTreeMap::from([(node(1), 255), (node(2), 100)]);
        let b = BTreeMap::from([(node(1), 250), (node(2), 90), (node(9), 255)]);
        let c = BTreeMap::from([(node(1), 240), (node(2), 95)]);
        let table = median_table(&[&a, &b, &c]);
        assert_eq!(table, BTreeMap::from([(node(1), 250), (node(2), 95)]));
        assert!(median_table(&[]).is_empty());
    }

    #[test]
    fn exhaustive_small_byzantine_sets_stay_in_the_honest_range() {
        let values = [0u8, 1, 128, 254, 255];
        // n = honest + byzantine up to 5; byzantine ≤ ⌊(n−1)/2⌋.
        for n in 1usize..=5 {
            let bad_max = (n - 1) / 2;
            for bad in 0..=bad_max {
                let honest = n - bad;
                let total = values.len().pow(n as u32);
                for code in 0..total {
                    let mut c = code;
                    let mut all = Vec::with_capacity(n);
                    for _ in 0..n {
                        all.push(values[c % values.len()]);
                        c /= values.len();
                    }
                    let (good, _) = all.split_at(honest);
                    let lo = *good.iter().min().expect("honest > 0");
                    let hi = *good.iter().max().expect("honest > 0");
                    let median = bft_median(&all).expect("non-empty");
                    assert!(lo <= median && median <= hi, "{all:?} honest {honest}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn fewer_than_a_third_byzantine_cannot_leave_the_honest_range(
            honest in proptest::collection::vec(any::<u8>(), 1..40),
            byzantine in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let n = honest.len() + byzantine.len();
            prop_assume!(byzantine.len() * 3 < n);
            let mut all = honest.clone();
            all.extend(&byzantine);
            let median = bft_median(&all).expect("non-empty");
            let lo = *honest.iter().min().expect("non-empty");
            let hi = *honest.iter().max().expect("non-empty");
            prop_assert!(lo <= median && median <= hi);
        }

        #[test]
        fn order_does_not_matter(mut values in proptest::collection::vec(any::<u8>(), 1..30)) {
            let before = bft_median(&values);
            values.reverse();
            prop_assert_eq!(before, bft_median(&values));
        }

        #[test]
        fn is_the_lower_median_by_counting(
            // Small values too, so that ties are common.
            values in proptest::collection::vec(prop_oneof![0u8..4, any::<u8>()], 0..30),
        ) {
            prop_assert_eq!(bft_median(&values), lower_median_by_counting(&values));
        }
    }
}
