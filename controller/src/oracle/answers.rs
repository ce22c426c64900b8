//! What the chain answered about things strangers can name in any number (CSP addresses with a
//! namespace, job ids a node reports), kept so that asking costs a bounded number of chain calls
//! per pass: an answer that settles the question (an escrow found, a job closed) is kept for
//! good; one that does not is asked again only after a while; and only so many questions are
//! asked per pass, never-asked ones first.

use std::collections::BTreeMap;

/// How often and how much [`Answers`] asks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recheck {
    /// How long an unsettled answer is believed before asking again.
    pub after_ms: u64,
    /// Questions asked in one pass.
    pub per_pass: usize,
    /// Answers remembered; past it the lowest keys go first.
    pub max_remembered: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer<V> {
    Settled(V),
    UnsettledAt(u64),
}

/// The chain's answers, by key.
#[derive(Debug, Clone)]
pub struct Answers<K, V> {
    known: BTreeMap<K, Answer<V>>,
    recheck: Recheck,
}

impl<K: Ord + Copy, V> Answers<K, V> {
    /// No answers yet, asked again as `recheck` says.
    pub fn new(recheck: Recheck) -> Self {
        Self {
            known: BTreeMap::new(),
            recheck,
        }
    }

    /// The keys among `keys` to ask about now: never asked, or unsettled for longer than
    /// [`Recheck::after_ms`] (oldest first), at most [`Recheck::per_pass`].
    pub fn due<'k>(&self, keys: impl IntoIterator<Item = &'k K>, now_ms: u64) -> Vec<K>
    where
        K: 'k,
    {
        let mut due: Vec<(u64, K)> = keys
            .into_iter()
            .filter_map(|key| match self.known.get(key) {
                None => Some((0, *key)),
                Some(Answer::UnsettledAt(at))
                    if now_ms.saturating_sub(*at) >= self.recheck.after_ms =>
                {
                    Some((*at, *key))
                }
                Some(_) => None,
            })
            .collect();
        due.sort_by_key(|(at, _)| *at);
        due.into_iter()
            .take(self.recheck.per_pass)
            .map(|(_, key)| key)
            .collect()
    }

    /// Records what the chain answered about `key` at `now_ms`: `Some` settles it.
    pub fn record(&mut self, key: K, settled: Option<V>, now_ms: u64) {
        let answer = settled.map_or(Answer::UnsettledAt(now_ms), Answer::Settled);
        self.known.insert(key, answer);
        while self.known.len() > self.recheck.max_remembered {
            self.known.pop_first();
        }
    }

    /// The settled answer about `key`, if any.
    pub fn settled(&self, key: &K) -> Option<&V> {
        match self.known.get(key) {
            Some(Answer::Settled(value)) => Some(value),
            _ => None,
        }
    }

    /// Forgets the answers about keys `keep` rejects.
    pub fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        self.known.retain(|key, _| keep(key));
    }

    /// How many answers are remembered.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no answer is remembered.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const RECHECK: Recheck = Recheck {
        after_ms: 60_000,
        per_pass: 8,
        max_remembered: 100_000,
    };

    #[test]
    fn thousands_of_questions_cost_a_bounded_number_of_lookups() {
        let unknown: BTreeSet<u64> = (1..=2_000).collect();
        let mut answers: Answers<u64, ()> = Answers::new(RECHECK);
        let mut asked = 0;
        for pass in 0..10u64 {
            let due = answers.due(&unknown, pass * 500);
            assert!(due.len() <= RECHECK.per_pass);
            asked += due.len();
            for job in due {
                answers.record(job, (job == 3).then_some(()), pass * 500);
            }
        }
        assert_eq!(asked, 10 * RECHECK.per_pass);
        assert!(answers.settled(&3).is_some());
        assert!(answers.settled(&4).is_none());
        // An unsettled answer is asked again only after the recheck period.
        assert!(!answers.due(&BTreeSet::from([4]), 4_500).contains(&4));
        assert_eq!(answers.due(&BTreeSet::from([4]), RECHECK.after_ms), vec![4]);
        // A settled one is never asked again.
        assert!(answers.due(&BTreeSet::from([3]), u64::MAX).is_empty());
    }

    #[test]
    fn the_oldest_keys_make_room() {
        let mut answers: Answers<u64, ()> = Answers::new(Recheck {
            max_remembered: 3,
            ..RECHECK
        });
        for key in 1..=5 {
            answers.record(key, Some(()), 0);
        }
        assert_eq!(answers.len(), 3);
        assert!(answers.settled(&1).is_none());
        assert!(answers.settled(&5).is_some());
    }
}
