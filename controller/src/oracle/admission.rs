//! Which broker messages reach the oracle's handlers, decided before anything is parsed or a
//! signature checked, so that no publisher can starve the heartbeats of the network's nodes:
//!
//! * observations and relayed requests are taken only from oracles the chain lists;
//! * every sender gets a per-channel rate ([`Rate`]), a token bucket with a burst;
//! * node messages go to one of two lanes: nodes with a licence (by the chain's last word)
//!   and everyone else, read with priority to the first, each a bounded queue;
//! * session output (logs, exec) has a lane of its own and is taken from licensed nodes only
//!   (only they run replicas), so a stream a CSP reads never delays a heartbeat.
//!
//! Senders are named by their topic. Nobody can publish under another's topic on an r1 broker,
//! and the handlers check that the signature matches the topic; so a sender who floods only
//! spends its own allowance.

use std::collections::{HashMap, HashSet};

use alloy_primitives::Address;
use r1_protocol::topics::Channel;

/// A token bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens held: the burst allowed after a quiet spell.
    pub burst: f64,
}

/// The rate each sender gets on `channel`: a node heartbeats every few seconds and reports
/// each workload change; an oracle observes once per epoch and re-sends every request it
/// holds at each resync.
pub fn rate(channel: Channel) -> Rate {
    match channel {
        Channel::Heartbeat => Rate {
            per_second: 2.0,
            burst: 10.0,
        },
        Channel::Status => Rate {
            per_second: 50.0,
            burst: 500.0,
        },
        Channel::Observations => Rate {
            per_second: 5.0,
            burst: 50.0,
        },
        Channel::Requests => Rate {
            per_second: 200.0,
            burst: 5_000.0,
        },
        Channel::Sessions => Rate {
            per_second: 500.0,
            burst: 2_000.0,
        },
        Channel::Commands | Channel::Roster | Channel::Cstore => Rate {
            per_second: 0.0,
            burst: 0.0,
        },
    }
}

/// Buckets remembered at once; past it, full buckets are forgotten (a full bucket is what a
/// new sender gets anyway).
const MAX_BUCKETS: usize = 20_000;

/// Where an admitted message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Status reports (and wills) of nodes with a licence: one per state change, read before
    /// any heartbeat, so a replica's start is not queued behind seconds of a fleet's heartbeats
    /// (or dropped with them) when the oracle falls behind.
    LicensedStatus,
    /// Heartbeats of nodes with a licence.
    LicensedNodes,
    /// Heartbeats and status reports of every other node.
    OtherNodes,
    /// Other oracles' observations.
    Observations,
    /// Other oracles' relayed requests.
    Requests,
    /// Output of sessions on licensed nodes.
    Sessions,
}

/// Why a message was dropped before it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// An oracle channel published by an address the chain does not list as an oracle.
    NotAnOracle,
    /// The sender exceeded its rate on this channel.
    RateLimited,
    /// Nodes never publish commands to oracles.
    WrongChannel,
    /// Session output from a node without a licence.
    NotLicensed,
}

impl Dropped {
    /// A short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotAnOracle => "not_an_oracle",
            Self::RateLimited => "rate_limited",
            Self::WrongChannel => "wrong_channel",
            Self::NotLicensed => "not_licensed",
        }
    }
}

/// Who the oracle knows, as the last pass read it from the chain.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The active oracles.
    pub oracles: HashSet<Address>,
    /// Nodes with a licence, not blacklisted.
    pub licensed: HashSet<Address>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// The admission state: who is known and each sender's buckets.
#[derive(Debug, Default)]
pub struct Admission {
    known: Known,
    buckets: HashMap<(Channel, Address), Bucket>,
}

impl Admission {
    /// Replaces who is known.
    pub fn set_known(&mut self, known: Known) {
        self.known = known;
    }

    /// Decides what becomes of a message `sender` published on `channel` at `now_ms`.
    pub fn admit(
        &mut self,
        channel: Channel,
        sender: Address,
        now_ms: u64,
    ) -> Result<Lane, Dropped> {
        let lane = match channel {
            Channel::Commands | Channel::Roster | Channel::Cstore => {
                return Err(Dropped::WrongChannel);
            }
            Channel::Observations | Channel::Requests if !self.known.oracles.contains(&sender) => {
                return Err(Dropped::NotAnOracle);
            }
            Channel::Observations => Lane::Observations,
            Channel::Requests => Lane::Requests,
            Channel::Status if self.known.licensed.contains(&sender) => Lane::LicensedStatus,
            Channel::Heartbeat if self.known.licensed.contains(&sender) => Lane::LicensedNodes,
            Channel::Heartbeat | Channel::Status => Lane::OtherNodes,
            Channel::Sessions if self.known.licensed.contains(&sender) => Lane::Sessions,
            Channel::Sessions => return Err(Dropped::NotLicensed),
        };
        if self.take(channel, sender, now_ms) {
            Ok(lane)
        } else {
            Err(Dropped::RateLimited)
        }
    }

    /// Takes one token from `sender`'s bucket on `channel`, if it has one.
    fn take(&mut self, channel: Channel, sender: Address, now_ms: u64) -> bool {
        let rate = rate(channel);
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&(channel, sender)) {
            self.forget_full(now_ms);
        }
        let bucket = self.buckets.entry((channel, sender)).or_insert(Bucket {
            tokens: rate.burst,
            at_ms: now_ms,
        });
        refill(bucket, rate, now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets buckets that have refilled completely.
    fn forget_full(&mut self, now_ms: u64) {
        self.buckets.retain(|(channel, _), bucket| {
            let rate = rate(*channel);
            refill(bucket, rate, now_ms);
            bucket.tokens < rate.burst
        });
    }
}

fn refill(bucket: &mut Bucket, rate: Rate, now_ms: u64) {
    let elapsed_s = now_ms.saturating_sub(bucket.at_ms) as f64 / 1000.0;
    bucket.tokens = (bucket.tokens + elapsed_s * rate.per_second).min(rate.burst);
    bucket.at_ms = bucket.at_ms.max(now_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> Address {
        Address::with_last_byte(i)
    }

    #[test]
    fn oracle_channels_take_only_oracles() {
        let mut admission = Admission::default();
        admission.set_known(Known {
            oracles: HashSet::from([addr(1)]),
            licensed: HashSet::from([addr(2)]),
        });
        assert_eq!(
            admission.admit(Channel::Requests, addr(1), 0),
            Ok(Lane::Requests)
        );
        assert_eq!(
            admission.admit(Channel::Observations, addr(1), 0),
            Ok(Lane::Observations)
        );
        for channel in [Channel::Requests, Channel::Observations] {
            assert_eq!(
                admission.admit(channel, addr(2), 0),
                Err(Dropped::NotAnOracle)
            );
        }
        assert_eq!(
            admission.admit(Channel::Commands, addr(1), 0),
            Err(Dropped::WrongChannel)
        );
        for (channel, sender, lane) in [
            (Channel::Heartbeat, 2, Lane::LicensedNodes),
            (Channel::Heartbeat, 3, Lane::OtherNodes),
            (Channel::Status, 2, Lane::LicensedStatus),
            (Channel::Status, 3, Lane::OtherNodes),
        ] {
            assert_eq!(
                admission.admit(channel, addr(sender), 0),
                Ok(lane),
                "{channel:?} from {sender}"
            );
        }
    }

    #[test]
    fn a_flooding_sender_gets_its_burst_then_its_rate() {
        let mut admission = Admission::default();
        let heartbeat = rate(Channel::Heartbeat);
        let burst = heartbeat.burst as usize;
        let admitted = (0..1_000)
            .filter(|_| admission.admit(Channel::Heartbeat, addr(9), 0).is_ok())
            .count();
        assert_eq!(admitted, burst);
        // One second later, per_second more.
        let later = (0..1_000)
            .filter(|_| admission.admit(Channel::Heartbeat, addr(9), 1_000).is_ok())
            .count();
        assert_eq!(later, heartbeat.per_second as usize);
        // Another sender is not affected, nor the same sender on another channel.
        assert!(admission.admit(Channel::Heartbeat, addr(8), 1_000).is_ok());
        assert!(admission.admit(Channel::Status, addr(9), 1_000).is_ok());
    }

    #[test]
    fn buckets_are_bounded() {
        let mut admission = Admission::default();
        for i in 0..(MAX_BUCKETS as u64 + 5_000) {
            let sender = Address::from_word(alloy_primitives::B256::from(
                alloy_primitives::U256::from(i),
            ));
            // Each sender sends once, a minute apart from the first: the old buckets are full.
            let _ = admission.admit(Channel::Heartbeat, sender, i * 10);
        }
        assert!(admission.buckets.len() <= MAX_BUCKETS);
    }
}
