//! The decision rule of the PoAI manager's consensus rounds, as a pure model of
//! `PoAIManager._vote` (the contract's `submissionsNeeded` / `agreementNeeded` views are checked
//! against it on a real chain), and what each rule tolerates.
//!
//! A round decides at the first submission after which at least [`Quorum::submissions_needed`]
//! oracles have submitted and the most common proposal has [`Quorum::agreement_needed`] votes.
//! With `n` oracles of which `f` lie (collude, and choose their votes and when they arrive) or
//! are down, the most `f` each rule tolerates, for n = 3…10:
//!
//! | n | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | formula |
//! |---|---|---|---|---|---|---|---|---|---|
//! | forged set (no honest oracle proposed it), `Reference` | 1 | 1 | 1 | 2 | 2 | 2 | 3 | 3 | ⌊n/3⌋ |
//! | forged set, `Byzantine` | 2 | 2 | 3 | 4 | 4 | 5 | 6 | 6 | ⌊2n/3⌋ |
//! | a view fewer than half of the honest oracles hold, `Reference` | 1 | 0 | – | 0 | – | – | – | – | |
//! | a view fewer than half of the honest oracles hold, `Byzantine` | 2 | 2 | 3 | 4 | 3 | 4 | 5 | 4 | ≥ ⌈n/3⌉−1 |
//! | down, the others still decide, `Reference` | 1 | 1 | 2 | 2 | 3 | 3 | 4 | 4 | ⌈n/2⌉−1 |
//! | down, the others still decide, `Byzantine` | 0 | 1 | 1 | 1 | 2 | 2 | 2 | 3 | ⌈n/3⌉−1 |
//!
//! (– : even honest oracles alone can decide a minority view, when its holders submit first.)
//! The trade-off: the reference rule keeps deciding with half of the oracles down, but a third
//! of them colluding decide a set of their own, and the first ⌊n/3⌋+1 agreeing submitters
//! decide whatever the others saw; the Byzantine rule needs two thirds present to decide at
//! all, and then no coalition under two thirds decides alone and a decision is the view of the
//! honest majority. The tests below find every figure by exhaustive search over the honest
//! oracles' split between two views, the liars' votes and every submission order.

use serde::{Deserialize, Serialize};

/// Which rule a deployment's rounds decide by (the contract's `PoAIManager.Quorum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Quorum {
    /// Ratio1's: more than half submit, ⌊n/3⌋+1 agree.
    #[default]
    Reference,
    /// More than two thirds agree.
    Byzantine,
}

impl Quorum {
    /// The contract's enum value.
    pub fn as_u8(self) -> u8 {
        match self {
            Quorum::Reference => 0,
            Quorum::Byzantine => 1,
        }
    }

    /// The rule of a contract enum value, if it is one.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Quorum::Reference),
            1 => Some(Quorum::Byzantine),
            _ => None,
        }
    }

    /// Submissions a round needs before it may decide, with `n` oracles.
    pub fn submissions_needed(self, n: u64) -> u64 {
        match self {
            Quorum::Reference => n / 2 + 1,
            Quorum::Byzantine => 2 * n / 3 + 1,
        }
    }

    /// Votes the most common proposal needs for the round to decide, with `n` oracles.
    pub fn agreement_needed(self, n: u64) -> u64 {
        match self {
            Quorum::Reference => n / 3 + 1,
            Quorum::Byzantine => 2 * n / 3 + 1,
        }
    }

    /// Whether a round with `submissions` so far, `best` of them for the most common proposal,
    /// decides.
    pub fn decides(self, n: u64, submissions: u64, best: u64) -> bool {
        submissions >= self.submissions_needed(n) && best >= self.agreement_needed(n)
    }

    /// Most colluding oracles that can never get a set decided that no honest oracle proposed.
    pub fn forgery_tolerance(self, n: u64) -> u64 {
        self.agreement_needed(n) - 1
    }

    /// Most oracles that may be down while the others, agreeing, still decide.
    pub fn crash_tolerance(self, n: u64) -> u64 {
        n - self.submissions_needed(n).max(self.agreement_needed(n))
    }
}

impl std::fmt::Display for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quorum::Reference => "reference",
            Quorum::Byzantine => "byzantine",
        })
    }
}

impl std::str::FromStr for Quorum {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reference" => Ok(Quorum::Reference),
            "byzantine" => Ok(Quorum::Byzantine),
            other => Err(format!(
                "unknown quorum rule {other:?} (reference or byzantine)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who proposed what: honest view A, honest view B, or the liars' forged set X.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Vote {
        A,
        B,
        X,
    }

    /// The proposal a round decides when the votes arrive in `order`, as the contract counts.
    fn decided(rule: Quorum, n: u64, order: &[Vote]) -> Option<Vote> {
        let mut counts = [0u64; 3];
        let mut best: Option<(Vote, u64)> = None;
        for (i, vote) in order.iter().enumerate() {
            let slot = *vote as usize;
            counts[slot] += 1;
            if best.is_none_or(|(_, count)| counts[slot] > count) {
                best = Some((*vote, counts[slot]));
            }
            let (winner, count) = best.expect("a vote was counted");
            if rule.decides(n, i as u64 + 1, count) {
                return Some(winner);
            }
        }
        None
    }

    /// Every distinct order of `a` A votes, `b` B votes and `x` X votes.
    fn orders(a: u64, b: u64, x: u64, prefix: &mut Vec<Vote>, out: &mut dyn FnMut(&[Vote])) {
        if a + b + x == 0 {
            out(prefix);
            return;
        }
        for (vote, left) in [(Vote::A, a), (Vote::B, b), (Vote::X, x)] {
            if left == 0 {
                continue;
            }
            prefix.push(vote);
            let (a, b, x) = match vote {
                Vote::A => (a - 1, b, x),
                Vote::B => (a, b - 1, x),
                Vote::X => (a, b, x - 1),
            };
            orders(a, b, x, prefix, out);
            prefix.pop();
        }
    }

    /// Whether `f` liars, choosing how the honest oracles split between two views and the
    /// order of every vote, can make the round decide what `bad` says is bad. Liars vote for
    /// the forged set or with either honest view; some may stay silent.
    fn attack_exists(rule: Quorum, n: u64, f: u64, bad: &dyn Fn(Vote, u64, u64) -> bool) -> bool {
        let honest = n - f;
        for a in 0..=honest {
            let b = honest - a;
            for with_a in 0..=f {
                for with_b in 0..=f - with_a {
                    for forged in 0..=f - with_a - with_b {
                        let mut found = false;
                        orders(
                            a + with_a,
                            b + with_b,
                            forged,
                            &mut Vec::new(),
                            &mut |order| {
                                if let Some(winner) = decided(rule, n, order)
                                    && bad(winner, a, b)
                                {
                                    found = true;
                                }
                            },
                        );
                        if found {
                            return true;
                        }
                    }
                }
            }
        }
        false
    }

    /// The largest `f` with no attack, found by search (`None` when even `f = 0` has one).
    fn tolerance(rule: Quorum, n: u64, bad: &dyn Fn(Vote, u64, u64) -> bool) -> Option<u64> {
        let mut tolerated = None;
        for f in 0..=n {
            if attack_exists(rule, n, f, bad) {
                break;
            }
            tolerated = Some(f);
        }
        tolerated
    }

    const RULES: [Quorum; 2] = [Quorum::Reference, Quorum::Byzantine];

    #[test]
    fn a_forged_set_needs_the_documented_coalition() {
        let forged = |winner: Vote, _: u64, _: u64| winner == Vote::X;
        for rule in RULES {
            for n in 3..=10 {
                assert_eq!(
                    tolerance(rule, n, &forged),
                    Some(rule.forgery_tolerance(n)),
                    "{rule}, n = {n}"
                );
            }
        }
    }

    #[test]
    fn decisions_follow_the_honest_majority_up_to_the_documented_table() {
        // A view some honest oracles hold but fewer than half of them, or a forged one.
        let minority = |winner: Vote, a: u64, b: u64| match winner {
            Vote::A => a * 2 < a + b,
            Vote::B => b * 2 < a + b,
            Vote::X => true,
        };
        let expected = [
            (
                Quorum::Reference,
                [Some(1), Some(0), None, Some(0), None, None, None, None],
            ),
            (Quorum::Byzantine, [2, 2, 3, 4, 3, 4, 5, 4].map(Some)),
        ];
        for (rule, table) in expected {
            for (n, tolerated) in (3..=10).zip(table) {
                assert_eq!(tolerance(rule, n, &minority), tolerated, "{rule}, n = {n}");
                if rule == Quorum::Byzantine {
                    assert!(tolerated >= Some(n.div_ceil(3) - 1), "n = {n}");
                }
            }
        }
    }

    #[test]
    fn agreeing_honest_oracles_decide_while_the_documented_number_is_down() {
        for rule in RULES {
            for n in 3..=10 {
                let decides_with = |down: u64| {
                    let order = vec![Vote::A; (n - down) as usize];
                    decided(rule, n, &order) == Some(Vote::A)
                };
                let tolerated = rule.crash_tolerance(n);
                assert!(decides_with(tolerated), "{rule}, n = {n}");
                assert!(!decides_with(tolerated + 1), "{rule}, n = {n}");
            }
        }
    }

    #[test]
    fn the_enum_round_trips_through_the_contract_value_and_text() {
        for rule in RULES {
            assert_eq!(Quorum::from_u8(rule.as_u8()), Some(rule));
            assert_eq!(rule.to_string().parse::<Quorum>(), Ok(rule));
        }
        assert_eq!(Quorum::from_u8(2), None);
        assert!("majority".parse::<Quorum>().is_err());
    }
}
