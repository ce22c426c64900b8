//! Kubernetes events: what `kubectl describe` shows about a resource. Warning events tell of a
//! resource the oracle refused or could not act on, once per change of its `Valid` condition,
//! not on every reconcile; the story of a job ([`crate::kube::story`]) adds Normal and Warning
//! events for each step of its life.

use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::kube::resource::FIELD_MANAGER;

/// Longest note the events API accepts, in bytes.
const NOTE_MAX: usize = 1024;

/// Tells apart events written within the same nanosecond.
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The two types of Kubernetes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong, or may need attention.
    Warning,
}

impl EventType {
    /// The type as the events API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// What one event says about a resource.
#[derive(Debug, Clone, Copy)]
pub struct Says<'a> {
    /// Normal or Warning.
    pub type_: EventType,
    /// What was done or attempted, e.g. `Mirror`, `Delete`, `Schedule`.
    pub action: &'a str,
    /// Why, in one CamelCase word.
    pub reason: &'a str,
    /// The details (cut to the API's limit).
    pub note: &'a str,
}

/// Writes a Warning event about `regarding`: `reason` is one CamelCase word, `note` the details
/// (cut to the API's limit).
pub async fn warn(
    client: &Client,
    regarding: ObjectReference,
    instance: &str,
    action: &str,
    reason: &str,
    note: &str,
) -> Result<(), kube::Error> {
    let says = Says {
        type_: EventType::Warning,
        action,
        reason,
        note,
    };
    publish(client, regarding, instance, says).await
}

/// Writes an event of any type about `regarding`, signed by the oracle instance `instance`.
pub async fn publish(
    client: &Client,
    regarding: ObjectReference,
    instance: &str,
    says: Says<'_>,
) -> Result<(), kube::Error> {
    let namespace = regarding.namespace.clone().unwrap_or_default();
    let now = Timestamp::now();
    let name = format!(
        "{}.{:x}{:02x}",
        regarding.name.as_deref().unwrap_or(FIELD_MANAGER),
        now.as_nanosecond(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed) % 256
    );
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        type_: Some(says.type_.as_str().to_owned()),
        reason: Some(says.reason.to_owned()),
        action: Some(says.action.to_owned()),
        note: Some(cut(says.note, NOTE_MAX)),
        event_time: Some(MicroTime(now)),
        reporting_controller: Some(format!("deeploy.ratio1.ai/{FIELD_MANAGER}")),
        reporting_instance: Some(instance.to_owned()),
        regarding: Some(regarding),
        ..Event::default()
    };
    Api::<Event>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &event)
        .await?;
    Ok(())
}

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let ellipsis = '…';
    let mut end = max - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(600);
        let note = cut(&long, NOTE_MAX);
        assert!(note.len() <= NOTE_MAX, "{}", note.len());
        assert!(note.ends_with('…'));
        assert!(note.starts_with("éé"));
        assert_eq!(cut(&"a".repeat(2000), 10), format!("{}…", "a".repeat(7)));
    }
}
