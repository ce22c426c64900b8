//! Watches: a streaming response of newline-delimited JSON watch events, as the real server
//! sends them.
//!
//! A watch from resource version `""` or `"0"` (or with `sendInitialEvents=true`) first sends
//! every current object as ADDED; a watch from a later version replays the kept changes after
//! it, or sends one ERROR event with a 410 Expired `Status` (HTTP 200, as the real server does,
//! which makes kube's watcher relist) when some are no longer kept. Then it sends each change as
//! it happens, a BOOKMARK every few seconds when `allowWatchBookmarks=true`, and ends after
//! `timeoutSeconds` (at most [`MAX_TIMEOUT`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::error::ApiError;
use super::resources::Resource;
use super::selector::Selector;
use super::shared::Shared;

/// Longest a watch stays open.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// What a watch request asks for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// The watched resource type.
    pub resource: &'static Resource,
    /// The watched namespace, or all.
    pub namespace: Option<String>,
    /// Which objects.
    pub selector: Selector,
    /// The `resourceVersion` to start after; `None` for the current state.
    pub since: Option<u64>,
    /// Whether to send bookmarks.
    pub bookmarks: bool,
    /// Whether to send the current state first, ending it with an `initial-events-end`
    /// bookmark.
    pub initial_events: bool,
    /// How long the watch stays open.
    pub timeout: Duration,
}

/// A running watch.
struct Watch {
    shared: Arc<Shared>,
    request: WatchRequest,
    written: watch::Receiver<u64>,
    cursor: u64,
    first: Option<Vec<u8>>,
    deadline: Instant,
    next_bookmark: Instant,
    done: bool,
}

/// The body of a watch response.
pub fn stream(
    shared: Arc<Shared>,
    request: WatchRequest,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let mut written = shared.subscribe();
    written.mark_unchanged();
    let start = Instant::now();
    let (cursor, first) = if request.since.is_none() || request.initial_events {
        shared.read(|store| {
            let mut lines = Vec::new();
            let namespace = request.namespace.as_deref();
            for object in store.list(request.resource, namespace) {
                if request.selector.matches(&object) {
                    lines.extend(line("ADDED", &object));
                }
            }
            if request.initial_events {
                let mut mark = bookmark(request.resource, store.revision());
                mark["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                lines.extend(line("BOOKMARK", &mark));
            }
            (store.revision(), Some(lines))
        })
    } else {
        (request.since.unwrap_or_default(), None)
    };
    let watch = Watch {
        shared,
        deadline: start + request.timeout,
        next_bookmark: start + BOOKMARK_EVERY,
        request,
        written,
        cursor,
        first,
        done: false,
    };
    futures_util::stream::unfold(watch, |mut watch| async move {
        let chunk = watch.next().await?;
        Some((Ok(Bytes::from(chunk)), watch))
    })
}

impl Watch {
    /// The next chunk of events, or `None` when the watch ends.
    async fn next(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take()
            && !first.is_empty()
        {
            return Some(first);
        }
        loop {
            self.written.mark_unchanged();
            match self.poll() {
                Ok(chunk) if !chunk.is_empty() => return Some(chunk),
                Ok(_) => {}
                Err(expired) => {
                    self.done = true;
                    return Some(line("ERROR", &expired.status()));
                }
            }
            tokio::select! {
                changed = self.written.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = sleep_until(self.deadline) => return None,
                () = sleep_until(self.next_bookmark), if self.request.bookmarks => {
                    self.next_bookmark += BOOKMARK_EVERY;
                    return Some(line("BOOKMARK", &bookmark(self.request.resource, self.cursor)));
                }
            }
        }
    }

    /// The events of the changes since the cursor, which moves to the current revision.
    fn poll(&mut self) -> Result<Vec<u8>, ApiError> {
        let request = &self.request;
        let cursor = self.cursor;
        let (lines, revision) = self.shared.read(|store| {
            let mut lines = Vec::new();
            for change in store.changes_since(cursor)? {
                let key = &change.key;
                let wanted = key.resource == request.resource
                    && request
                        .namespace
                        .as_ref()
                        .is_none_or(|ns| *ns == key.namespace)
                    && request.selector.matches(&change.object);
                if wanted {
                    lines.extend(line(change.change.as_str(), &change.object));
                }
            }
            Ok::<_, ApiError>((lines, store.revision()))
        })?;
        self.cursor = self.cursor.max(revision);
        Ok(lines)
    }
}

/// A BOOKMARK event's object at `revision`.
fn bookmark(resource: &Resource, revision: u64) -> Value {
    json!({
        "apiVersion": resource.api_version(),
        "kind": resource.kind,
        "metadata": {"resourceVersion": revision.to_string()},
    })
}

/// One watch event, a line of JSON.
fn line(kind: &str, object: &Value) -> Vec<u8> {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    text.into_bytes()
}
