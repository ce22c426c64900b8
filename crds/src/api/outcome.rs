//! What an apply or a delete did to each object, and every reason an applied set was refused:
//! the results the oracle's store returns and its HTTP API sends on unchanged, so `r1ctl` reads
//! exactly what the store decided.

use serde::{Deserialize, Serialize};

use crate::field::FieldError;
use crate::manifest::Kind;

/// What an apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The object did not exist.
    Created,
    /// The spec, labels or annotations changed.
    Configured,
    /// Applied exactly as stored; nothing was written.
    Unchanged,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
        })
    }
}

/// One object of an applied set and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The kind.
    #[serde(with = "crate::api::object::kind_name")]
    pub kind: Kind,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// Created, configured or unchanged.
    pub action: Action,
    /// The object's generation afterwards.
    pub generation: i64,
    /// The object's resource version afterwards.
    pub resource_version: u64,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeleteAction {
    /// Deletion is now requested; the reconciler finishes it.
    Requested,
    /// Deletion had been requested before.
    AlreadyRequested,
}

/// The outcome of a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// The kind.
    #[serde(with = "crate::api::object::kind_name")]
    pub kind: Kind,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// Requested now or before.
    pub action: DeleteAction,
    /// The object's resource version afterwards.
    pub resource_version: u64,
}

/// One problem with an applied set, located as precisely as it could be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// 1-based document in the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// `Kind namespace/name`, when the document got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The field's YAML path, e.g. `spec.resources.memory` (empty for the whole document).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Rejection {
    /// The rejection of document `document` (resource `resource`) for `error`.
    pub fn new(document: Option<usize>, resource: Option<String>, error: FieldError) -> Self {
        Self {
            document,
            resource,
            path: error.path,
            message: error.message,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.resource, self.document) {
            (Some(resource), _) => write!(f, "{resource}: ")?,
            (None, Some(document)) => write!(f, "document {document}: ")?,
            (None, None) => {}
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// `1 problem`, `3 problems`: how the store's refusals and `r1ctl` count what they report.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_display_with_resource_and_path() {
        let r = Rejection {
            document: Some(2),
            resource: Some("DeeployJob default/x".into()),
            path: "spec.image".into(),
            message: "is required".into(),
        };
        assert_eq!(
            r.to_string(),
            "DeeployJob default/x: spec.image: is required"
        );
        let r = Rejection {
            resource: None,
            path: String::new(),
            ..r
        };
        assert_eq!(r.to_string(), "document 2: is required");
    }

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(1, "error"), "1 error");
        assert_eq!(count(0, "error"), "0 errors");
        assert_eq!(count(3, "problem"), "3 problems");
    }
}
