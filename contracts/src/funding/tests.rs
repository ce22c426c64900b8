//! The funding arithmetic: extensions, the epochs asked and paid, and the creation retried across
//! an epoch boundary.

#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

/// What the escrow records for a job asked to end in `last` and run in `epoch`:
#[test]
fn a_spec_asking_more_extends_and_asking_less_changes_nothing() {
    // Created in epoch 100 for 30 epochs on 2 nodes: paid through epoch 130.
    assert!(Extension::of(2, 130, 100, 2, 30).is_empty());
    assert_eq!(
        Extension::of(2, 130, 100, 3, 30),
        Extension {
            nodes: Some(3),
            last_epoch: None
        }
    );
    assert_eq!(
        Extension::of(2, 130, 100, 2, 60),
        Extension {
            nodes: None,
            last_epoch: Some(160)
        }
    );
    assert!(
        Extension::of(2, 131, 100, 1, 30).is_empty(),
        "fewer replicas, a shorter duration, or a job extended to make up an epoch"
    );
}

/// `(lastExecutionEpoch, first whole epoch paid)`, or `None` when it refuses too few epochs.
fn escrow_creates(last: u64, epoch: u64) -> Option<(u64, u64)> {
    (last.saturating_sub(epoch) >= 30).then_some((last, epoch + 1))
}

/// Whether the escrow can pull what a job ending in `last` costs in `epoch` when the
/// approval was counted from `costed_from` (prices and nodes cancel out).
fn approval_covers(last: u64, epoch: u64, costed_from: u64) -> bool {
    last.saturating_sub(epoch) <= last.saturating_sub(costed_from)
}

#[test]
fn the_epoch_is_the_wall_clocks_not_the_last_blocks() {
    // 2 s epochs from t = 1000 s; the devnet's last block is at genesis, and a view would
    // say epoch 0 for as long as nobody sends a transaction.
    let clock = EpochClock::new(1_000, 2).expect("non-zero length");
    let now_ms = 1_100_500;
    let (epoch, last) = asked_epochs(&clock, now_ms, 30).expect("after genesis");
    assert_eq!((epoch, last), (50, 80));
    let (last, next) = escrow_creates(last, epoch).expect("30 epochs");
    assert_eq!(paid_epochs(last, next), 30);
    // Asked from the stale view (epoch 0), the job would end before it began.
    assert_eq!(escrow_creates(30, 50), None);
}

#[test]
fn asked_epochs_follow_epoch_boundaries() {
    let clock = EpochClock::new(1_000, 2).expect("non-zero length");
    assert_eq!(asked_epochs(&clock, 1_000_000, 30), Ok((0, 30)));
    assert_eq!(asked_epochs(&clock, 1_001_999, 30), Ok((0, 30)));
    assert_eq!(asked_epochs(&clock, 1_002_000, 30), Ok((1, 31)));
    assert_eq!(
        asked_epochs(&clock, 999_999, 30),
        Err(EpochError::BeforeGenesis {
            at_unix_s: 999,
            genesis_unix_s: 1_000
        })
    );
    assert_eq!(
        asked_epochs(&clock, u64::MAX, 30).map(|(_, l)| l >= 30),
        Ok(true)
    );
}

#[test]
fn a_job_costs_the_rest_of_the_current_epoch_and_the_whole_epochs_asked() {
    // 100 s epochs from t = 1000 s; 25 s into epoch 3 a job for 30 epochs costs 75 s + 30
    // epochs, rounded down once.
    let clock = EpochClock::new(1_000, 100).expect("non-zero length");
    let price = U256::from(7u64);
    assert_eq!(
        cost_now(&clock, 1_325_900, price, 2, 30),
        Ok(U256::from(7u64 * 2 * 3_075 / 100))
    );
    // At an epoch's first second: a whole epoch more than the epochs asked.
    assert_eq!(
        cost_now(&clock, 1_300_000, price, 2, 30),
        Ok(U256::from(7u64 * 2 * 31))
    );
    assert!(cost_now(&clock, 999_000, price, 2, 30).is_err());
}

#[test]
fn paid_epochs_run_from_the_next_to_settle_through_the_last() {
    assert_eq!(paid_epochs(80, 51), 30);
    assert_eq!(paid_epochs(80, 80), 1);
    assert_eq!(paid_epochs(80, 81), 0);
    assert_eq!(paid_epochs(80, 90), 0);
}

#[test]
fn a_job_mined_an_epoch_late_is_extended_by_the_missing_epoch() {
    // Asked in epoch 50 to end in 80, mined in 51: paid 52..=80, 29 epochs.
    assert_eq!(made_up_last_epoch(80, 52, 30), Some(81));
    assert_eq!(paid_epochs(81, 52), 30);
    // Mined in time, or paid more than asked: nothing to make up.
    assert_eq!(made_up_last_epoch(80, 51, 30), None);
    assert_eq!(made_up_last_epoch(80, 50, 30), None);
}

#[test]
fn the_approval_covers_a_chain_clock_behind_ours() {
    // Wall clock just into epoch 50, the chain's clock a second behind, in epoch 49: the
    // creation runs in epoch 49 and pays 31 epochs (50..=80).
    assert_eq!(costed_from(49, 50), 49);
    assert!(approval_covers(80, 49, costed_from(49, 50)));
    assert_eq!(
        escrow_creates(80, 49).map(|(l, n)| paid_epochs(l, n)),
        Some(31)
    );
    assert!(
        !approval_covers(80, 49, 50),
        "costed by the wall clock alone"
    );
    // A devnet idle since epoch 10: the chain runs the creation at its own time, somewhere
    // from epoch 10 to 50; the approval covers the dearest.
    assert_eq!(costed_from(10, 50), 10);
    assert!(approval_covers(80, 10, costed_from(10, 50)));
    assert!(approval_covers(80, 50, costed_from(10, 50)));
}

proptest! {
    /// However far behind ours the chain's clock and however old its latest block, the gas
    /// estimate passes, the approval covers what the escrow pulls, and the job ends up
    /// paid for the epochs asked: exactly when the chain runs the creation in our epoch or
    /// later (a later one is made up), plus one per epoch the chain's clock is behind ours.
    /// Mined within half an epoch of reading the clock, it is always created.
    #[test]
    fn every_created_job_holds_the_epochs_asked(
        genesis in 0u64..2_000_000_000,
        length in 1u64..100_000,
        offset_ms in 0u64..10_000_000_000,
        delay_ms in 0u64..200_000,
        lag_ms in 0u64..3_000,
        block_age_ms in 0u64..10_000_000_000,
        epochs in 30u64..400,
    ) {
        let clock = EpochClock::new(genesis, length).expect("non-zero length");
        let chain_epoch = |wall_ms: u64| {
            clock
                .epoch_at_ms(wall_ms.saturating_sub(lag_ms).max(genesis * 1000))
                .expect("after genesis")
        };
        let mut now = genesis * 1000 + offset_ms;
        let delay_ms = delay_ms % (length * 1000);
        let mut created = None;
        for _ in 0..CREATE_ATTEMPTS {
            let (epoch, last) = asked_epochs(&clock, now, epochs).expect("after genesis");
            let view = chain_epoch(now.saturating_sub(block_age_ms));
            let costed_from = costed_from(view, epoch);
            let estimated = chain_epoch(now);
            prop_assert!(escrow_creates(last, estimated).is_some(), "the estimate passes");
            prop_assert!(approval_covers(last, estimated, costed_from));
            now += delay_ms;
            let mined = chain_epoch(now);
            prop_assert!(approval_covers(last, mined, costed_from));
            created = escrow_creates(last, mined).map(|job| (job, epoch, mined));
            if created.is_some() {
                break;
            }
        }
        prop_assert!(created.is_some() || delay_ms >= length * 1000 / 2);
        if let Some(((last, next), epoch, mined)) = created {
            let last = made_up_last_epoch(last, next, epochs).unwrap_or(last);
            prop_assert_eq!(paid_epochs(last, next), epochs + epoch.saturating_sub(mined));
        }
    }
}
