//! Store → cluster: the status the oracle's loops wrote into the store, shown on the custom
//! resource with the adapter's own `Valid` condition, written by server-side apply on the status
//! subresource as field manager `r1-oracle`, and only when it differs from what the resource
//! shows.
//!
//! The store counts generations itself (a rejected edit does not reach it), so the store's
//! `observedGeneration`s are translated to the resource's: the store's current generation is the
//! resource's current one when the resource is mirrored, and older store generations map to
//! correspondingly older resource generations, so "observed < generation" keeps its meaning.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use r1_crds::common::{Condition, ConditionStatus};
use serde_json::{Value, json};

use crate::kube::mirror::Mirror;
use crate::kube::resource::FIELD_MANAGER;

/// Type of the condition the adapter reports: whether the resource was accepted into the store.
pub const VALID: &str = "Valid";

/// The resource's `Valid` condition after `mirror`; the transition time of `previous` is kept
/// while the condition's status stays the same.
pub fn valid_condition(
    mirror: &Mirror,
    generation: i64,
    previous: Option<&Condition>,
    now: &str,
) -> Condition {
    let (status, reason, message) = match mirror {
        Mirror::Accepted => (
            ConditionStatus::True,
            "Accepted",
            "the oracle holds this generation".to_owned(),
        ),
        Mirror::Rejected {
            reason, problems, ..
        } => (ConditionStatus::False, *reason, problems.join("; ")),
        Mirror::Waiting { reason, message } => (ConditionStatus::Unknown, *reason, message.clone()),
    };
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => now.to_owned(),
    };
    Condition {
        type_: VALID.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        last_transition_time,
        observed_generation: Some(generation),
    }
}

/// The condition of type `type_` in a status, if there is a readable one.
pub fn condition(status: Option<&Value>, type_: &str) -> Option<Condition> {
    status?
        .get("conditions")?
        .as_array()?
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .find_map(|c| serde_json::from_value(c.clone()).ok())
}

/// How store generations relate to the resource's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generations {
    /// The store object's current generation.
    pub store: i64,
    /// The resource generation the store's current generation stands for.
    pub kube: i64,
}

/// The resource generation for a store generation `observed`: as many generations behind the
/// resource's as the store's is behind its own (never below 0).
pub fn kube_generation(observed: i64, generations: Generations) -> i64 {
    let behind = generations.store.saturating_sub(observed).max(0);
    generations.kube.saturating_sub(behind).max(0)
}

/// The status the resource should show: the store's status (when it is this resource's, with
/// generations translated) and the adapter's own conditions (`Valid`, and for a job funded
/// from the cluster `ClusterFunded`), each in place of any earlier one of its type.
pub fn target_status(
    store: Option<(&Value, Generations)>,
    own: &[&Condition],
) -> Result<Value, serde_json::Error> {
    let mut status = match store {
        Some((Value::Object(status), generations)) => {
            let mut status = Value::Object(status.clone());
            translate(&mut status, generations);
            status
        }
        _ => json!({}),
    };
    let own = own
        .iter()
        .map(|c| serde_json::to_value(c).map(|v| (c.type_.as_str(), v)))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(fields) = status.as_object_mut() else {
        return Ok(json!({ "conditions": own.into_iter().map(|(_, c)| c).collect::<Vec<_>>() }));
    };
    let conditions = fields
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    if let Some(list) = conditions.as_array_mut() {
        for (type_, condition) in own {
            list.retain(|c| c.get("type").and_then(Value::as_str) != Some(type_));
            list.push(condition);
        }
    }
    Ok(status)
}

/// Rewrites every `observedGeneration` (the status's own and its conditions') to the resource's
/// numbering.
fn translate(status: &mut Value, generations: Generations) {
    let rewrite = |holder: &mut Value| {
        if let Some(slot) = holder.get_mut("observedGeneration")
            && let Some(observed) = slot.as_i64()
        {
            *slot = kube_generation(observed, generations).into();
        }
    };
    rewrite(status);
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        conditions.iter_mut().for_each(rewrite);
    }
}

/// Writes `status` to the resource `name` by server-side apply on its status subresource.
pub async fn apply_status(
    api: &Api<DynamicObject>,
    resource: &ApiResource,
    name: &str,
    status: &Value,
) -> Result<(), kube::Error> {
    let patch = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
