#![allow(clippy::unwrap_used)] // test fixtures

use r1_crds::common::{Condition, ConditionStatus};
use r1_crds::job::{DeeployJobStatus, JobPhase, ReplicaAssignment};

use super::*;

const A: &str = "0xAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAa";
const B: &str = "0xBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBb";
const C: &str = "0xCcCcCcCcCcCcCcCcCcCcCcCcCcCcCcCcCcCcCcCc";

fn condition(type_: &str, status: ConditionStatus, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.into(),
        last_transition_time: "2026-01-01T00:00:00Z".into(),
        observed_generation: Some(1),
    }
}

fn yes(type_: &str, reason: &str, message: &str) -> Condition {
    condition(type_, ConditionStatus::True, reason, message)
}

fn no(type_: &str, reason: &str, message: &str) -> Condition {
    condition(type_, ConditionStatus::False, reason, message)
}

fn assignment(replica: u32, node: &str) -> ReplicaAssignment {
    ReplicaAssignment {
        replica,
        node: node.into(),
        state: "running".into(),
        since: None,
        message: None,
    }
}

/// Sets (or adds) the condition of the same type.
fn with(mut status: DeeployJobStatus, condition: Condition) -> DeeployJobStatus {
    status.conditions.retain(|c| c.type_ != condition.type_);
    status.conditions.push(condition);
    status
}

fn pending() -> DeeployJobStatus {
    DeeployJobStatus {
        phase: Some(JobPhase::Pending),
        ready: Some("0/2".into()),
        conditions: vec![
            no("Funded", "AwaitingFunding", "fund it with `r1ctl fund`"),
            yes("Valid", "Accepted", "the oracle holds this generation"),
        ],
        observed_generation: Some(1),
        ..DeeployJobStatus::default()
    }
}

fn funded() -> DeeployJobStatus {
    let mut status = with(
        pending(),
        yes(
            "Funded",
            "BudgetLocked",
            "chain job 4 pays 2 nodes until epoch 40",
        ),
    );
    status.phase = Some(JobPhase::Funded);
    status.chain_job_id = Some("4".into());
    status.budget_left = Some("22.5".into());
    status.price_per_epoch = Some("0.75".into());
    status.last_epoch = Some(40);
    status.current_epoch = Some(10);
    status = with(
        status,
        no("Scheduled", "NoEligibleNode", "waiting for nodes"),
    );
    with(
        status,
        no(
            "Validated",
            "AwaitingConsensus",
            "the node set on chain differs",
        ),
    )
}

fn scheduled() -> DeeployJobStatus {
    let mut status = with(
        funded(),
        yes("Scheduled", "NodesChosen", "2 replicas placed"),
    );
    status.phase = Some(JobPhase::Scheduled);
    status.assignments = vec![assignment(0, A), assignment(1, B)];
    with(
        status,
        no("Running", "ReplicasStarting", "0/2 replicas healthy"),
    )
}

fn deployed() -> DeeployJobStatus {
    let mut status = with(
        scheduled(),
        yes("Running", "AllReplicasHealthy", "2/2 replicas healthy"),
    );
    status.ready = Some("2/2".into());
    status.ready_replicas = 2;
    with(
        status,
        yes(
            "RolledOut",
            "RolloutComplete",
            "every replica runs revision 1a2b",
        ),
    )
}

fn running() -> DeeployJobStatus {
    let mut status = with(
        deployed(),
        yes(
            "Validated",
            "ConsensusReached",
            "the oracles recorded this node set on chain",
        ),
    );
    status.phase = Some(JobPhase::Running);
    status.last_consensus_epoch = Some(10);
    with(status, no("Degraded", "AsPlanned", ""))
}

fn settled(mut status: DeeployJobStatus, epoch: u64, budget: &str) -> DeeployJobStatus {
    status.current_epoch = Some(epoch);
    status.budget_left = Some(budget.into());
    status
}

fn closed() -> DeeployJobStatus {
    DeeployJobStatus {
        phase: Some(JobPhase::Closed),
        chain_job_id: Some("4".into()),
        budget_left: Some("0".into()),
        conditions: vec![
            yes(
                "Closed",
                "JobClosed",
                "chain job 4 is closed; its workloads are removed",
            ),
            yes("Valid", "Accepted", "the oracle holds this generation"),
        ],
        ..running()
    }
}

fn reasons(events: &[StoryEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.reason).collect()
}

#[test]
fn nothing_changed_tells_nothing() {
    for status in [
        DeeployJobStatus::default(),
        pending(),
        funded(),
        scheduled(),
        deployed(),
        running(),
        closed(),
    ] {
        assert_eq!(story(&status, &status), [], "{status:?}");
    }
    // Transition times and epochs move on without a story.
    let mut later = running();
    later.current_epoch = Some(11);
    for c in &mut later.conditions {
        c.last_transition_time = "2026-01-02T00:00:00Z".into();
    }
    assert_eq!(story(&running(), &later), []);
}

#[test]
fn a_jobs_life_is_told_step_by_step() {
    let life = [
        DeeployJobStatus::default(),
        pending(),
        funded(),
        scheduled(),
        deployed(),
        running(),
        settled(running(), 11, "21.75"),
        closed(),
    ];
    let told: Vec<Vec<&str>> = life
        .windows(2)
        .map(|pair| reasons(&story(&pair[0], &pair[1])))
        .collect();
    assert_eq!(
        told,
        [
            vec![],
            vec!["Funded"],
            vec!["Scheduled"],
            vec!["Deployed", "RolledOut"],
            vec!["Validated"],
            vec![PAID],
            vec!["Closed"],
        ]
    );
    // All of it at once, as after a restart of the adapter, in the order of a job's life.
    let all = story(&DeeployJobStatus::default(), &running());
    assert_eq!(
        reasons(&all),
        ["Funded", "Scheduled", "Deployed", "Validated", "RolledOut"]
    );
    assert!(all.iter().all(|e| e.type_ == EventType::Normal));
}

#[test]
fn each_step_says_what_happened() {
    let funded_event = &story(&pending(), &funded())[0];
    assert_eq!(funded_event.action, "Fund");
    assert_eq!(
        funded_event.note,
        "chain job 4 pays 2 nodes until epoch 40; 22.5 USDC locked, 0.75 USDC per epoch"
    );
    let scheduled_event = &story(&funded(), &scheduled())[0];
    assert_eq!(
        scheduled_event.note,
        format!("2 replicas placed: replica 0 on {A}, replica 1 on {B}")
    );
    let deployed_events = story(&scheduled(), &deployed());
    assert_eq!(deployed_events[0].note, "2/2 replicas healthy");
    assert_eq!(deployed_events[1].note, "every replica runs revision 1a2b");
    let validated_event = &story(&deployed(), &running())[0];
    assert_eq!(
        validated_event.note,
        "the oracles recorded this node set on chain (epoch 10)"
    );
    let paid_event = &story(&running(), &settled(running(), 11, "21.75"))[0];
    assert_eq!(
        paid_event.note,
        "chain job 4 settled: 0.75 USDC to its nodes and the burn, 21.75 USDC left (epoch 11)"
    );
    let closed_event = &story(&settled(running(), 11, "21.75"), &closed())[0];
    assert_eq!(
        closed_event.note,
        "chain job 4 is closed; its workloads are removed; the unspent budget (last seen: 21.75 USDC) is refunded to the CSP"
    );
    let spent = story(&settled(running(), 40, "0"), &closed());
    assert!(
        spent[0].note.ends_with("nothing was left to refund"),
        "{spent:?}"
    );
}

#[test]
fn many_placements_are_counted_not_listed() {
    let mut many = scheduled();
    many.assignments = (0..8).map(|replica| assignment(replica, A)).collect();
    let note = &story(&funded(), &many)[0].note;
    assert!(
        note.starts_with("8 replicas placed: replica 0 on "),
        "{note}"
    );
    assert!(note.ends_with(" and 3 more"), "{note}");
}

#[test]
fn a_chain_outage_does_not_fund_the_job_again() {
    let mut outage = running();
    outage = with(
        outage,
        condition(
            "Funded",
            ConditionStatus::Unknown,
            "ChainUnreachable",
            "the chain RPC cannot be read",
        ),
    );
    assert_eq!(story(&running(), &outage), []);
    assert_eq!(story(&outage, &running()), []);
    // A new chain job for the same resource is news.
    let mut refunded = running();
    refunded.chain_job_id = Some("9".into());
    assert_eq!(reasons(&story(&running(), &refunded)), ["Funded"]);
}

#[test]
fn a_moved_replica_is_told() {
    let mut moved = running();
    moved.assignments = vec![assignment(0, A), assignment(1, C)];
    let events = story(&running(), &moved);
    assert_eq!(reasons(&events), ["Moved"]);
    assert_eq!(events[0].type_, EventType::Normal);
    assert_eq!(events[0].action, "Move");
    assert_eq!(
        events[0].note,
        format!("replica 1 left {B} and runs on {C}")
    );

    // Lost with no node yet, then placed again: told once, when it leaves.
    let mut lost = running();
    lost.assignments = vec![assignment(0, A)];
    assert_eq!(
        story(&running(), &lost)[0].note,
        format!("replica 1 left {B}")
    );
    assert_eq!(reasons(&story(&lost, &moved)), [] as [&str; 0]);

    // Beside the old node for a while, then only on the new one: told when it leaves.
    let mut both = running();
    both.assignments = vec![assignment(0, A), assignment(1, B), assignment(1, C)];
    assert_eq!(story(&running(), &both), []);
    assert_eq!(
        story(&both, &moved)[0].note,
        format!("replica 1 left {B} and runs on {C}")
    );

    // Replicas leaving their nodes because the job closes are the Closed event's business.
    let mut closing = moved.clone();
    closing.phase = Some(JobPhase::Closing);
    closing.assignments.clear();
    assert_eq!(story(&moved, &closing), []);
}

#[test]
fn a_rollout_is_told_when_done_and_a_rollback_is_a_warning() {
    let rolling = with(
        running(),
        no(
            "RolledOut",
            "RollingOut",
            "replica 0 of 2: revision 8c1f starting beside 1a2b, which stops once it is healthy",
        ),
    );
    assert_eq!(story(&running(), &rolling), [], "progress is not an event");
    let done = with(
        running(),
        yes(
            "RolledOut",
            "RolloutComplete",
            "every replica runs revision 8c1f",
        ),
    );
    let events = story(&rolling, &done);
    assert_eq!(reasons(&events), ["RolledOut"]);
    assert_eq!(events[0].note, "every replica runs revision 8c1f");
    assert_eq!(story(&done, &done), []);

    let failing = with(
        running(),
        no(
            "RolledOut",
            ROLLOUT_FAILED,
            "replica 0 of revision 8c1f never became healthy within 120 s; rolling back to revision 1a2b",
        ),
    );
    let events = story(&rolling, &failing);
    assert_eq!(reasons(&events), ["RolledBack"]);
    assert_eq!(events[0].type_, EventType::Warning);
    assert_eq!(events[0].action, "RollBack");
    assert!(
        events[0].note.contains("never became healthy"),
        "{events:?}"
    );
    // The same failure, now rolled back: not told twice.
    let rolled_back = with(
        running(),
        no(
            "RolledOut",
            ROLLOUT_FAILED,
            "replica 0 of revision 8c1f never became healthy within 120 s; running revision 1a2b again",
        ),
    );
    assert_eq!(story(&failing, &rolled_back), []);
    // Another revision failing is news again.
    let again = with(
        running(),
        no(
            "RolledOut",
            ROLLOUT_FAILED,
            "replica 1 of revision 99aa crash-looped; running revision 1a2b again",
        ),
    );
    assert_eq!(reasons(&story(&rolled_back, &again)), ["RolledBack"]);
}

#[test]
fn a_lost_replica_and_a_failed_job_are_warnings() {
    let mut degraded = with(
        running(),
        yes(
            "Degraded",
            "ReplicaLost",
            "a replica stopped running; it is being replaced",
        ),
    );
    degraded = with(
        degraded,
        no("Running", "ReplicasStarting", "1/2 replicas healthy"),
    );
    degraded.phase = Some(JobPhase::Degraded);
    let events = story(&running(), &degraded);
    assert_eq!(reasons(&events), ["Degraded"]);
    assert_eq!(events[0].type_, EventType::Warning);
    assert_eq!(
        events[0].note,
        "a replica stopped running; it is being replaced"
    );
    // Healthy again: running, told as deployed.
    assert_eq!(reasons(&story(&degraded, &running())), ["Deployed"]);

    let failed = DeeployJobStatus {
        phase: Some(JobPhase::Failed),
        conditions: vec![no("Running", "InvalidSpec", "no price class fits 64 GPUs")],
        ..DeeployJobStatus::default()
    };
    let events = story(&pending(), &failed);
    assert_eq!(reasons(&events), ["Failed"]);
    assert_eq!(events[0].type_, EventType::Warning);
    assert_eq!(events[0].note, "no price class fits 64 GPUs");
    assert_eq!(story(&failed, &failed), []);
}

#[test]
fn a_budget_going_up_or_a_new_chain_job_is_not_a_payment() {
    let extended = settled(running(), 10, "30");
    assert_eq!(story(&running(), &extended), []);
    let mut other = settled(running(), 10, "1");
    other.chain_job_id = Some("5".into());
    assert!(!reasons(&story(&running(), &other)).contains(&PAID));
    let unreadable = settled(running(), 10, "lots");
    assert_eq!(story(&running(), &unreadable), []);
}

#[test]
fn the_same_status_written_twice_is_told_once() {
    let uid = Some("uid-job");
    let (events, told) = next_chapter(None, Some(&funded()), uid, &scheduled());
    assert_eq!(reasons(&events), ["Scheduled"]);
    // Written again, the resource (a stale cache) still showing the older status.
    let (events, told) = next_chapter(Some(&told), Some(&funded()), uid, &scheduled());
    assert_eq!(events, []);
    assert_eq!(told.status, scheduled());
    // The next step is told against what was written, not against the stale cache.
    let (events, _) = next_chapter(Some(&told), Some(&funded()), uid, &deployed());
    assert_eq!(reasons(&events), ["Deployed", "RolledOut"]);
}

#[test]
fn what_was_told_about_another_resource_does_not_count() {
    let (_, told) = next_chapter(None, Some(&funded()), Some("uid-old"), &running());
    // The job was deleted and created again under the same name.
    let (events, told) = next_chapter(
        Some(&told),
        Some(&DeeployJobStatus::default()),
        Some("uid-new"),
        &pending(),
    );
    assert_eq!(events, []);
    assert_eq!(told.uid.as_deref(), Some("uid-new"));
}

#[test]
fn an_unreadable_status_tells_nothing_but_is_remembered() {
    let (events, told) = next_chapter(None, None, Some("uid-job"), &running());
    assert_eq!(events, []);
    let (events, _) = next_chapter(Some(&told), None, Some("uid-job"), &closed());
    assert_eq!(reasons(&events), ["Closed"]);
}

#[test]
fn an_epoch_is_paid_once() {
    let uid = Some("uid-job");
    let (events, told) = next_chapter(
        None,
        Some(&running()),
        uid,
        &settled(running(), 11, "21.75"),
    );
    assert_eq!(reasons(&events), [PAID]);
    assert_eq!(told.paid_epoch, Some(11));
    // A stale read of the chain shows the budget before the settlement, then after it again.
    let (events, told) = next_chapter(Some(&told), None, uid, &settled(running(), 11, "22.5"));
    assert_eq!(events, []);
    let (events, told) = next_chapter(Some(&told), None, uid, &settled(running(), 11, "21.75"));
    assert_eq!(events, [], "epoch 11 was told already");
    let (events, told) = next_chapter(Some(&told), None, uid, &settled(running(), 12, "21"));
    assert_eq!(reasons(&events), [PAID]);
    assert_eq!(told.paid_epoch, Some(12));
}

#[test]
fn a_write_tells_a_handful_at_most_warnings_first() {
    let mut worst = with(
        running(),
        yes("Degraded", "ReplicaLost", "a replica stopped running"),
    );
    worst = with(
        worst,
        no(
            "RolledOut",
            ROLLOUT_FAILED,
            "replica 0 of revision 8c1f failed",
        ),
    );
    worst.assignments = vec![assignment(0, A), assignment(1, C)];
    let before = DeeployJobStatus {
        assignments: vec![assignment(0, A), assignment(1, B)],
        ..DeeployJobStatus::default()
    };
    let all = story(&before, &worst);
    assert_eq!(
        reasons(&all),
        [
            "Funded",
            "Scheduled",
            "Moved",
            "Deployed",
            "Validated",
            "RolledBack",
            "Degraded"
        ]
    );
    let (events, _) = next_chapter(None, Some(&before), Some("uid"), &worst);
    assert_eq!(events.len(), MAX_EVENTS);
    assert_eq!(
        reasons(&events),
        ["Funded", "Scheduled", "Moved", "RolledBack", "Degraded"]
    );
}

/// The phases the CRD of `kind` defines (`status.phase`'s enum), none for kinds without one.
fn phases(kind: &str) -> Vec<String> {
    let crd = r1_crds::crdgen::definitions()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .unwrap();
    let crd = serde_json::to_value(&crd).unwrap();
    let phase = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        ["phase"];
    phase["enum"]
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The branch of the health check for `kind`: from its `obj.kind == "Kind"` test to the next.
fn branch(kind: &str) -> &'static str {
    let start = format!("obj.kind == \"{kind}\"");
    let at = HEALTH_LUA
        .find(&start)
        .unwrap_or_else(|| panic!("the health check has no branch for {kind}"));
    let rest = &HEALTH_LUA[at + start.len()..];
    &rest[..rest.find("obj.kind ==").unwrap_or(rest.len())]
}

#[test]
fn the_health_check_maps_every_phase_of_every_kind() {
    assert_eq!(phases("DeeployJob").len(), 8, "JobPhase has eight phases");
    for kind in r1_crds::manifest::Kind::ALL {
        let branch = branch(kind.as_str());
        for phase in phases(kind.as_str()) {
            assert!(
                branch.contains(&format!("\"{phase}\"")),
                "the Argo CD health check does not map {kind} phase {phase}"
            );
        }
    }
    for status in ["Healthy", "Progressing", "Degraded", "Suspended", "Unknown"] {
        assert!(HEALTH_LUA.contains(&format!("\"{status}\"")), "{status}");
    }
    for condition in ["Valid", "Degraded", "RolledOut", ROLLOUT_FAILED] {
        assert!(
            HEALTH_LUA.contains(&format!("\"{condition}\"")),
            "{condition}"
        );
    }
}

#[test]
fn the_readme_shows_the_health_check_as_it_is() {
    let readme = include_str!("../../../../README.md");
    let indented: Vec<String> = HEALTH_LUA
        .lines()
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("    {line}")
            }
        })
        .collect();
    let indented = indented.join("\n");
    assert!(
        readme.contains(&indented),
        "README.md must show controller/src/kube/health.lua under the argocd-cm key, indented by four spaces"
    );
    for kind in r1_crds::manifest::Kind::ALL {
        let key = format!(
            "resource.customizations.health.deeploy.ratio1.ai_{}",
            kind.as_str()
        );
        assert!(readme.contains(&key), "README.md lacks {key}");
    }
}
