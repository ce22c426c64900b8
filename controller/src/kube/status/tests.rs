#![allow(clippy::unwrap_used)] // test helpers and fixtures

use serde_json::json;

use super::*;

fn rejected() -> Mirror {
    Mirror::Rejected {
        reason: "Invalid",
        problems: vec![
            "spec.image: is required".into(),
            "spec.replicas: too many".into(),
        ],
        shows_store: true,
    }
}

#[test]
fn the_valid_condition_says_what_mirroring_came_to() {
    let accepted = valid_condition(&Mirror::Accepted, 3, None, "T1");
    assert_eq!(accepted.type_, VALID);
    assert_eq!(accepted.status, ConditionStatus::True);
    assert_eq!(accepted.reason, "Accepted");
    assert_eq!(accepted.observed_generation, Some(3));
    assert_eq!(accepted.last_transition_time, "T1");

    let invalid = valid_condition(&rejected(), 4, Some(&accepted), "T2");
    assert_eq!(invalid.status, ConditionStatus::False);
    assert_eq!(invalid.reason, "Invalid");
    assert_eq!(
        invalid.message,
        "spec.image: is required; spec.replicas: too many"
    );
    assert_eq!(invalid.last_transition_time, "T2");

    let waiting = Mirror::Waiting {
        reason: "WaitingForOwner",
        message: "no owner".into(),
    };
    let waiting = valid_condition(&waiting, 1, None, "T3");
    assert_eq!(waiting.status, ConditionStatus::Unknown);
    assert_eq!(waiting.message, "no owner");
}

#[test]
fn the_transition_time_stays_while_the_status_does() {
    let first = valid_condition(&rejected(), 2, None, "T1");
    let again = valid_condition(
        &Mirror::Rejected {
            reason: "Invalid",
            problems: vec!["spec.image: other".into()],
            shows_store: true,
        },
        3,
        Some(&first),
        "T2",
    );
    assert_eq!(again.last_transition_time, "T1");
    assert_eq!(again.observed_generation, Some(3));
}

#[test]
fn conditions_are_read_by_type() {
    let status = json!({"conditions": [
        {"type": "Funded", "status": "True", "reason": "Locked", "lastTransitionTime": "T0"},
        {"type": "Valid", "status": "False", "reason": "Invalid", "message": "m", "lastTransitionTime": "T1"},
    ]});
    let valid = condition(Some(&status), VALID).unwrap();
    assert_eq!(valid.message, "m");
    assert_eq!(condition(Some(&status), "Running"), None);
    assert_eq!(condition(None, VALID), None);
    assert_eq!(condition(Some(&json!({"conditions": 3})), VALID), None);
}

#[test]
fn store_generations_map_to_resource_generations() {
    let same = Generations { store: 2, kube: 2 };
    assert_eq!(kube_generation(2, same), 2);
    assert_eq!(kube_generation(1, same), 1);
    let ahead = Generations { store: 2, kube: 5 };
    assert_eq!(kube_generation(2, ahead), 5);
    assert_eq!(kube_generation(1, ahead), 4);
    assert_eq!(kube_generation(3, ahead), 5, "never past the head");
    assert_eq!(kube_generation(-10, Generations { store: 3, kube: 1 }), 0);
}

#[test]
fn the_target_status_is_the_store_status_with_the_valid_condition() {
    let valid = valid_condition(&Mirror::Accepted, 5, None, "T9");
    let store = json!({
        "phase": "Running",
        "observedGeneration": 2,
        "conditions": [
            {"type": "Funded", "status": "True", "reason": "Locked", "lastTransitionTime": "T0", "observedGeneration": 1},
            {"type": "Valid", "status": "False", "reason": "Stale", "lastTransitionTime": "T0"},
        ],
    });
    let target =
        target_status(Some((&store, Generations { store: 2, kube: 5 })), &[&valid]).unwrap();
    assert_eq!(target["phase"], "Running");
    assert_eq!(target["observedGeneration"], 5);
    let conditions = target["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[0]["type"], "Funded");
    assert_eq!(conditions[0]["observedGeneration"], 4);
    assert_eq!(conditions[0]["lastTransitionTime"], "T0");
    assert_eq!(conditions[1], serde_json::to_value(&valid).unwrap());

    let alone = target_status(None, &[&valid]).unwrap();
    assert_eq!(
        alone,
        json!({"conditions": [serde_json::to_value(&valid).unwrap()]})
    );
    let unwritten = target_status(
        Some((&Value::Null, Generations { store: 1, kube: 1 })),
        &[&valid],
    )
    .unwrap();
    assert_eq!(unwritten, alone);
}
