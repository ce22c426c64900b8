//! Replica-by-replica rollout of a spec change (generation N → N+1), with automatic rollback.
//!
//! For each replica in turn: start the new generation beside the old one, wait until it is
//! healthy, then stop the old one and go on with the next replica. If a new replica crash-loops,
//! fails, or is not healthy by the deadline — or an already switched one breaks during the
//! rollout — every new replica is stopped and every old replica that was stopped is started
//! again; the job stays on generation N with a `RolloutFailed` condition. A failed generation
//! is not retried; a newer one may be rolled out.
//!
//! [`step`] is a pure transition `(state, observations, now) → (state, actions)`. It re-sends a
//! start or stop while the observations show it has not taken effect, so the state can be
//! persisted (e.g. in the job's status) and a restarted controller carries on.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decide::availability_plan::ReplicaHealth;

/// The condition reason of a failed rollout.
pub const ROLLOUT_FAILED: &str = "RolloutFailed";

/// Why a new replica was given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// Not healthy within the deadline.
    NeverHealthy {
        /// The deadline, seconds.
        deadline_s: u64,
    },
    /// Restarting over and over.
    CrashLooping,
    /// Exited or failed for good.
    Failed,
}

/// What happened, as the end of a sentence: `never became healthy within 120 s`.
impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NeverHealthy { deadline_s } => {
                write!(f, "never became healthy within {deadline_s} s")
            }
            Self::CrashLooping => f.write_str("crash-looped"),
            Self::Failed => f.write_str("failed"),
        }
    }
}

/// Which new replica failed and how; `Display` gives the condition message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutFailure {
    /// Replica index.
    pub replica: u32,
    /// The generation that failed.
    pub generation: u64,
    /// What happened.
    pub cause: Cause,
}

impl fmt::Display for RolloutFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            replica,
            generation,
            cause,
        } = self;
        write!(
            f,
            "{ROLLOUT_FAILED}: replica {replica} of generation {generation} {cause}"
        )
    }
}

/// Where a job's rollout stands; serializable so a controller can keep it across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutState {
    /// Every replica runs `generation`.
    Stable {
        /// The running generation.
        generation: u64,
    },
    /// Replicas below `replica` run `to`; `replica` runs both, started at `started_ms`; the
    /// rest run `from`.
    Progressing {
        /// Old generation.
        from: u64,
        /// New generation.
        to: u64,
        /// Replicas of the job.
        replicas: u32,
        /// The replica being switched.
        replica: u32,
        /// When its new generation was started (unix ms).
        started_ms: u64,
    },
    /// New replicas being stopped, old ones restored.
    RollingBack {
        /// Generation restored.
        from: u64,
        /// Generation given up.
        to: u64,
        /// Replicas of the job.
        replicas: u32,
        /// What went wrong.
        failure: RolloutFailure,
    },
    /// Back on `generation` after `failure`; the failed generation is not retried.
    RolledBack {
        /// The running generation.
        generation: u64,
        /// What went wrong.
        failure: RolloutFailure,
    },
}

impl RolloutState {
    /// The failure to show as a condition, while rolling back and after.
    pub const fn failure(&self) -> Option<RolloutFailure> {
        match self {
            Self::RollingBack { failure, .. } | Self::RolledBack { failure, .. } => Some(*failure),
            Self::Stable { .. } | Self::Progressing { .. } => None,
        }
    }

    /// The generation that serves `replica`, the one availability keeps running: the new one
    /// for replicas already switched, the old one for the rest and during a rollback.
    pub const fn serving(&self, replica: u32) -> u64 {
        match *self {
            Self::Stable { generation } | Self::RolledBack { generation, .. } => generation,
            Self::Progressing {
                from,
                to,
                replica: switching,
                ..
            } => {
                if replica < switching {
                    to
                } else {
                    from
                }
            }
            Self::RollingBack { from, .. } => from,
        }
    }

    /// The other generation [`step`] itself manages on `replica`, if any: the new one being
    /// started beside the old one, or a new one being stopped during a rollback.
    pub const fn in_flight(&self, replica: u32) -> Option<u64> {
        match *self {
            Self::Progressing {
                to,
                replica: switching,
                ..
            } if replica == switching => Some(to),
            Self::RollingBack { to, .. } => Some(to),
            Self::Stable { .. } | Self::RolledBack { .. } | Self::Progressing { .. } => None,
        }
    }

    /// Every generation the state names (running, target, failed).
    pub fn generations(&self) -> Vec<u64> {
        match *self {
            Self::Stable { generation } => vec![generation],
            Self::Progressing { from, to, .. } | Self::RollingBack { from, to, .. } => {
                vec![from, to]
            }
            Self::RolledBack {
                generation,
                failure,
            } => vec![generation, failure.generation],
        }
    }
}

/// Start or stop one generation of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RolloutAction {
    /// Start `generation` of `replica` (beside whatever runs).
    Start {
        /// Replica index.
        replica: u32,
        /// Generation to start.
        generation: u64,
    },
    /// Stop `generation` of `replica`.
    Stop {
        /// Replica index.
        replica: u32,
        /// Generation to stop.
        generation: u64,
    },
}

/// Health of each (replica, generation) the nodes report; anything absent is Missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutObservations(pub BTreeMap<(u32, u64), ReplicaHealth>);

impl RolloutObservations {
    /// Health of `generation` of `replica`.
    pub fn health(&self, replica: u32, generation: u64) -> ReplicaHealth {
        self.0
            .get(&(replica, generation))
            .copied()
            .unwrap_or(ReplicaHealth::Missing)
    }
}

/// A rollout that cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    /// Another rollout is under way; it finishes or rolls back first.
    #[error("a rollout to generation {current} is under way")]
    InProgress {
        /// Its target.
        current: u64,
    },
    /// Generations only grow.
    #[error("generation {target} is older than the running generation {running}")]
    Backwards {
        /// Requested generation.
        target: u64,
        /// Running generation.
        running: u64,
    },
}

/// Asks for `target` to run on `replicas` replicas, starting at `now_ms`.
pub fn begin(
    state: &RolloutState,
    target: u64,
    replicas: u32,
    now_ms: u64,
) -> Result<(RolloutState, Vec<RolloutAction>), RolloutError> {
    let running = match *state {
        RolloutState::Progressing { to, .. } | RolloutState::RollingBack { to, .. } => {
            return if to == target {
                Ok((*state, Vec::new()))
            } else {
                Err(RolloutError::InProgress { current: to })
            };
        }
        RolloutState::RolledBack { failure, .. } if failure.generation == target => {
            return Ok((*state, Vec::new()));
        }
        RolloutState::Stable { generation } | RolloutState::RolledBack { generation, .. } => {
            generation
        }
    };
    if target < running {
        return Err(RolloutError::Backwards { target, running });
    }
    if target == running || replicas == 0 {
        return Ok((RolloutState::Stable { generation: target }, Vec::new()));
    }
    let next = RolloutState::Progressing {
        from: running,
        to: target,
        replicas,
        replica: 0,
        started_ms: now_ms,
    };
    Ok((
        next,
        vec![RolloutAction::Start {
            replica: 0,
            generation: target,
        }],
    ))
}

/// Whether a health is a definite failure, and which.
const fn broken(health: ReplicaHealth) -> Option<Cause> {
    match health {
        ReplicaHealth::CrashLooping => Some(Cause::CrashLooping),
        ReplicaHealth::Failed => Some(Cause::Failed),
        ReplicaHealth::Healthy | ReplicaHealth::Starting | ReplicaHealth::Missing => None,
    }
}

/// Stops every new replica up to `upto` and restarts the old ones already stopped.
fn roll_back(
    from: u64,
    to: u64,
    replicas: u32,
    upto: u32,
    failure: RolloutFailure,
) -> (RolloutState, Vec<RolloutAction>) {
    let mut actions: Vec<RolloutAction> = (0..=upto)
        .map(|replica| RolloutAction::Stop {
            replica,
            generation: to,
        })
        .collect();
    actions.extend((0..upto).map(|replica| RolloutAction::Start {
        replica,
        generation: from,
    }));
    (
        RolloutState::RollingBack {
            from,
            to,
            replicas,
            failure,
        },
        actions,
    )
}

/// Advances the rollout given what the nodes report at `now_ms`; `deadline_ms` is how long a
/// new replica has to become healthy.
pub fn step(
    state: &RolloutState,
    observed: &RolloutObservations,
    now_ms: u64,
    deadline_ms: u64,
) -> (RolloutState, Vec<RolloutAction>) {
    match *state {
        RolloutState::Stable { .. } | RolloutState::RolledBack { .. } => (*state, Vec::new()),
        RolloutState::Progressing {
            from,
            to,
            replicas,
            replica,
            started_ms,
        } => {
            for done in 0..replica {
                if let Some(cause) = broken(observed.health(done, to)) {
                    let failure = RolloutFailure {
                        replica: done,
                        generation: to,
                        cause,
                    };
                    return roll_back(from, to, replicas, replica, failure);
                }
            }
            let health = observed.health(replica, to);
            if let Some(cause) = broken(health) {
                return roll_back(
                    from,
                    to,
                    replicas,
                    replica,
                    RolloutFailure {
                        replica,
                        generation: to,
                        cause,
                    },
                );
            }
            if health == ReplicaHealth::Healthy {
                let mut actions = vec![RolloutAction::Stop {
                    replica,
                    generation: from,
                }];
                let next = replica + 1;
                if next >= replicas {
                    return (RolloutState::Stable { generation: to }, actions);
                }
                actions.push(RolloutAction::Start {
                    replica: next,
                    generation: to,
                });
                return (
                    RolloutState::Progressing {
                        from,
                        to,
                        replicas,
                        replica: next,
                        started_ms: now_ms,
                    },
                    actions,
                );
            }
            if now_ms.saturating_sub(started_ms) > deadline_ms {
                let cause = Cause::NeverHealthy {
                    deadline_s: deadline_ms / 1000,
                };
                return roll_back(
                    from,
                    to,
                    replicas,
                    replica,
                    RolloutFailure {
                        replica,
                        generation: to,
                        cause,
                    },
                );
            }
            let resend = (health == ReplicaHealth::Missing).then_some(RolloutAction::Start {
                replica,
                generation: to,
            });
            (*state, resend.into_iter().collect())
        }
        RolloutState::RollingBack {
            from,
            to,
            replicas,
            failure,
        } => {
            let mut actions = Vec::new();
            let mut settled = true;
            for replica in 0..replicas {
                if observed.health(replica, to) != ReplicaHealth::Missing {
                    actions.push(RolloutAction::Stop {
                        replica,
                        generation: to,
                    });
                    settled = false;
                }
                match observed.health(replica, from) {
                    ReplicaHealth::Healthy => {}
                    ReplicaHealth::Missing => {
                        actions.push(RolloutAction::Start {
                            replica,
                            generation: from,
                        });
                        settled = false;
                    }
                    ReplicaHealth::Starting
                    | ReplicaHealth::CrashLooping
                    | ReplicaHealth::Failed => settled = false,
                }
            }
            if settled {
                (
                    RolloutState::RolledBack {
                        generation: from,
                        failure,
                    },
                    Vec::new(),
                )
            } else {
                (*state, actions)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures
mod tests {
    use super::*;
    use ReplicaHealth::{CrashLooping, Failed, Healthy, Missing, Starting};

    const DEADLINE: u64 = 120_000;

    fn observe(entries: &[(u32, u64, ReplicaHealth)]) -> RolloutObservations {
        RolloutObservations(entries.iter().map(|&(r, g, h)| ((r, g), h)).collect())
    }

    fn start(replica: u32, generation: u64) -> RolloutAction {
        RolloutAction::Start {
            replica,
            generation,
        }
    }

    fn stop(replica: u32, generation: u64) -> RolloutAction {
        RolloutAction::Stop {
            replica,
            generation,
        }
    }

    fn progressing(replica: u32, started_ms: u64) -> RolloutState {
        RolloutState::Progressing {
            from: 1,
            to: 2,
            replicas: 2,
            replica,
            started_ms,
        }
    }

    #[test]
    fn begin_from_each_state() {
        let stable = RolloutState::Stable { generation: 1 };
        assert_eq!(
            begin(&stable, 2, 2, 5),
            Ok((progressing(0, 5), vec![start(0, 2)]))
        );
        assert_eq!(begin(&stable, 1, 2, 5), Ok((stable, vec![])));
        assert_eq!(
            begin(&stable, 2, 0, 5),
            Ok((RolloutState::Stable { generation: 2 }, vec![]))
        );
        assert_eq!(
            begin(&stable, 0, 2, 5),
            Err(RolloutError::Backwards {
                target: 0,
                running: 1
            })
        );
        let p = progressing(1, 5);
        assert_eq!(begin(&p, 2, 2, 9), Ok((p, vec![])));
        assert_eq!(
            begin(&p, 3, 2, 9),
            Err(RolloutError::InProgress { current: 2 })
        );
        let failure = RolloutFailure {
            replica: 0,
            generation: 2,
            cause: Cause::Failed,
        };
        let back = RolloutState::RolledBack {
            generation: 1,
            failure,
        };
        assert_eq!(begin(&back, 2, 2, 9), Ok((back, vec![])));
        assert_eq!(
            begin(&back, 1, 2, 9),
            Ok((RolloutState::Stable { generation: 1 }, vec![]))
        );
        assert_eq!(
            begin(&back, 3, 2, 9).map(|(s, _)| s),
            Ok(RolloutState::Progressing {
                from: 1,
                to: 3,
                replicas: 2,
                replica: 0,
                started_ms: 9
            })
        );
        let rolling = RolloutState::RollingBack {
            from: 1,
            to: 2,
            replicas: 2,
            failure,
        };
        assert_eq!(
            begin(&rolling, 3, 2, 9),
            Err(RolloutError::InProgress { current: 2 })
        );
    }

    #[test]
    fn a_healthy_rollout_goes_replica_by_replica() {
        let (s, a) = step(
            &progressing(0, 0),
            &observe(&[(0, 1, Healthy), (0, 2, Starting)]),
            1000,
            DEADLINE,
        );
        assert_eq!((s, a), (progressing(0, 0), vec![]));
        let (s, a) = step(
            &s,
            &observe(&[(0, 1, Healthy), (0, 2, Healthy)]),
            2000,
            DEADLINE,
        );
        assert_eq!(a, vec![stop(0, 1), start(1, 2)]);
        assert_eq!(s, progressing(1, 2000));
        let (s, a) = step(
            &s,
            &observe(&[(0, 2, Healthy), (1, 1, Healthy), (1, 2, Healthy)]),
            3000,
            DEADLINE,
        );
        assert_eq!(a, vec![stop(1, 1)]);
        assert_eq!(s, RolloutState::Stable { generation: 2 });
        assert_eq!(
            step(&s, &RolloutObservations::default(), 4000, DEADLINE),
            (s, vec![])
        );
    }

    #[test]
    fn a_missing_new_replica_is_started_again() {
        let (s, a) = step(
            &progressing(0, 0),
            &observe(&[(0, 1, Healthy)]),
            1000,
            DEADLINE,
        );
        assert_eq!((s, a), (progressing(0, 0), vec![start(0, 2)]));
    }

    #[test]
    fn never_healthy_rolls_back_with_a_reason() {
        let (s, a) = step(
            &progressing(0, 0),
            &observe(&[(0, 1, Healthy), (0, 2, Starting)]),
            DEADLINE + 1,
            DEADLINE,
        );
        assert_eq!(a, vec![stop(0, 2)]);
        let failure = s.failure().expect("rolling back");
        assert_eq!(
            failure.to_string(),
            "RolloutFailed: replica 0 of generation 2 never became healthy within 120 s"
        );
        // At the deadline exactly it still waits.
        let (s2, _) = step(
            &progressing(0, 0),
            &observe(&[(0, 2, Starting)]),
            DEADLINE,
            DEADLINE,
        );
        assert_eq!(s2, progressing(0, 0));
    }

    #[test]
    fn crash_loops_and_failures_roll_back_at_once() {
        for (health, cause, text) in [
            (CrashLooping, Cause::CrashLooping, "crash-looped"),
            (Failed, Cause::Failed, "failed"),
        ] {
            let (s, a) = step(
                &progressing(1, 0),
                &observe(&[(0, 2, Healthy), (1, 1, Healthy), (1, 2, health)]),
                10,
                DEADLINE,
            );
            // Both new replicas stop, the old replica 0 (already stopped) comes back.
            assert_eq!(a, vec![stop(0, 2), stop(1, 2), start(0, 1)]);
            let failure = s.failure().expect("rolling back");
            assert_eq!(
                failure,
                RolloutFailure {
                    replica: 1,
                    generation: 2,
                    cause
                }
            );
            assert_eq!(
                failure.to_string(),
                format!("RolloutFailed: replica 1 of generation 2 {text}")
            );
        }
    }

    #[test]
    fn an_already_switched_replica_breaking_rolls_back() {
        let (s, a) = step(
            &progressing(1, 0),
            &observe(&[(0, 2, CrashLooping), (1, 1, Healthy), (1, 2, Starting)]),
            10,
            DEADLINE,
        );
        assert_eq!(a, vec![stop(0, 2), stop(1, 2), start(0, 1)]);
        assert_eq!(s.failure().map(|f| f.replica), Some(0));
    }

    #[test]
    fn rolling_back_repeats_until_the_old_generation_is_healthy() {
        let failure = RolloutFailure {
            replica: 1,
            generation: 2,
            cause: Cause::Failed,
        };
        let s = RolloutState::RollingBack {
            from: 1,
            to: 2,
            replicas: 2,
            failure,
        };
        // New replica 1 still reported, old replica 0 missing: re-sent.
        let (s1, a) = step(
            &s,
            &observe(&[(1, 2, Failed), (1, 1, Healthy)]),
            10,
            DEADLINE,
        );
        assert_eq!((s1, a), (s, vec![start(0, 1), stop(1, 2)]));
        // Old replica 0 starting: wait.
        let (s2, a) = step(
            &s,
            &observe(&[(0, 1, Starting), (1, 1, Healthy)]),
            20,
            DEADLINE,
        );
        assert_eq!((s2, a), (s, vec![]));
        // All old healthy, no new: rolled back, with the reason kept.
        let (s3, a) = step(
            &s,
            &observe(&[(0, 1, Healthy), (1, 1, Healthy)]),
            30,
            DEADLINE,
        );
        assert_eq!(a, vec![]);
        assert_eq!(
            s3,
            RolloutState::RolledBack {
                generation: 1,
                failure
            }
        );
        assert_eq!(s3.failure(), Some(failure));
        assert_eq!(
            step(&s3, &RolloutObservations::default(), 40, DEADLINE),
            (s3, vec![])
        );
    }

    #[test]
    fn serving_and_in_flight_generations_per_replica() {
        let p = RolloutState::Progressing {
            from: 1,
            to: 2,
            replicas: 3,
            replica: 1,
            started_ms: 0,
        };
        assert_eq!([0, 1, 2].map(|r| p.serving(r)), [2, 1, 1]);
        assert_eq!([0, 1, 2].map(|r| p.in_flight(r)), [None, Some(2), None]);
        assert_eq!(p.generations(), vec![1, 2]);
        let failure = RolloutFailure {
            replica: 1,
            generation: 2,
            cause: Cause::CrashLooping,
        };
        let back = RolloutState::RollingBack {
            from: 1,
            to: 2,
            replicas: 3,
            failure,
        };
        assert_eq!([0, 1, 2].map(|r| back.serving(r)), [1, 1, 1]);
        assert_eq!(back.in_flight(2), Some(2));
        let done = RolloutState::RolledBack {
            generation: 1,
            failure,
        };
        assert_eq!((done.serving(0), done.in_flight(0)), (1, None));
        assert_eq!(done.generations(), vec![1, 2]);
        let json = serde_json::to_string(&back).unwrap();
        assert_eq!(serde_json::from_str::<RolloutState>(&json).unwrap(), back);
    }

    #[test]
    fn observations_default_to_missing() {
        assert_eq!(RolloutObservations::default().health(3, 9), Missing);
    }
}
