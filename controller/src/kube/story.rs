//! The story of a job as Kubernetes events, so `kubectl describe djob NAME` tells it: funded,
//! scheduled, deployed, validated, moved, rolled out or rolled back, paid, closed.
//!
//! Events are derived only from consecutive statuses the adapter writes on a `DeeployJob`
//! ([`story`]): a condition turning `True`, the chain job id appearing, a replica leaving a node,
//! the budget going down. [`Told`] remembers what the adapter last told about a job, so writing
//! the same status twice tells nothing the second time, an epoch's settlement is told once, and
//! one write tells a handful of events at most ([`next_chapter`]).
//!
//! [`HEALTH_LUA`] is the Argo CD health check of the four kinds, read from the same statuses.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use r1_crds::common::{Condition, ConditionStatus};
use r1_crds::job::{DeeployJobStatus, JobPhase, ReplicaAssignment};
use r1_crds::usdc::Usdc;

use crate::decide::rollout::ROLLOUT_FAILED;
use crate::kube::events::EventType;

/// The Argo CD health check (Lua) of `DeeployJob`, `DeeployProject`, `Tunnel` and `Escrow`; the
/// README shows the same text under `resource.customizations.health.deeploy.ratio1.ai_<Kind>`.
pub const HEALTH_LUA: &str = include_str!("health.lua");

/// The most events one status write tells; Warnings go first when there are more.
pub const MAX_EVENTS: usize = 5;

/// Reason of the event telling an epoch's settlement, told once per epoch.
pub const PAID: &str = "Paid";

/// Placements or moves a note lists before saying how many more there are.
const LISTED: usize = 5;

/// One event of a job's story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryEvent {
    /// Normal, or Warning for what went wrong (a rollback, a lost replica, a failure).
    pub type_: EventType,
    /// What the oracle did, e.g. `Schedule`.
    pub action: &'static str,
    /// One CamelCase word, e.g. `Scheduled`.
    pub reason: &'static str,
    /// The details.
    pub note: String,
}

impl StoryEvent {
    fn normal(action: &'static str, reason: &'static str, note: String) -> Self {
        Self {
            type_: EventType::Normal,
            action,
            reason,
            note,
        }
    }

    fn warning(action: &'static str, reason: &'static str, note: String) -> Self {
        Self {
            type_: EventType::Warning,
            action,
            reason,
            note,
        }
    }
}

/// What happened between two statuses of a job, in the order of a job's life. Nothing when
/// nothing changed; each step once, on the write that shows it first.
pub fn story(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Vec<StoryEvent> {
    [
        funded(previous, next),
        scheduled(previous, next),
        moved(previous, next),
        deployed(previous, next),
        validated(previous, next),
        rolled(previous, next),
        degraded(previous, next),
        failed(previous, next),
        paid(previous, next),
        closed(previous, next),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What the adapter last told about one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Told {
    /// The uid of the resource it was about.
    pub uid: Option<String>,
    /// The status last written on it.
    pub status: DeeployJobStatus,
    /// The epoch of the last [`PAID`] event.
    pub paid_epoch: Option<u64>,
}

/// The events to publish once the adapter has written `next` on the job with `uid`, and what it
/// has told then. The previous status is the one last told about this very resource, else the
/// one the resource showed (`shown`, `None` when unreadable: then nothing is told). A [`PAID`]
/// event for an epoch already told is dropped, and at most [`MAX_EVENTS`] are kept.
pub fn next_chapter(
    told: Option<&Told>,
    shown: Option<&DeeployJobStatus>,
    uid: Option<&str>,
    next: &DeeployJobStatus,
) -> (Vec<StoryEvent>, Told) {
    let told = told.filter(|t| t.uid.as_deref() == uid);
    let mut paid_epoch = told.and_then(|t| t.paid_epoch);
    let previous = told.map(|t| &t.status).or(shown);
    let events = previous
        .map(|previous| story(previous, next))
        .unwrap_or_default()
        .into_iter()
        .filter(|event| {
            if event.reason != PAID {
                return true;
            }
            let epoch = next.current_epoch;
            if epoch.is_some() && epoch == paid_epoch {
                return false;
            }
            paid_epoch = epoch.or(paid_epoch);
            true
        })
        .collect();
    let now = Told {
        uid: uid.map(str::to_owned),
        status: next.clone(),
        paid_epoch,
    };
    (bounded(events), now)
}

/// At most [`MAX_EVENTS`] events in their order: every Warning first, then the earliest Normals.
fn bounded(events: Vec<StoryEvent>) -> Vec<StoryEvent> {
    if events.len() <= MAX_EVENTS {
        return events;
    }
    let warnings = events
        .iter()
        .filter(|e| e.type_ == EventType::Warning)
        .count()
        .min(MAX_EVENTS);
    let mut room = [MAX_EVENTS - warnings, warnings];
    events
        .into_iter()
        .filter(|e| {
            let left = &mut room[usize::from(e.type_ == EventType::Warning)];
            let keep = *left > 0;
            *left = left.saturating_sub(1);
            keep
        })
        .collect()
}

fn condition<'a>(status: &'a DeeployJobStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

fn holds(status: &DeeployJobStatus, type_: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

/// The condition `type_` of `next` when it turned `True` since `previous`.
fn turned_true<'a>(
    previous: &DeeployJobStatus,
    next: &'a DeeployJobStatus,
    type_: &str,
) -> Option<&'a Condition> {
    condition(next, type_).filter(|c| c.status == ConditionStatus::True && !holds(previous, type_))
}

fn closing(status: &DeeployJobStatus) -> bool {
    matches!(status.phase, Some(JobPhase::Closing | JobPhase::Closed)) || holds(status, "Closed")
}

/// `message`, or `fallback` when it is empty.
fn or_else(message: &str, fallback: impl FnOnce() -> String) -> String {
    if message.is_empty() {
        fallback()
    } else {
        message.to_owned()
    }
}

fn usdc(amount: Option<&String>) -> Option<Usdc> {
    amount.and_then(|a| Usdc::from_str(a).ok())
}

/// Funded: a chain job pays for the job (told once per chain job id).
fn funded(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    let id = next.chain_job_id.as_deref()?;
    if previous.chain_job_id.as_deref() == Some(id) {
        return None;
    }
    let funded = condition(next, "Funded").filter(|c| c.status == ConditionStatus::True)?;
    let mut note = or_else(&funded.message, || {
        format!("chain job {id} pays for the job")
    });
    if let Some(budget) = &next.budget_left {
        note.push_str(&format!("; {budget} USDC locked"));
        if let Some(price) = &next.price_per_epoch {
            note.push_str(&format!(", {price} USDC per epoch"));
        }
    }
    Some(StoryEvent::normal("Fund", "Funded", note))
}

/// Scheduled: every replica has a node.
fn scheduled(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    let scheduled = turned_true(previous, next, "Scheduled")?;
    let note = if next.assignments.is_empty() {
        or_else(&scheduled.message, || "replicas placed".to_owned())
    } else {
        let placed: BTreeSet<u32> = next.assignments.iter().map(|a| a.replica).collect();
        let places: Vec<String> = next
            .assignments
            .iter()
            .map(|a| format!("replica {} on {}", a.replica, a.node))
            .collect();
        format!("{} replicas placed: {}", placed.len(), listed(&places))
    };
    Some(StoryEvent::normal("Schedule", "Scheduled", note))
}

/// `items` joined, the first [`LISTED`] of them and how many more.
fn listed(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LISTED {
        text.push_str(&format!(" and {} more", items.len() - LISTED));
    }
    text
}

fn nodes_by_replica(assignments: &[ReplicaAssignment]) -> BTreeMap<u32, BTreeSet<&str>> {
    let mut nodes: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
    for a in assignments {
        nodes.entry(a.replica).or_default().insert(a.node.as_str());
    }
    nodes
}

/// Moved: a replica left a node (lost, or no longer wanted there) while the job lives.
fn moved(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    if closing(next) {
        return None;
    }
    let before = nodes_by_replica(&previous.assignments);
    let after = nodes_by_replica(&next.assignments);
    let moves: Vec<String> = before
        .iter()
        .filter_map(|(replica, was)| {
            let now = after.get(replica);
            let left: Vec<&str> = was
                .iter()
                .copied()
                .filter(|node| now.is_none_or(|now| !now.contains(node)))
                .collect();
            if left.is_empty() {
                return None;
            }
            let mut text = format!("replica {replica} left {}", left.join(", "));
            if let Some(now) = now {
                let now: Vec<&str> = now.iter().copied().collect();
                text.push_str(&format!(" and runs on {}", now.join(", ")));
            }
            Some(text)
        })
        .collect();
    if moves.is_empty() {
        return None;
    }
    Some(StoryEvent::normal("Move", "Moved", listed(&moves)))
}

/// Deployed: every replica runs and is healthy.
fn deployed(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    let running = turned_true(previous, next, "Running")?;
    let note = or_else(&running.message, || {
        format!(
            "{} replicas healthy",
            next.ready
                .clone()
                .unwrap_or_else(|| next.ready_replicas.to_string())
        )
    });
    Some(StoryEvent::normal("Deploy", "Deployed", note))
}

/// Validated: the oracles recorded the running node set on chain.
fn validated(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    let validated = turned_true(previous, next, "Validated")?;
    let mut note = or_else(&validated.message, || {
        "the oracles recorded the node set on chain".to_owned()
    });
    if let Some(epoch) = next.last_consensus_epoch {
        note.push_str(&format!(" (epoch {epoch})"));
    }
    Some(StoryEvent::normal("Validate", "Validated", note))
}

/// The failure a `RolloutFailed` message tells, without what is done about it (`…; rolling back
/// to revision X`, then `…; running revision X again` for the same failure).
fn failure(message: &str) -> &str {
    message.split("; ").next().unwrap_or(message)
}

/// RolledOut: every replica runs a new revision; RolledBack (Warning): a revision failed and
/// the previous one runs again.
fn rolled(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    let now = condition(next, "RolledOut")?;
    let before = condition(previous, "RolledOut");
    let was = |status: ConditionStatus, reason: &str| {
        before.is_some_and(|b| b.status == status && b.reason == reason)
    };
    match now.status {
        ConditionStatus::True => {
            let same = was(ConditionStatus::True, &now.reason)
                && before.is_some_and(|b| b.message == now.message);
            (!same).then(|| {
                let note = or_else(&now.message, || "every replica runs the spec".to_owned());
                StoryEvent::normal("RollOut", "RolledOut", note)
            })
        }
        ConditionStatus::False if now.reason == ROLLOUT_FAILED => {
            let same = was(ConditionStatus::False, ROLLOUT_FAILED)
                && before.is_some_and(|b| failure(&b.message) == failure(&now.message));
            (!same).then(|| {
                let note = or_else(&now.message, || "the new revision failed".to_owned());
                StoryEvent::warning("RollBack", "RolledBack", note)
            })
        }
        _ => None,
    }
}

/// Degraded (Warning): a replica stopped running.
fn degraded(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    let degraded = turned_true(previous, next, "Degraded")?;
    let note = or_else(&degraded.message, || "a replica stopped running".to_owned());
    Some(StoryEvent::warning("Replace", "Degraded", note))
}

/// Failed (Warning): the job cannot proceed.
fn failed(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    if next.phase != Some(JobPhase::Failed) || previous.phase == Some(JobPhase::Failed) {
        return None;
    }
    let why = next
        .conditions
        .iter()
        .find(|c| c.status == ConditionStatus::False && !c.message.is_empty())
        .map_or_else(
            || "the job cannot proceed".to_owned(),
            |c| c.message.clone(),
        );
    Some(StoryEvent::warning("Check", "Failed", why))
}

/// Paid: the budget went down under the same chain job, an epoch having been settled.
fn paid(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    let id = next.chain_job_id.as_deref()?;
    if previous.chain_job_id.as_deref() != Some(id)
        || next.phase == Some(JobPhase::Closed)
        || holds(next, "Closed")
    {
        return None;
    }
    let before = usdc(previous.budget_left.as_ref())?;
    let after = usdc(next.budget_left.as_ref())?;
    let spent = before
        .units()
        .checked_sub(after.units())
        .filter(|s| *s > 0)?;
    let mut note = format!(
        "chain job {id} settled: {} USDC to its nodes and the burn, {after} USDC left",
        Usdc(spent)
    );
    if let Some(epoch) = next.current_epoch {
        note.push_str(&format!(" (epoch {epoch})"));
    }
    Some(StoryEvent::normal("Settle", PAID, note))
}

/// Closed: the chain job is closed, its unspent budget refunded.
fn closed(previous: &DeeployJobStatus, next: &DeeployJobStatus) -> Option<StoryEvent> {
    let closed = turned_true(previous, next, "Closed")?;
    let mut note = or_else(&closed.message, || "the chain job is closed".to_owned());
    match usdc(previous.budget_left.as_ref()) {
        Some(left) if left.units() > 0 => note.push_str(&format!(
            "; the unspent budget (last seen: {left} USDC) is refunded to the CSP"
        )),
        Some(_) => note.push_str("; nothing was left to refund"),
        None => {}
    }
    Some(StoryEvent::normal("Close", "Closed", note))
}

#[cfg(test)]
mod tests;
