//! Reading and writing the parts of a Kubernetes object (a JSON object) the server looks after:
//! its metadata, finalizers, owner references, and the fields the server alone sets.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::resources::Resource;

/// Metadata fields only the server sets; whatever a client sends for them is overwritten.
const SYSTEM_FIELDS: [&str; 7] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
];

/// Now, as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A fresh random (version 4) UUID.
pub fn new_uid() -> String {
    let bits: u128 = rand::random();
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Checks that `value` is an object whose `metadata`, if any, is an object, so the server may
/// index into both; an absent `metadata` is added empty.
pub fn check_shape(value: &mut Value) -> Result<(), ApiError> {
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    };
    match object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(_) => Ok(()),
        _ => Err(ApiError::bad_request("metadata must be an object")),
    }
}

/// A string field of the object's metadata.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// Whether the object is being deleted (it has a deletion timestamp).
pub fn is_deleting(object: &Value) -> bool {
    object
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
}

/// The object's finalizers.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Replaces the finalizers of `object` (checked with [`check_shape`]); an empty list removes
/// the field, as the server does.
pub fn set_finalizers(object: &mut Value, list: Vec<String>) {
    if list.is_empty() {
        remove_meta(object, "finalizers");
    } else {
        object["metadata"]["finalizers"] = json!(list);
    }
}

/// The uids of the object's owners, each with whether it blocks the owner's foreground
/// deletion.
pub fn owners(object: &Value) -> Vec<(String, bool)> {
    object
        .get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|r| {
                    let uid = r.get("uid")?.as_str()?.to_owned();
                    let blocks = r.get("blockOwnerDeletion").and_then(Value::as_bool);
                    Some((uid, blocks == Some(true)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the owner reference to `uid` from `object` (checked with [`check_shape`]).
pub fn drop_owner(object: &mut Value, uid: &str) {
    if let Some(list) = object["metadata"]
        .get_mut("ownerReferences")
        .and_then(Value::as_array_mut)
    {
        list.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        if list.is_empty() {
            remove_meta(object, "ownerReferences");
        }
    }
}

/// Removes a metadata field of `object` (checked with [`check_shape`]).
pub fn remove_meta(object: &mut Value, field: &str) {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        metadata.remove(field);
    }
}

/// Removes every server-set metadata field from `object` (checked with [`check_shape`]).
pub fn strip_system_fields(object: &mut Value) {
    for field in SYSTEM_FIELDS.into_iter().chain(["managedFields"]) {
        remove_meta(object, field);
    }
}

/// Overwrites the server-set metadata fields, name, namespace and type of `object` (checked with
/// [`check_shape`]) with those of `live`.
pub fn keep_system_fields(live: &Value, object: &mut Value) {
    strip_system_fields(object);
    for field in SYSTEM_FIELDS.into_iter().chain(["name", "namespace"]) {
        if let Some(value) = live.get("metadata").and_then(|m| m.get(field)) {
            object["metadata"][field] = value.clone();
        }
    }
    for field in ["apiVersion", "kind"] {
        if let Some(value) = live.get(field) {
            object[field] = value.clone();
        }
    }
}

/// Checks that `apiVersion` and `kind`, when given, are `resource`'s (both are required when
/// `required`).
pub fn check_type(resource: &Resource, object: &Value, required: bool) -> Result<(), ApiError> {
    let expected = [
        ("apiVersion", resource.api_version()),
        ("kind", resource.kind.clone()),
    ];
    for (field, want) in expected {
        match object.get(field).and_then(Value::as_str) {
            Some(got) if got != want => {
                return Err(ApiError::bad_request(format!(
                    "{field} {got:?} does not match the request's {want:?}"
                )));
            }
            None if required => {
                return Err(ApiError::bad_request(format!("{field} must be set")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks that the name and namespace in `object`, when given, are the request's.
pub fn check_identity(object: &Value, namespace: &str, name: Option<&str>) -> Result<(), ApiError> {
    if let Some(given) = meta_str(object, "namespace")
        && !given.is_empty()
        && given != namespace
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({given}) does not match the namespace sent on the request ({namespace})"
        )));
    }
    if let (Some(given), Some(name)) = (meta_str(object, "name"), name)
        && given != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// Whether anything outside `metadata` and `status` differs: what counts as a new generation.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let content = |object: &Value| -> Map<String, Value> {
        let mut map = object.as_object().cloned().unwrap_or_default();
        map.remove("metadata");
        map.remove("status");
        map
    };
    content(old) != content(new)
}

/// What the server does to every object of `resource` it stores: a Secret's `stringData` is
/// base64-encoded into `data` and its `type` defaults to `Opaque`.
pub fn normalize(resource: &Resource, object: &mut Value) -> Result<(), ApiError> {
    if !resource.is_secret() {
        return Ok(());
    }
    for field in ["data", "stringData"] {
        if object.get(field).is_some_and(|d| !d.is_object()) {
            return Err(ApiError::bad_request(format!(
                "a Secret's {field} must be an object"
            )));
        }
    }
    if let Some(Value::Object(plain)) = object.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        for (key, value) in plain {
            let text = value.as_str().unwrap_or_default().to_owned();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            object["data"][key] = Value::String(encoded);
        }
    }
    if object.get("type").is_none() {
        object["type"] = json!("Opaque");
    }
    Ok(())
}
