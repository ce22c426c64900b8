//! Token buckets keyed by who asks (a signer, a peer address), so one key or one host cannot
//! take the API for itself: each request takes a token, tokens come back at a steady rate up
//! to a burst, and a request finding none is told when to come back.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most keys one limiter tracks. Past it, keys whose bucket refilled are forgotten (they are as
/// good as new); if every bucket is still in use, new keys wait (fail closed).
pub const MAX_TRACKED: usize = 65_536;

/// A rate: `per_second` tokens come back each second, at most `burst` are held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Most requests in a burst.
    pub burst: u32,
    /// Sustained requests per second.
    pub per_second: f64,
}

impl Rate {
    /// How long one token takes to come back.
    fn token_time(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second.max(f64::MIN_POSITIVE))
    }
}

/// Buckets per key at one [`Rate`].
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter at `rate` that knows no key yet.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long until one is back.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.with_bucket(key, now, |bucket| {
            bucket.tokens -= 1.0;
        })
    }

    /// Whether `key` has a token, without taking it (or how long until it has one).
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.with_bucket(key, now, |_| {})
    }

    fn with_bucket(
        &self,
        key: &K,
        now: Instant,
        on_token: impl FnOnce(&mut Bucket),
    ) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let burst = f64::from(self.rate.burst);
        if !buckets.contains_key(key) && buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, b| self.refilled(b, now) < burst);
            if buckets.len() >= MAX_TRACKED {
                return Err(self.rate.token_time());
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = self.refilled(bucket, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            on_token(bucket);
            Ok(())
        } else {
            Err(self.rate.token_time().mul_f64(1.0 - bucket.tokens))
        }
    }

    /// The tokens `bucket` holds at `now`.
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.rate.per_second).min(f64::from(self.rate.burst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = Limiter::new(Rate {
            burst: 3,
            per_second: 2.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take(&"a", t0), Ok(()));
        }
        let wait = limiter.take(&"a", t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        assert!(limiter.check(&"a", t0).is_err());
        assert_eq!(
            limiter.take(&"b", t0),
            Ok(()),
            "another key has its own bucket"
        );
        let later = t0 + Duration::from_millis(500);
        assert_eq!(limiter.check(&"a", later), Ok(()));
        assert_eq!(limiter.take(&"a", later), Ok(()));
        assert!(limiter.take(&"a", later).is_err());
    }

    #[test]
    fn refilled_keys_are_forgotten_when_the_table_is_full() {
        let limiter = Limiter::new(Rate {
            burst: 1,
            per_second: 1.0,
        });
        let t0 = Instant::now();
        for key in 0..MAX_TRACKED {
            limiter.take(&key, t0).unwrap();
        }
        assert!(limiter.take(&MAX_TRACKED, t0).is_err(), "fails closed");
        let later = t0 + Duration::from_secs(2);
        assert_eq!(limiter.take(&MAX_TRACKED, later), Ok(()));
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
