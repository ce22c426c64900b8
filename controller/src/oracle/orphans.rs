//! What this oracle learned of chain jobs that nodes report but no resource here pays for:
//! closed ones are stopped, open ones (another CSP's whose request has not reached this oracle
//! yet, or a claim by a node) are asked about again only after [`OPEN_RECHECK_MS`], and at most
//! [`LOOKUPS_PER_PASS`] are asked about per pass, so a node reporting thousands of job ids costs
//! a bounded number of chain calls.

use std::collections::{BTreeMap, BTreeSet};

/// Unknown jobs looked up on chain in one pass.
pub const LOOKUPS_PER_PASS: usize = 8;

/// How long "this job is open" is believed before asking again.
pub const OPEN_RECHECK_MS: u64 = 60_000;

/// Jobs remembered: a closed job never reopens, so the oldest answers go first.
const MAX_REMEMBERED: usize = 100_000;

/// The chain's answers about unknown jobs.
#[derive(Debug, Default)]
pub struct OrphanBook {
    /// Per job: closed for good, or open when last asked (unix ms).
    known: BTreeMap<u64, Answer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Closed,
    OpenAt(u64),
}

impl OrphanBook {
    /// The jobs among `unknown` to ask the chain about now, never asked first, at most
    /// [`LOOKUPS_PER_PASS`].
    pub fn due(&self, unknown: &BTreeSet<u64>, now_ms: u64) -> Vec<u64> {
        let mut due: Vec<(u64, u64)> = unknown
            .iter()
            .filter_map(|job| match self.known.get(job) {
                None => Some((0, *job)),
                Some(Answer::OpenAt(at)) if now_ms.saturating_sub(*at) >= OPEN_RECHECK_MS => {
                    Some((*at, *job))
                }
                Some(_) => None,
            })
            .collect();
        due.sort();
        due.into_iter()
            .take(LOOKUPS_PER_PASS)
            .map(|(_, job)| job)
            .collect()
    }

    /// Records the chain's answer about `job`.
    pub fn record(&mut self, job: u64, closed: bool, now_ms: u64) {
        let answer = if closed {
            Answer::Closed
        } else {
            Answer::OpenAt(now_ms)
        };
        self.known.insert(job, answer);
        while self.known.len() > MAX_REMEMBERED {
            self.known.pop_first();
        }
    }

    /// Whether the chain said `job` is closed.
    pub fn is_closed(&self, job: u64) -> bool {
        self.known.get(&job) == Some(&Answer::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_of_unknown_jobs_cost_a_bounded_number_of_lookups() {
        let unknown: BTreeSet<u64> = (1..=2_000).collect();
        let mut book = OrphanBook::default();
        let mut asked = 0;
        for pass in 0..10u64 {
            let due = book.due(&unknown, pass * 500);
            assert!(due.len() <= LOOKUPS_PER_PASS);
            asked += due.len();
            for job in due {
                book.record(job, job == 3, pass * 500);
            }
        }
        assert_eq!(asked, 10 * LOOKUPS_PER_PASS);
        assert!(book.is_closed(3));
        assert!(!book.is_closed(4));
        // A job seen open is asked again only after the recheck period.
        assert!(!book.due(&BTreeSet::from([4]), 4_500).contains(&4));
        assert_eq!(book.due(&BTreeSet::from([4]), OPEN_RECHECK_MS), vec![4]);
        // A closed job is never asked again.
        assert!(book.due(&BTreeSet::from([3]), u64::MAX).is_empty());
    }
}
