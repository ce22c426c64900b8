//! Refusals of the fake API server, answered as Kubernetes `Status` objects the way the real
//! server words them, so clients (kube's `Error::Api`) see the same codes and reasons.

use serde_json::{Value, json};

use super::resources::Resource;

/// A request the fake API server refused: the `code`, `reason` and `message` of the `Status`
/// it answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// The HTTP status code.
    pub code: u16,
    /// The machine-readable reason, e.g. `NotFound`, `AlreadyExists`, `Conflict`.
    pub reason: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    /// The object `name` of `resource` does not exist.
    pub(crate) fn not_found(resource: &Resource, name: &str) -> Self {
        let message = format!("{} \"{name}\" not found", resource.qualified());
        Self::new(404, "NotFound", message)
    }

    /// No resource is served at the requested path.
    pub(crate) fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// The object `name` of `resource` exists already.
    pub(crate) fn already_exists(resource: &Resource, name: &str) -> Self {
        let message = format!("{} \"{name}\" already exists", resource.qualified());
        Self::new(409, "AlreadyExists", message)
    }

    /// A precondition (resource version, uid) does not hold for the object `name`.
    pub(crate) fn conflict(resource: &Resource, name: &str, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            resource.qualified()
        );
        Self::new(409, "Conflict", message)
    }

    /// The request is malformed.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// The object `name` of `resource` would be invalid.
    pub(crate) fn invalid(resource: &Resource, name: &str, why: &str) -> Self {
        let message = format!("{} \"{name}\" is invalid: {why}", resource.qualified());
        Self::new(422, "Invalid", message)
    }

    /// The request's method is not served at its path.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// The body's media type is not one the server accepts for this request.
    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        let message = format!(
            "the body of the request was in an unknown format ({content_type}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        );
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// The body is larger than the server reads.
    pub(crate) fn too_large(limit: usize) -> Self {
        let message = format!("the request body could not be read within {limit} bytes");
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// The request carries no valid bearer token.
    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// A watch asked for changes from a resource version older than the kept history.
    pub(crate) fn expired(since: u64, oldest: u64) -> Self {
        let message = format!("too old resource version: {since} ({oldest})");
        Self::new(410, "Expired", message)
    }

    /// The `Status` object the server answers with.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}
