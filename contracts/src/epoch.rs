//! Epoch numbering, identical to the PoAI manager's.
//!
//! It is pure arithmetic over the manager's genesis and epoch length, kept with the contracts so
//! that the oracle's loops and `r1ctl` (which counts a job's epochs when funding it and shows the
//! epoch in `status`) use the one definition the contract is mirrored by.
//!
//! `PoAIManager.currentEpoch()` is `(block.timestamp - genesisTimestamp) / epochSeconds`: epoch
//! **0** starts at genesis and covers `[genesis, genesis + length)`; a time before genesis has no
//! epoch (the contract would revert on the underflow). Millisecond times are truncated to whole
//! seconds first, as block timestamps are, so an oracle and the contract always name the same
//! epoch for the same instant.

/// Longest quiet window at the end of an epoch: the reference oracles ignore availability
/// requests in the last 3 minutes of a 24 h mainnet epoch.
pub const QUIET_WINDOW_MAX_S: u64 = 180;

/// Shorter epochs (development networks) get a quiet window of this fraction of the epoch
/// (1/20) when that is less than [`QUIET_WINDOW_MAX_S`].
pub const QUIET_WINDOW_DIVISOR: u64 = 20;

/// Why an epoch could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// An epoch length of zero would divide by zero (the contract refuses it too).
    #[error("epoch length must be at least one second")]
    ZeroLength,
    /// The time lies before epoch 0 began.
    #[error("unix time {at_unix_s} s is before genesis at {genesis_unix_s} s")]
    BeforeGenesis {
        /// The time asked about, unix seconds.
        at_unix_s: u64,
        /// Start of epoch 0, unix seconds.
        genesis_unix_s: u64,
    },
}

/// The chain's epoch clock: genesis and epoch length, as the PoAI manager stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochClock {
    genesis_unix_s: u64,
    length_s: u64,
}

impl EpochClock {
    /// A clock whose epoch 0 starts at `genesis_unix_s` and whose epochs last `length_s`.
    pub const fn new(genesis_unix_s: u64, length_s: u64) -> Result<Self, EpochError> {
        if length_s == 0 {
            return Err(EpochError::ZeroLength);
        }
        Ok(Self {
            genesis_unix_s,
            length_s,
        })
    }

    /// Start of epoch 0, unix seconds.
    pub const fn genesis_unix_s(&self) -> u64 {
        self.genesis_unix_s
    }

    /// Length of every epoch, seconds.
    pub const fn length_s(&self) -> u64 {
        self.length_s
    }

    /// The epoch containing `unix_s`, as `currentEpoch()` computes it at that block time.
    pub const fn epoch_at(&self, unix_s: u64) -> Result<u64, EpochError> {
        if unix_s < self.genesis_unix_s {
            return Err(EpochError::BeforeGenesis {
                at_unix_s: unix_s,
                genesis_unix_s: self.genesis_unix_s,
            });
        }
        Ok((unix_s - self.genesis_unix_s) / self.length_s)
    }

    /// The epoch containing `unix_ms` (truncated to whole seconds, like a block timestamp).
    pub const fn epoch_at_ms(&self, unix_ms: u64) -> Result<u64, EpochError> {
        self.epoch_at(unix_ms / 1000)
    }

    /// First second of `epoch` (saturating far beyond any real date).
    pub const fn start_s(&self, epoch: u64) -> u64 {
        self.genesis_unix_s
            .saturating_add(epoch.saturating_mul(self.length_s))
    }

    /// First second after `epoch`, i.e. the start of the next one (the end is exclusive).
    pub const fn end_s(&self, epoch: u64) -> u64 {
        self.start_s(epoch.saturating_add(1))
    }

    /// First millisecond of `epoch`.
    pub const fn start_ms(&self, epoch: u64) -> u64 {
        self.start_s(epoch).saturating_mul(1000)
    }

    /// First millisecond after `epoch` (exclusive end).
    pub const fn end_ms(&self, epoch: u64) -> u64 {
        self.end_s(epoch).saturating_mul(1000)
    }

    /// Milliseconds from `unix_ms` to the end of its epoch: always in `1..=length_s × 1000`.
    pub const fn time_left_ms(&self, unix_ms: u64) -> Result<u64, EpochError> {
        match self.epoch_at_ms(unix_ms) {
            Ok(epoch) => Ok(self.end_ms(epoch) - unix_ms),
            Err(error) => Err(error),
        }
    }

    /// Whether `unix_ms` lies in the last `window_s` seconds of its epoch.
    pub const fn in_last_s(&self, unix_ms: u64, window_s: u64) -> Result<bool, EpochError> {
        match self.time_left_ms(unix_ms) {
            Ok(left) => Ok(left <= window_s.saturating_mul(1000)),
            Err(error) => Err(error),
        }
    }

    /// Length of the end-of-epoch window in which oracles ignore availability requests, so that
    /// every oracle closes its table on the same heartbeats: 180 s on 24 h epochs (as the
    /// reference does), scaled to 1/20 of shorter development epochs (e.g. 3 s of a 60 s epoch).
    pub const fn quiet_window_s(&self) -> u64 {
        let scaled = self.length_s / QUIET_WINDOW_DIVISOR;
        if scaled < QUIET_WINDOW_MAX_S {
            scaled
        } else {
            QUIET_WINDOW_MAX_S
        }
    }

    /// Whether `unix_ms` lies in the quiet window at the end of its epoch.
    pub const fn in_quiet_window(&self, unix_ms: u64) -> Result<bool, EpochError> {
        self.in_last_s(unix_ms, self.quiet_window_s())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Mainnet: 24 h epochs from 2025-05-23 16:00 UTC.
    const MAINNET_GENESIS: u64 = 1_748_016_000;
    const DAY: u64 = 86_400;

    fn clock(genesis: u64, length: u64) -> EpochClock {
        EpochClock::new(genesis, length).expect("non-zero length")
    }

    #[test]
    fn zero_length_is_refused() {
        assert_eq!(EpochClock::new(5, 0), Err(EpochError::ZeroLength));
    }

    #[test]
    fn epoch_zero_starts_at_genesis() {
        let c = clock(MAINNET_GENESIS, DAY);
        assert_eq!(c.epoch_at(MAINNET_GENESIS), Ok(0));
        assert_eq!(c.epoch_at(MAINNET_GENESIS + DAY - 1), Ok(0));
        assert_eq!(c.epoch_at(MAINNET_GENESIS + DAY), Ok(1));
        assert_eq!(c.start_s(0), MAINNET_GENESIS);
        assert_eq!(c.end_s(0), MAINNET_GENESIS + DAY);
        assert_eq!(c.start_ms(2), (MAINNET_GENESIS + 2 * DAY) * 1000);
    }

    #[test]
    fn before_genesis_is_an_error() {
        let c = clock(100, 10);
        assert_eq!(
            c.epoch_at(99),
            Err(EpochError::BeforeGenesis {
                at_unix_s: 99,
                genesis_unix_s: 100
            })
        );
        assert_eq!(
            c.epoch_at_ms(99_999),
            Err(EpochError::BeforeGenesis {
                at_unix_s: 99,
                genesis_unix_s: 100
            })
        );
        assert!(c.time_left_ms(0).is_err());
        assert!(c.in_quiet_window(0).is_err());
        assert_eq!(c.epoch_at_ms(100_000), Ok(0));
    }

    #[test]
    fn milliseconds_truncate_like_block_timestamps() {
        let c = clock(100, 10);
        assert_eq!(c.epoch_at_ms(109_999), Ok(0));
        assert_eq!(c.epoch_at_ms(110_000), Ok(1));
        assert_eq!(c.time_left_ms(109_999), Ok(1));
        assert_eq!(c.time_left_ms(100_000), Ok(10_000));
    }

    #[test]
    fn quiet_window_scales_with_short_epochs() {
        assert_eq!(clock(0, DAY).quiet_window_s(), 180);
        assert_eq!(clock(0, 3600).quiet_window_s(), 180);
        assert_eq!(clock(0, 600).quiet_window_s(), 30);
        assert_eq!(clock(0, 60).quiet_window_s(), 3);
        assert_eq!(clock(0, 10).quiet_window_s(), 0);
        let c = clock(MAINNET_GENESIS, DAY);
        let end = c.end_ms(0);
        assert_eq!(c.in_quiet_window(end - 180_000), Ok(true));
        assert_eq!(c.in_quiet_window(end - 180_001), Ok(false));
        assert_eq!(c.in_quiet_window(end - 1), Ok(true));
        assert_eq!(c.in_quiet_window(end), Ok(false));
    }

    #[test]
    fn a_zero_window_is_never_entered() {
        let c = clock(0, 10);
        for ms in 0..30_000 {
            assert_eq!(c.in_last_s(ms, 0), Ok(false));
        }
    }

    #[test]
    fn exhaustive_small_clocks_agree_with_the_contract_formula() {
        for genesis in 0..5u64 {
            for length in 1..7u64 {
                let c = clock(genesis, length);
                for t in genesis..genesis + 50 {
                    let epoch = c.epoch_at(t).expect("after genesis");
                    assert_eq!(epoch, (t - genesis) / length);
                    assert!(c.start_s(epoch) <= t && t < c.end_s(epoch));
                    assert_eq!(c.end_s(epoch) - c.start_s(epoch), length);
                }
            }
        }
    }

    #[test]
    fn far_future_epochs_saturate_instead_of_overflowing() {
        let c = clock(u64::MAX - 5, 10);
        assert_eq!(c.start_s(1), u64::MAX);
        assert_eq!(c.end_ms(u64::MAX), u64::MAX);
        assert_eq!(c.epoch_at(u64::MAX), Ok(0));
    }

    proptest! {
        #[test]
        fn every_instant_lies_in_its_epoch(
            genesis in 0u64..4_000_000_000,
            length in 1u64..200_000,
            offset_ms in 0u64..1_000_000_000_000,
        ) {
            let c = clock(genesis, length);
            let now = genesis * 1000 + offset_ms;
            let epoch = c.epoch_at_ms(now).expect("after genesis");
            prop_assert!(c.start_ms(epoch) <= now && now < c.end_ms(epoch));
            let left = c.time_left_ms(now).expect("after genesis");
            prop_assert!(left >= 1 && left <= length * 1000);
            prop_assert_eq!(c.epoch_at_ms(now + left), Ok(epoch + 1));
        }
    }
}
