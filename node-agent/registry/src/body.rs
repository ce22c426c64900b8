//! Response bodies read with a limit, and the error documents registries answer with.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Failed, RegistryError};
use crate::transport::Response;

/// Largest token response or error document read.
pub(crate) const SMALL_BODY: usize = 64 << 10;
/// Longest time spent reading an error document (a blob request has no overall timeout).
const ERROR_BODY_TIME: Duration = Duration::from_secs(10);
/// Characters of a non-JSON error answer quoted in a message.
const QUOTED_CHARS: usize = 200;

/// The whole body of `response`, refused beyond `limit` bytes (before reading, when the length
/// is announced). `what` names the response in the error.
pub(crate) async fn read_capped(
    mut response: Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, Failed> {
    let too_large = || RegistryError::TooLarge {
        what: what.to_owned(),
        limit: u64::try_from(limit).unwrap_or(u64::MAX),
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(too_large().into());
    }
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(too_large().into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a registry said went wrong.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    /// The first error's code (`MANIFEST_UNKNOWN`, `DENIED`, …).
    pub(crate) code: Option<String>,
    /// Code and message, or the start of a non-JSON answer, for people.
    pub(crate) detail: String,
}

/// Reads at most [`SMALL_BODY`] bytes of an error answer, for at most [`ERROR_BODY_TIME`];
/// whatever arrived is described.
pub(crate) async fn error_body(mut response: Response) -> ErrorBody {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            let room = SMALL_BODY - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == SMALL_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(ERROR_BODY_TIME, read).await;
    describe_error(&body)
}

/// The distribution spec's error document (`{"errors":[{"code":…,"message":…}]}`), or the
/// start of any other answer.
pub(crate) fn describe_error(body: &[u8]) -> ErrorBody {
    #[derive(Deserialize)]
    struct Document {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(document) = serde_json::from_slice::<Document>(body)
        && let Some(first) = document.errors.into_iter().next()
    {
        let detail = match (&first.code, &first.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(text), None) | (None, Some(text)) => text.clone(),
            (None, None) => "no details".to_owned(),
        };
        return ErrorBody {
            code: first.code,
            detail,
        };
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.trim().chars().take(QUOTED_CHARS).collect();
    ErrorBody {
        code: None,
        detail: if text.is_empty() {
            "no details".to_owned()
        } else {
            text
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_registry_errors() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}},{"code":"OTHER"}]}"#;
        assert_eq!(
            describe_error(body),
            ErrorBody {
                code: Some("MANIFEST_UNKNOWN".to_owned()),
                detail: "MANIFEST_UNKNOWN: manifest unknown".to_owned(),
            }
        );
        assert_eq!(
            describe_error(b"  <html>busy</html>\n").detail,
            "<html>busy</html>"
        );
        assert_eq!(describe_error(b"").detail, "no details");
        assert_eq!(describe_error(&[b'x'; 1000]).detail.len(), QUOTED_CHARS);
        assert_eq!(describe_error(br#"{"errors":[]}"#).code, None);
    }
}
