//! Hybrid logical clock: stamps that follow wall-clock milliseconds yet never go backwards on a
//! node and always exceed every stamp the node has seen, so a write made after reading another
//! node's write wins over it even when the two clocks disagree a little.
//!
//! A stamp is (wall milliseconds, logical counter). Stamps from peers move the clock forward,
//! but only up to [`Clock::max_ahead_ms`] past the local wall clock: a peer whose clock (or
//! whose lie) runs further ahead is refused, or it could make every later write of every node
//! lose to its own.

use thiserror::Error;

/// A point in hybrid logical time; ordered by wall time, then counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch, as the writer's clock had them (or later).
    pub wall_ms: u64,
    /// Orders stamps within one millisecond.
    pub logical: u32,
}

/// Why a remote stamp is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ClockError {
    /// The stamp is further ahead of the local clock than allowed.
    #[error("stamp {ahead_ms} ms ahead of this node's clock; at most {max_ms} ms are accepted")]
    TooFarAhead {
        /// How far ahead.
        ahead_ms: u64,
        /// The bound.
        max_ms: u64,
    },
    /// The logical counter cannot go further within one millisecond.
    #[error("hybrid clock counter exhausted within one millisecond")]
    Exhausted,
}

/// A node's hybrid logical clock.
#[derive(Debug, Clone)]
pub struct Clock {
    last: Stamp,
    max_ahead_ms: u64,
}

impl Clock {
    /// A clock that accepts remote stamps at most `max_ahead_ms` ahead of the local wall clock.
    pub fn new(max_ahead_ms: u64) -> Self {
        Self {
            last: Stamp::default(),
            max_ahead_ms,
        }
    }

    /// The bound on remote stamps.
    pub fn max_ahead_ms(&self) -> u64 {
        self.max_ahead_ms
    }

    /// The latest stamp issued or observed.
    pub fn last(&self) -> Stamp {
        self.last
    }

    /// A stamp for a local write at wall time `now_ms`: later than every stamp before it.
    pub fn tick(&mut self, now_ms: u64) -> Result<Stamp, ClockError> {
        self.last = if now_ms > self.last.wall_ms {
            Stamp {
                wall_ms: now_ms,
                logical: 0,
            }
        } else {
            Stamp {
                wall_ms: self.last.wall_ms,
                logical: self
                    .last
                    .logical
                    .checked_add(1)
                    .ok_or(ClockError::Exhausted)?,
            }
        };
        Ok(self.last)
    }

    /// Takes in a stamp seen on a peer's write at local wall time `now_ms`, so later local
    /// stamps exceed it; refuses it (and moves nothing) when it is too far ahead.
    pub fn observe(&mut self, remote: Stamp, now_ms: u64) -> Result<(), ClockError> {
        self.check(remote, now_ms)?;
        self.last = self.last.max(remote);
        Ok(())
    }

    /// Whether `remote` is within the bound at `now_ms`, without moving the clock.
    pub fn check(&self, remote: Stamp, now_ms: u64) -> Result<(), ClockError> {
        let ahead_ms = remote.wall_ms.saturating_sub(now_ms);
        if ahead_ms > self.max_ahead_ms {
            return Err(ClockError::TooFarAhead {
                ahead_ms,
                max_ms: self.max_ahead_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ticks_follow_the_wall_clock_and_never_go_back() {
        let mut clock = Clock::new(1000);
        let a = clock.tick(100).unwrap();
        let b = clock.tick(100).unwrap();
        let c = clock.tick(50).unwrap();
        let d = clock.tick(200).unwrap();
        assert!(a < b && b < c && c < d);
        assert_eq!(
            d,
            Stamp {
                wall_ms: 200,
                logical: 0
            }
        );
    }

    #[test]
    fn a_stamp_seen_from_a_peer_is_exceeded_by_the_next_tick() {
        let mut clock = Clock::new(1000);
        clock.tick(100).unwrap();
        let remote = Stamp {
            wall_ms: 900,
            logical: 7,
        };
        clock.observe(remote, 100).unwrap();
        assert!(clock.tick(100).unwrap() > remote);
    }

    #[test]
    fn a_stamp_too_far_ahead_is_refused_and_moves_nothing() {
        let mut clock = Clock::new(1000);
        let before = clock.tick(100).unwrap();
        let refused = clock.observe(
            Stamp {
                wall_ms: 1101,
                logical: 0,
            },
            100,
        );
        assert_eq!(
            refused,
            Err(ClockError::TooFarAhead {
                ahead_ms: 1001,
                max_ms: 1000
            })
        );
        assert_eq!(clock.last(), before);
    }

    proptest! {
        #[test]
        fn every_tick_exceeds_everything_before_it(
            events in proptest::collection::vec((any::<bool>(), 0u64..10_000, 0u32..5), 1..60),
        ) {
            let mut clock = Clock::new(u64::MAX);
            let mut highest = Stamp::default();
            for (local, wall, logical) in events {
                if local {
                    let stamp = clock.tick(wall).unwrap();
                    prop_assert!(stamp > highest);
                    highest = stamp;
                } else {
                    let seen = Stamp { wall_ms: wall, logical };
                    clock.observe(seen, wall).unwrap();
                    highest = highest.max(seen);
                }
            }
        }
    }
}
