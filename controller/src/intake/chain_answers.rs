//! Yes-or-no answers read from the chain, reused for a while so that a burst of requests costs
//! one chain call: a yes for one period, a no for another (a no usually turns into a yes soon,
//! when the CSP is setting things up).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most answers kept; past it the cache starts over.
pub const MAX_CACHED: usize = 4096;

/// Answers by question, each with when it was read.
#[derive(Debug)]
pub struct ChainAnswers<K> {
    yes_ttl: Duration,
    no_ttl: Duration,
    answers: Mutex<HashMap<K, (bool, Instant)>>,
}

impl<K: Hash + Eq> ChainAnswers<K> {
    /// Reusing a yes for `yes_ttl` and a no for `no_ttl`.
    pub fn new(yes_ttl: Duration, no_ttl: Duration) -> Self {
        Self {
            yes_ttl,
            no_ttl,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// The answer to `question` read recently enough at `now`.
    pub fn cached(&self, question: &K, now: Instant) -> Option<bool> {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        let &(yes, at) = answers.get(question)?;
        let ttl = if yes { self.yes_ttl } else { self.no_ttl };
        (now.saturating_duration_since(at) < ttl).then_some(yes)
    }

    /// Keeps `answer` to `question`, read at `now`.
    pub fn remember(&self, question: K, answer: bool, now: Instant) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() >= MAX_CACHED {
            answers.clear();
        }
        answers.insert(question, (answer, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yes_and_a_no_are_reused_for_their_own_periods() {
        let answers = ChainAnswers::new(Duration::from_secs(10), Duration::from_secs(2));
        let t0 = Instant::now();
        answers.remember("yes", true, t0);
        answers.remember("no", false, t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(answers.cached(&"yes", at(9)), Some(true));
        assert_eq!(answers.cached(&"yes", at(10)), None);
        assert_eq!(answers.cached(&"no", at(1)), Some(false));
        assert_eq!(answers.cached(&"no", at(2)), None);
        assert_eq!(answers.cached(&"unasked", t0), None);
    }
}
