//! Label selectors, as `kubectl get -l` writes them: a comma-separated list of requirements,
//! each `key=value` (or `key==value`), `key!=value`, `key` (the label is set) or `!key` (it is
//! not), all of which an object's labels must meet. The set-based forms (`key in (a,b)`) are
//! refused with a clear error rather than read as something else.
//!
//! Blanks around a requirement's key and value are ignored, as Kubernetes' parser does.
//!
//! A list filtered by a selector sends only the objects a client watches (a CSP's burst of
//! jobs among a thousand running ones) instead of every object of the namespace.

use std::collections::BTreeMap;

use crate::names::{label_key, label_value};

/// Longest selector accepted, in bytes: a query parameter from anyone holding a key.
pub const MAX_SELECTOR_BYTES: usize = 1024;

/// Most requirements in one selector.
pub const MAX_REQUIREMENTS: usize = 32;

/// Why a selector cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Longer than [`MAX_SELECTOR_BYTES`].
    #[error("a label selector is at most {MAX_SELECTOR_BYTES} bytes (this one has {0})")]
    TooLong(usize),
    /// More than [`MAX_REQUIREMENTS`] requirements.
    #[error("a label selector has at most {MAX_REQUIREMENTS} requirements (this one has {0})")]
    TooMany(usize),
    /// A requirement that is not one of the supported forms, with the reason.
    #[error("label selector requirement {requirement:?}: {reason}")]
    Requirement {
        /// The requirement as written.
        requirement: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// One condition on an object's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// `key=value`: the label is set to `value`.
    Equals(String, String),
    /// `key!=value`: the label is not set to `value` (or not set at all, as in Kubernetes).
    NotEquals(String, String),
    /// `key`: the label is set.
    Exists(String),
    /// `!key`: the label is not set.
    Absent(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Equals(key, value) => labels.get(key) == Some(value),
            Self::NotEquals(key, value) => labels.get(key) != Some(value),
            Self::Exists(key) => labels.contains_key(key),
            Self::Absent(key) => !labels.contains_key(key),
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        if text.contains('(') {
            return Err(
                "set-based requirements (in, notin) are not supported; use key=value, \
                        key!=value, key or !key"
                    .into(),
            );
        }
        let key = |k: &str| label_key(k.trim()).map(|()| k.trim().to_owned());
        let value = |v: &str| label_value(v.trim()).map(|()| v.trim().to_owned());
        if let Some((k, v)) = text.split_once("!=") {
            return Ok(Self::NotEquals(key(k)?, value(v)?));
        }
        if let Some((k, v)) = text.split_once("==").or_else(|| text.split_once('=')) {
            return Ok(Self::Equals(key(k)?, value(v)?));
        }
        if let Some(k) = text.strip_prefix('!') {
            return Ok(Self::Absent(key(k)?));
        }
        Ok(Self::Exists(key(text)?))
    }
}

/// Requirements an object's labels must all meet; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Reads a selector as `kubectl get -l` takes it.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        if text.len() > MAX_SELECTOR_BYTES {
            return Err(SelectorError::TooLong(text.len()));
        }
        let parts: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if parts.len() > MAX_REQUIREMENTS {
            return Err(SelectorError::TooMany(parts.len()));
        }
        let requirements = parts
            .into_iter()
            .map(|part| {
                Requirement::parse(part).map_err(|reason| SelectorError::Requirement {
                    requirement: part.to_owned(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { requirements })
    }

    /// Whether `labels` meet every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn each_form_selects_as_kubectl_does() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        let select = |s: &str| LabelSelector::parse(s).expect(s);
        for (selector, on_web, on_db) in [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app=web,tier=front", true, false),
            (" app = web ", true, false),
            ("app=web, tier", true, false),
            ("tier!=back", true, true),
        ] {
            assert_eq!(select(selector).matches(&web), on_web, "{selector} on web");
            assert_eq!(select(selector).matches(&db), on_db, "{selector} on db");
        }
    }

    #[test]
    fn what_it_cannot_read_is_refused_with_the_requirement() {
        for (selector, says) in [
            ("app in (web,db)", "set-based"),
            ("app=we b", "label value"),
            ("a pp=web", "label key"),
            ("=web", "label key"),
            ("app=-web", "label value"),
            ("!", "label key"),
            ("app=web=x", "label value"),
        ] {
            let error = LabelSelector::parse(selector)
                .expect_err(selector)
                .to_string();
            assert!(error.contains(says), "{selector}: {error}");
        }
        let long = "a=b,".repeat(MAX_SELECTOR_BYTES / 4 + 1);
        assert!(matches!(
            LabelSelector::parse(&long),
            Err(SelectorError::TooLong(_))
        ));
        let many = vec!["a"; MAX_REQUIREMENTS + 1].join(",");
        assert_eq!(
            LabelSelector::parse(&many),
            Err(SelectorError::TooMany(MAX_REQUIREMENTS + 1))
        );
    }

    proptest! {
        #[test]
        fn an_object_selected_by_its_own_labels_and_refused_by_another_value(
            own in prop::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{1,8}", 1..6),
        ) {
            let exact: Vec<String> = own.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let selector = LabelSelector::parse(&exact.join(",")).expect("own labels");
            prop_assert!(selector.matches(&own));
            let (key, value) = own.iter().next().expect("one label");
            let other = LabelSelector::parse(&format!("{key}={value}x")).expect("other value");
            prop_assert!(!other.matches(&own));
            let negated = LabelSelector::parse(&format!("{key}!={value}")).expect("negated");
            prop_assert!(!negated.matches(&own));
        }
    }
}
