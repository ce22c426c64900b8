//! Label and field selectors, in the subset the fake API server understands: the label
//! selectors r1's own API serves ([`LabelSelector`]: `k=v`, `k==v`, `k!=v`, `k`, `!k`) and field
//! requirements on `metadata.name` and `metadata.namespace`. Set-based label requirements
//! (`in`, `notin`) and other fields are refused with 400.

use std::collections::BTreeMap;

use r1_crds::api::selector::LabelSelector;
use serde_json::Value;

use super::error::ApiError;

/// What a field requirement asks of its field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Equals(String),
    NotEquals(String),
}

/// Every requirement of a request's `labelSelector` and `fieldSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: LabelSelector,
    fields: Vec<(&'static str, Test)>,
}

impl Selector {
    /// Parses the request's selectors (either may be missing or empty).
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(labels.unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unsupported label selector: {e}")))?;
        let mut field_requirements = Vec::new();
        for term in terms(fields) {
            let Some((key, test)) = split(term) else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {term:?}"
                )));
            };
            let field = match key {
                "metadata.name" => "name",
                "metadata.namespace" => "namespace",
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "field label not supported: {key}"
                    )));
                }
            };
            field_requirements.push((field, test));
        }
        Ok(Self {
            labels,
            fields: field_requirements,
        })
    }

    /// Whether `object` meets every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let metadata = object.get("metadata");
        let labels: BTreeMap<String, String> = metadata
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        self.labels.matches(&labels)
            && self.fields.iter().all(|(field, test)| {
                let value = metadata.and_then(|m| m.get(*field)).and_then(Value::as_str);
                match test {
                    Test::Equals(want) => value == Some(want.as_str()),
                    Test::NotEquals(want) => value != Some(want.as_str()),
                }
            })
    }
}

/// The comma-separated terms of a selector, trimmed, empty ones left out.
fn terms(selector: Option<&str>) -> impl Iterator<Item = &str> {
    selector
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `key!=value`, `key==value` or `key=value`.
fn split(term: &str) -> Option<(&str, Test)> {
    if let Some((key, value)) = term.split_once("!=") {
        return Some((key.trim(), Test::NotEquals(value.trim().to_owned())));
    }
    let (key, value) = term.split_once("==").or_else(|| term.split_once('='))?;
    Some((key.trim(), Test::Equals(value.trim().to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_and_existence_select() {
        let object =
            json!({"metadata": {"name": "a", "namespace": "shop", "labels": {"app": "web"}}});
        let matches = |labels: &str, fields: &str| {
            Selector::parse(Some(labels), Some(fields))
                .map(|s| s.matches(&object))
                .ok()
        };
        assert_eq!(matches("", ""), Some(true));
        assert_eq!(matches("app=web", "metadata.name=a"), Some(true));
        assert_eq!(
            matches("app==web,!tier", "metadata.namespace!=other"),
            Some(true)
        );
        assert_eq!(matches("app!=web", ""), Some(false));
        assert_eq!(matches("tier", ""), Some(false));
        assert_eq!(matches("", "metadata.name=b"), Some(false));
        assert_eq!(matches("app in (web)", ""), None);
        assert_eq!(matches("", "spec.x=1"), None);
    }
}
