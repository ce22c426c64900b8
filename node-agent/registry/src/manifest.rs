//! A fetched manifest or index, and the media types asked for.

use serde::Deserialize;

/// The `Accept` header of manifest requests: OCI manifests and indexes, Docker v2 manifests
/// and manifest lists.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// OCI's media types, for documents that name none.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A manifest or index as the registry sent it, verified against its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its media type: the response's `Content-Type`, else the document's `mediaType`.
    pub media_type: String,
    /// `sha256:` digest of [`bytes`](Self::bytes), the manifest's content address.
    pub digest: String,
    /// The document, byte for byte (its digest depends on every byte).
    pub bytes: Vec<u8>,
}

/// The media type of a manifest answered with `content_type`: that type unless it is missing
/// or generic JSON, else the document's `mediaType`, else an OCI index or manifest by shape.
pub(crate) fn media_type(content_type: Option<&str>, bytes: &[u8]) -> String {
    let declared = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .filter(|value| {
            !matches!(
                value.as_str(),
                "" | "application/json" | "text/plain" | "application/octet-stream"
            )
        });
    if let Some(declared) = declared {
        return declared;
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Shape>(bytes) {
        Ok(Shape {
            media_type: Some(media_type),
            ..
        }) => media_type,
        Ok(Shape {
            manifests: Some(_), ..
        }) => OCI_INDEX.to_owned(),
        Ok(Shape {
            layers: Some(_), ..
        }) => OCI_MANIFEST.to_owned(),
        _ => content_type.unwrap_or_default().trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_header_then_document() {
        let docker = "application/vnd.docker.distribution.manifest.v2+json";
        assert_eq!(media_type(Some(docker), b"{}"), docker);
        assert_eq!(
            media_type(
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                b""
            ),
            OCI_INDEX
        );
        let with_field = format!(r#"{{"mediaType":"{docker}","layers":[]}}"#);
        assert_eq!(media_type(None, with_field.as_bytes()), docker);
        assert_eq!(
            media_type(Some("application/json"), with_field.as_bytes()),
            docker
        );
        assert_eq!(media_type(None, br#"{"manifests":[]}"#), OCI_INDEX);
        assert_eq!(
            media_type(Some("text/plain"), br#"{"config":{},"layers":[]}"#),
            OCI_MANIFEST
        );
        assert_eq!(media_type(Some("text/plain"), b"not json"), "text/plain");
        assert_eq!(media_type(None, b"not json"), "");
    }
}
