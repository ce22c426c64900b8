//! Label and field selectors, in the subset the fake API server understands: equality-based
//! label requirements (`k=v`, `k==v`, `k!=v`, `k`, `!k`) and field requirements on
//! `metadata.name` and `metadata.namespace`. Set-based label requirements (`in`, `notin`) and
//! other fields are refused with 400.

use serde_json::Value;

use super::error::ApiError;

/// What a requirement looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A label.
    Label(String),
    /// A metadata field (`name` or `namespace`).
    Field(&'static str),
}

/// What a requirement asks of its target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Equals(String),
    NotEquals(String),
    Exists,
    Absent,
}

/// Every requirement of a request's `labelSelector` and `fieldSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<(Target, Test)>,
}

impl Selector {
    /// Parses the request's selectors (either may be missing or empty).
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in terms(labels) {
            if term.contains('(') || term.contains(' ') {
                return Err(ApiError::bad_request(format!(
                    "unsupported label selector {term:?}: only equality-based requirements are served"
                )));
            }
            let requirement = match split(term) {
                Some((key, test)) => (Target::Label(key.to_owned()), test),
                None => match term.strip_prefix('!') {
                    Some(key) => (Target::Label(key.to_owned()), Test::Absent),
                    None => (Target::Label(term.to_owned()), Test::Exists),
                },
            };
            requirements.push(requirement);
        }
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
            requirements.push((Target::Field(field), test));
        }
        Ok(Self { requirements })
    }

    /// Whether `object` meets every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let metadata = object.get("metadata");
        self.requirements.iter().all(|(target, test)| {
            let value = match target {
                Target::Label(key) => metadata
                    .and_then(|m| m.get("labels"))
                    .and_then(|l| l.get(key)),
                Target::Field(field) => metadata.and_then(|m| m.get(*field)),
            }
            .and_then(Value::as_str);
            match test {
                Test::Equals(want) => value == Some(want.as_str()),
                Test::NotEquals(want) => value != Some(want.as_str()),
                Test::Exists => value.is_some(),
                Test::Absent => value.is_none(),
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
