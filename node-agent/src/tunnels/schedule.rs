//! When a tunnel client may be started again: the reference's schedule — 2 s doubling to 60 s
//! between tries, at most 5 tries in a row, the count forgotten after 5 minutes of healthy
//! running (or, once the tries are spent, 5 minutes after the last one).

use crate::reconcile::Backoff;

/// The restart schedule of tunnel clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Delays between tries, and how long a healthy run must last to forget failures.
    pub backoff: Backoff,
    /// Failures in a row after which the client is left down until the reset.
    pub max_tries: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            max_tries: 5,
        }
    }
}

/// One client's failures, kept by the tunnel loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tries {
    /// Failures since the last long healthy run.
    pub failures: u32,
    /// Not before this time (ms) may the client start.
    pub next_start_ms: u64,
    /// Since when the current run has been healthy.
    pub healthy_since_ms: Option<u64>,
}

impl Tries {
    /// Records that the client failed (exited, never connected, failed its health check or
    /// could not start) at `now_ms`.
    pub fn failed(&mut self, now_ms: u64, schedule: &Schedule) {
        self.failures = self.failures.saturating_add(1).min(schedule.max_tries);
        self.healthy_since_ms = None;
        let wait = if self.failures >= schedule.max_tries {
            schedule.backoff.reset_after_ms
        } else {
            schedule.backoff.delay_ms(self.failures)
        };
        self.next_start_ms = now_ms.saturating_add(wait);
    }

    /// Records that the client is healthy at `now_ms`; a long enough healthy run forgets the
    /// failures.
    pub fn healthy(&mut self, now_ms: u64, schedule: &Schedule) {
        let since = *self.healthy_since_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) >= schedule.backoff.reset_after_ms {
            self.failures = 0;
        }
    }

    /// Whether the client may be started at `now_ms`; once the tries are spent, the wait is
    /// the reset period and the count starts over after it.
    pub fn may_start(&mut self, now_ms: u64, schedule: &Schedule) -> bool {
        if now_ms < self.next_start_ms {
            return false;
        }
        if self.failures >= schedule.max_tries {
            self.failures = 0;
        }
        true
    }

    /// Whether the tries are spent: the client stays down until the reset period passed.
    pub fn spent(&self, schedule: &Schedule) -> bool {
        self.failures >= schedule.max_tries
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_reference_schedule() {
        let schedule = Schedule::default();
        let mut tries = Tries::default();
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            assert!(tries.may_start(now, &schedule));
            tries.failed(now, &schedule);
            waits.push(tries.next_start_ms - now);
            assert!(!tries.may_start(now + 1, &schedule) || tries.next_start_ms <= now + 1);
            now = tries.next_start_ms;
        }
        assert_eq!(waits, [2_000, 4_000, 8_000, 16_000, 300_000]);
        assert!(tries.spent(&schedule));
        assert!(tries.may_start(now, &schedule), "retried after the reset");
        assert_eq!(tries.failures, 0);
        tries.failed(now, &schedule);
        assert_eq!(tries.next_start_ms - now, 2_000, "the count started over");
    }

    #[test]
    fn five_healthy_minutes_forget_failures() {
        let schedule = Schedule::default();
        let mut tries = Tries::default();
        tries.failed(0, &schedule);
        tries.failed(2_000, &schedule);
        tries.healthy(10_000, &schedule);
        tries.healthy(10_000 + 299_999, &schedule);
        assert_eq!(tries.failures, 2);
        tries.healthy(10_000 + 300_000, &schedule);
        assert_eq!(tries.failures, 0);
    }

    proptest! {
        /// Whatever happens, a wait is between 2 s and 60 s while tries remain, the reset
        /// period once they are spent, never starts early, and failures never exceed the cap
        /// by more than the one that spent them.
        #[test]
        fn waits_stay_within_the_schedule(
            events in proptest::collection::vec((0u8..3, 0u64..400_000), 1..60),
        ) {
            let schedule = Schedule::default();
            let mut tries = Tries::default();
            let mut now = 0u64;
            for (event, step) in events {
                now += step;
                match event {
                    0 => {
                        tries.failed(now, &schedule);
                        let wait = tries.next_start_ms - now;
                        if tries.spent(&schedule) {
                            prop_assert_eq!(wait, schedule.backoff.reset_after_ms);
                        } else {
                            prop_assert!((2_000..=60_000).contains(&wait));
                            prop_assert_eq!(wait, schedule.backoff.delay_ms(tries.failures));
                        }
                    }
                    1 => tries.healthy(now, &schedule),
                    _ => {
                        let before = tries.next_start_ms;
                        prop_assert_eq!(tries.may_start(now, &schedule), now >= before);
                    }
                }
                prop_assert!(tries.failures <= schedule.max_tries);
            }
        }
    }
}
