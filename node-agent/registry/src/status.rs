//! A registry's or token service's unsuccessful answer as a [`RegistryError`].

use http::header::RETRY_AFTER;

use crate::backoff;
use crate::body;
use crate::credentials::Credentials;
use crate::error::{Failed, RegistryError};
use crate::name::ImageName;
use crate::transport::Response;

/// Error codes of the distribution spec that mean "does not exist".
const NOT_FOUND_CODES: [&str; 3] = ["MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"];

/// Who answered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// The registry, asked for `what` (`manifest latest`, `blob sha256:…`).
    Registry {
        /// What was asked for.
        what: &'a str,
    },
    /// The token service named by the registry's challenge.
    TokenService,
}

/// The error an unsuccessful `response` means, with its `Retry-After`. A 401 here is final: the
/// client has already answered the registry's challenge (or there was nothing to answer with).
pub(crate) async fn failure(
    image: &ImageName,
    credentials: Option<&Credentials>,
    source: Source<'_>,
    response: Response,
) -> Failed {
    let status = response.status().as_u16();
    let retry_after = backoff::retry_after(response.header(RETRY_AFTER.as_str()));
    let body = body::error_body(response).await;
    let error = classify(image, credentials, source, status, body);
    Failed { error, retry_after }
}

/// The error for `status` and the registry's error document.
fn classify(
    image: &ImageName,
    credentials: Option<&Credentials>,
    source: Source<'_>,
    status: u16,
    body: body::ErrorBody,
) -> RegistryError {
    let image_name = image.to_string();
    let service = match source {
        Source::Registry { .. } => "the registry",
        Source::TokenService => "the token service",
    };
    match (status, source) {
        (401, _) if credentials.is_none() => {
            RegistryError::CredentialsRequired { image: image_name }
        }
        (401 | 403, _) => RegistryError::Denied {
            image: image_name,
            detail: format!(
                "{service} answered HTTP {status}{}: {}",
                if credentials.is_some() {
                    " to the pull secret's credentials"
                } else {
                    ""
                },
                body.detail
            ),
        },
        (_, Source::Registry { what })
            if status == 404
                || body
                    .code
                    .as_deref()
                    .is_some_and(|code| NOT_FOUND_CODES.contains(&code)) =>
        {
            let what = if body.code.as_deref() == Some("NAME_UNKNOWN") {
                format!("repository {}", image.repository)
            } else {
                what.to_owned()
            };
            RegistryError::NotFound {
                image: image_name,
                what,
            }
        }
        _ => RegistryError::Status {
            image: image_name,
            status,
            detail: match source {
                Source::Registry { .. } => body.detail,
                Source::TokenService => format!("token service: {}", body.detail),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(
        status: u16,
        code: Option<&str>,
        with_credentials: bool,
        source: Source<'_>,
    ) -> RegistryError {
        let image = ImageName::parse("ghcr.io/team/app:1").unwrap();
        let credentials = Credentials::Token("t".to_owned());
        let body = body::ErrorBody {
            code: code.map(str::to_owned),
            detail: "because".to_owned(),
        };
        classify(
            &image,
            Some(&credentials).filter(|_| with_credentials),
            source,
            status,
            body,
        )
    }

    #[test]
    fn statuses_map_to_errors() {
        let manifest = Source::Registry { what: "manifest 1" };
        let e = classified(401, Some("UNAUTHORIZED"), false, manifest);
        assert!(
            matches!(e, RegistryError::CredentialsRequired { .. }),
            "{e}"
        );
        assert!(e.to_string().contains("needs a pull secret"), "{e}");
        let e = classified(401, None, true, manifest);
        assert!(matches!(e, RegistryError::Denied { .. }), "{e}");
        let e = classified(403, Some("DENIED"), false, manifest);
        assert!(matches!(e, RegistryError::Denied { .. }), "{e}");
        let e = classified(404, Some("MANIFEST_UNKNOWN"), false, manifest);
        assert!(
            matches!(&e, RegistryError::NotFound { what, .. } if what == "manifest 1"),
            "{e}"
        );
        let e = classified(404, Some("NAME_UNKNOWN"), false, manifest);
        assert_eq!(
            e.to_string(),
            "ghcr.io/team/app:1: repository team/app not found in the registry"
        );
        let e = classified(404, None, false, Source::TokenService);
        assert!(
            matches!(e, RegistryError::Status { status: 404, .. }),
            "{e}"
        );
        let e = classified(503, None, false, manifest);
        assert!(e.is_transient(), "{e}");
    }
}
