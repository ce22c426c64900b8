//! The HTTP side: one handler that checks the bearer token, routes the Kubernetes REST paths
//! (`/api/v1/…` and `/apis/GROUP/VERSION/…`, namespaced or across namespaces, with the `/status`
//! subresource) to the store, streams watches, answers refusals as `Status` objects and logs
//! every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::{self, Resource};
use super::selector::Selector;
use super::shared::{RequestRecord, Shared};
use super::store::{DeleteOptions, Deleted, Key, Part, Patch, Propagation};
use super::watch::{self, MAX_TIMEOUT, WatchRequest};

/// Largest request body the server reads.
pub const MAX_BODY: usize = 4 << 20;

/// The server's routes: every request goes to one handler.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What a path names.
#[derive(Debug)]
struct Target {
    resource: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
    part: Part,
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let record = RequestRecord {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or_default().to_owned(),
        content_type: request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        status: 0,
    };
    let response = serve(&shared, request).await.unwrap_or_else(|error| {
        let mut response = reply(error.code, &error.status());
        if error.code == 413 {
            // The rest of the body is not read: the connection cannot serve another request.
            let close = header::HeaderValue::from_static("close");
            response.headers_mut().insert(header::CONNECTION, close);
        }
        response
    });
    shared.log(RequestRecord {
        status: response.status().as_u16(),
        ..record
    });
    response
}

/// Answers one request.
async fn serve(shared: &Arc<Shared>, request: Request) -> Result<Response, ApiError> {
    let expected = format!("Bearer {}", shared.token);
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        return Err(ApiError::unauthorized());
    }
    let target = parse_path(request.uri().path())?;
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if query.contains_key("dryRun") {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the fake API server",
        ));
    }
    let method = request.method().clone();
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large(MAX_BODY))?;
    let key = |name: &str| -> Result<Key, ApiError> {
        let namespace = target
            .namespace
            .clone()
            .ok_or_else(ApiError::method_not_allowed)?;
        Ok(Key {
            resource: target.resource,
            namespace,
            name: name.to_owned(),
        })
    };
    match (method, target.name.as_deref()) {
        (Method::GET, None) if is_true(query.get("watch")) => start_watch(shared, &target, &query),
        (Method::GET, None) => list(shared, &target, &query),
        (Method::GET, Some(name)) => {
            let object = shared.read(|store| store.get(&key(name)?))?;
            Ok(reply(200, &object))
        }
        (Method::POST, None) => {
            let namespace = target
                .namespace
                .clone()
                .ok_or_else(ApiError::method_not_allowed)?;
            let body = json_body(&body)?;
            let created = shared.write(|store| store.create(target.resource, &namespace, body))?;
            Ok(reply(201, &created))
        }
        (Method::PUT, Some(name)) => {
            let key = key(name)?;
            let body = json_body(&body)?;
            let replaced = shared.write(|store| store.replace(&key, target.part, body))?;
            Ok(reply(200, &replaced))
        }
        (Method::PATCH, Some(name)) => {
            let key = key(name)?;
            let patch = parse_patch(&content_type, &body, &query)?;
            let patched = shared.write(|store| store.patch(&key, target.part, patch))?;
            Ok(reply(200, &patched))
        }
        (Method::DELETE, Some(name)) if target.part == Part::Main => {
            let key = key(name)?;
            let options = delete_options(&body, &query)?;
            match shared.write(|store| store.delete(&key, &options))? {
                Deleted::Gone(object) => Ok(reply(200, &object)),
                Deleted::Pending(object) => Ok(reply(202, &object)),
            }
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Parses `/api/v1/…` or `/apis/GROUP/VERSION/…` into what it names.
fn parse_path(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::no_route()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => {
            (Some((*namespace).to_owned()), rest)
        }
        _ => (None, rest),
    };
    let (plural, name, part) = match rest {
        [plural] => (*plural, None, Part::Main),
        [plural, name] => (*plural, Some(*name), Part::Main),
        [plural, name, "status"] => (*plural, Some(*name), Part::Status),
        _ => return Err(ApiError::no_route()),
    };
    let resource = resources::by_path(group, version, plural).ok_or_else(ApiError::no_route)?;
    if part == Part::Status && !resource.custom {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        resource,
        namespace,
        name: name.map(str::to_owned),
        part,
    })
}

/// A `List` of the target's objects, with the current resource version.
fn list(
    shared: &Shared,
    target: &Target,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let selector = selector(query)?;
    let (items, revision) = shared.read(|store| {
        let items: Vec<Value> = store
            .list(target.resource, target.namespace.as_deref())
            .into_iter()
            .filter(|object| selector.matches(object))
            .collect();
        (items, store.revision())
    });
    let list = json!({
        "apiVersion": target.resource.api_version(),
        "kind": format!("{}List", target.resource.kind),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    });
    Ok(reply(200, &list))
}

/// Starts a watch of the target's objects.
fn start_watch(
    shared: &Arc<Shared>,
    target: &Target,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let since = match query.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}")))?,
        ),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map_or(MAX_TIMEOUT, |t| Duration::from_secs(t).min(MAX_TIMEOUT));
    let request = WatchRequest {
        resource: target.resource,
        namespace: target.namespace.clone(),
        selector: selector(query)?,
        since,
        bookmarks: is_true(query.get("allowWatchBookmarks")),
        initial_events: is_true(query.get("sendInitialEvents")),
        timeout,
    };
    let body = Body::from_stream(watch::stream(Arc::clone(shared), request));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The request's label and field selectors.
fn selector(query: &HashMap<String, String>) -> Result<Selector, ApiError> {
    Selector::parse(
        query.get("labelSelector").map(String::as_str),
        query.get("fieldSelector").map(String::as_str),
    )
}

/// Whether a boolean query parameter is set.
fn is_true(value: Option<&String>) -> bool {
    matches!(value.map(String::as_str), Some("true" | "1"))
}

/// A JSON request body.
fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))
}

/// The patch of a PATCH request, by its content type.
fn parse_patch(
    content_type: &str,
    body: &[u8],
    query: &HashMap<String, String>,
) -> Result<Patch, ApiError> {
    match content_type {
        "application/merge-patch+json" => Ok(Patch::Merge(json_body(body)?)),
        "application/json-patch+json" => serde_json::from_slice(body)
            .map(Patch::Json)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}"))),
        "application/apply-patch+yaml" => {
            let manager = query
                .get("fieldManager")
                .filter(|m| !m.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request("PATCH with apply must specify a fieldManager")
                })?;
            let config = serde_yaml::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the apply configuration is not YAML: {e}"))
            })?;
            Ok(Patch::Apply {
                config,
                manager: manager.clone(),
            })
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// The delete options of a DELETE request, from its body (`DeleteOptions`) or its query.
fn delete_options(body: &[u8], query: &HashMap<String, String>) -> Result<DeleteOptions, ApiError> {
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        json_body(body)?
    };
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let policy =
        text(options.get("propagationPolicy")).or_else(|| query.get("propagationPolicy").cloned());
    let orphan = options.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let propagation = match policy.as_deref() {
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some("Background") => Propagation::Background,
        None if orphan => Propagation::Orphan,
        None => Propagation::Background,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown propagationPolicy {other:?}"
            )));
        }
    };
    let preconditions = options.get("preconditions");
    Ok(DeleteOptions {
        propagation,
        uid: text(preconditions.and_then(|p| p.get("uid"))),
        resource_version: text(preconditions.and_then(|p| p.get("resourceVersion"))),
    })
}

/// A JSON response.
fn reply(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
