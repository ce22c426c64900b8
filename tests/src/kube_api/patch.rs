//! The two ways of merging a client's partial object into a live one: JSON merge patch
//! (RFC 7386) and an approximation of server-side apply.
//!
//! Server-side apply here does not track field ownership across managers. It remembers the
//! configuration each field manager last applied to each object (and subresource) and:
//! * removes the fields that manager applied last time and leaves out now (emptied parent objects
//!   go too, unless the new configuration names them);
//! * merges the new configuration in: objects field by field, `metadata.ownerReferences` by
//!   `uid`, `metadata.finalizers` as a set, every other list replaced whole (the r1 CRDs declare
//!   no list types, so their lists are atomic, as Kubernetes treats them);
//! * never reports a conflict with another manager (`force` changes nothing).

use std::collections::BTreeSet;

use serde_json::Value;

/// One step of a path into an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// A field of an object.
    Field(String),
    /// The element of a keyed list whose `key` field is `id`.
    Keyed { key: &'static str, id: String },
    /// The element of a set list (of strings).
    Item(String),
}

/// How the server merges a list.
enum ListType {
    /// Replaced whole.
    Atomic,
    /// Elements merged by the value of this field.
    Keyed(&'static str),
    /// Elements are a set of strings.
    Set,
}

/// The list type of the list at `path`.
fn list_type(path: &[Step]) -> ListType {
    let field = |name: &str| Step::Field(name.to_owned());
    if path == [field("metadata"), field("ownerReferences")] {
        ListType::Keyed("uid")
    } else if path == [field("metadata"), field("finalizers")] {
        ListType::Set
    } else {
        ListType::Atomic
    }
}

/// Applies the JSON merge patch `patch` to `target` (RFC 7386).
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in fields {
            if value.is_null() {
                map.remove(key);
            } else {
                merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Applies `config` to `live` on behalf of a field manager whose previous configuration for
/// this object was `previous` (see the module documentation).
pub fn apply(live: &mut Value, config: &Value, previous: Option<&Value>) {
    if let Some(previous) = previous {
        let before = leaves(previous);
        let now = leaves(config);
        for path in before.difference(&now) {
            remove(live, path, Some(config));
        }
    }
    overlay(live, config, &mut Vec::new());
}

/// The paths of every leaf of `value`: scalars, empty objects, atomic lists, and the elements
/// of keyed and set lists.
fn leaves(value: &Value) -> BTreeSet<Vec<Step>> {
    let mut out = BTreeSet::new();
    collect_leaves(value, &mut Vec::new(), &mut out);
    out
}

fn collect_leaves(value: &Value, path: &mut Vec<Step>, out: &mut BTreeSet<Vec<Step>>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                path.push(Step::Field(key.clone()));
                collect_leaves(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => match list_type(path) {
            ListType::Atomic => {
                out.insert(path.clone());
            }
            ListType::Keyed(key) => {
                for id in items
                    .iter()
                    .filter_map(|item| item.get(key).and_then(Value::as_str))
                {
                    let mut element = path.clone();
                    element.push(Step::Keyed {
                        key,
                        id: id.to_owned(),
                    });
                    out.insert(element);
                }
            }
            ListType::Set => {
                for item in items.iter().filter_map(Value::as_str) {
                    let mut element = path.clone();
                    element.push(Step::Item(item.to_owned()));
                    out.insert(element);
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// Removes the leaf at `path` from `value`, and the objects and lists it leaves empty unless
/// `config` (the part of the new configuration at the same place) names them.
fn remove(value: &mut Value, path: &[Step], config: Option<&Value>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (first, value) {
        (Step::Field(name), Value::Object(map)) => {
            let wanted = config.and_then(|c| c.get(name));
            if rest.is_empty() {
                map.remove(name);
            } else if let Some(child) = map.get_mut(name) {
                remove(child, rest, wanted);
                let emptied = match child {
                    Value::Object(m) => m.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                };
                if emptied && wanted.is_none() {
                    map.remove(name);
                }
            }
        }
        (Step::Keyed { key, id }, Value::Array(items)) => {
            items.retain(|item| item.get(*key).and_then(Value::as_str) != Some(id));
        }
        (Step::Item(text), Value::Array(items)) => items.retain(|item| item.as_str() != Some(text)),
        _ => {}
    }
}

/// Merges `config` into `live` as apply does: objects by field, keyed and set lists by element,
/// everything else replaced; a `null` removes the field.
fn overlay(live: &mut Value, config: &Value, path: &mut Vec<Step>) {
    match (live, config) {
        (Value::Object(live), Value::Object(config)) => {
            for (key, value) in config {
                if value.is_null() {
                    live.remove(key);
                    continue;
                }
                path.push(Step::Field(key.clone()));
                overlay(live.entry(key.clone()).or_insert(Value::Null), value, path);
                path.pop();
            }
        }
        (Value::Array(live), Value::Array(config)) => match list_type(path) {
            ListType::Atomic => live.clone_from(config),
            ListType::Keyed(key) => {
                for item in config {
                    let id = item.get(key);
                    match live.iter_mut().find(|l| id.is_some() && l.get(key) == id) {
                        Some(slot) => slot.clone_from(item),
                        None => live.push(item.clone()),
                    }
                }
            }
            ListType::Set => {
                for item in config {
                    if !live.contains(item) {
                        live.push(item.clone());
                    }
                }
            }
        },
        (live, config) => live.clone_from(config),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1});
        merge(
            &mut target,
            &json!({"a": {"b": null, "x": 3}, "d": [3], "e": null}),
        );
        assert_eq!(target, json!({"a": {"c": 2, "x": 3}, "d": [3]}));
    }

    #[test]
    fn apply_removes_what_the_manager_dropped_and_keeps_the_rest() {
        let mut live = json!({
            "status": {"phase": "Running", "replicas": 2, "other": {"keep": true}},
            "metadata": {"finalizers": ["x"], "ownerReferences": [{"uid": "a", "name": "a"}]},
        });
        let first = json!({"status": {"phase": "Running", "replicas": 2, "nested": {"n": 1}}});
        apply(&mut live, &first, None);
        let second = json!({
            "status": {"phase": "Failed"},
            "metadata": {"finalizers": ["y"], "ownerReferences": [{"uid": "b", "name": "b"}]},
        });
        apply(&mut live, &second, Some(&first));
        assert_eq!(
            live,
            json!({
                "status": {"phase": "Failed", "other": {"keep": true}},
                "metadata": {
                    "finalizers": ["x", "y"],
                    "ownerReferences": [{"uid": "a", "name": "a"}, {"uid": "b", "name": "b"}],
                },
            })
        );
        let third = json!({"metadata": {"finalizers": ["x"]}});
        apply(&mut live, &third, Some(&second));
        assert_eq!(live["metadata"]["finalizers"], json!(["x"]));
        assert_eq!(
            live["metadata"]["ownerReferences"],
            json!([{"uid": "a", "name": "a"}])
        );
        assert!(live.get("status").is_some_and(|s| s.get("phase").is_none()));
    }
}
