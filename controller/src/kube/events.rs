//! Kubernetes events: what `kubectl describe` shows about a resource the oracle refused or could
//! not act on. Events are written once per change of the resource's `Valid` condition, not on
//! every reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::kube::resource::FIELD_MANAGER;

/// Longest note the events API accepts, in bytes.
const NOTE_MAX: usize = 1024;

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
    let namespace = regarding.namespace.clone().unwrap_or_default();
    let now = Timestamp::now();
    let name = format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or(FIELD_MANAGER),
        now.as_nanosecond()
    );
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        type_: Some("Warning".to_owned()),
        reason: Some(reason.to_owned()),
        action: Some(action.to_owned()),
        note: Some(cut(note, NOTE_MAX)),
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
