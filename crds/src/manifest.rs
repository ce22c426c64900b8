//! Reading manifests: multi-document YAML (or JSON) into typed r1 resources, with every error
//! pointing at the field it concerns.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_yaml::Value;

use crate::field::FieldError;
use crate::prescan::{Refusal, prescan};
use crate::{DeeployJob, DeeployProject, Escrow, Tunnel};

/// API group and version of every r1 resource.
pub const API_VERSION: &str = "deeploy.ratio1.ai/v1alpha1";

/// Namespace of a manifest that names none, as kubectl assumes.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The r1 resource kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `DeeployProject`.
    Project,
    /// `DeeployJob`.
    Job,
    /// `Tunnel`.
    Tunnel,
    /// `Escrow`.
    Escrow,
}

impl Kind {
    /// Every kind, in the order a CSP applies them.
    pub const ALL: [Kind; 4] = [Kind::Escrow, Kind::Project, Kind::Tunnel, Kind::Job];

    /// The `kind:` value in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Project => "DeeployProject",
            Self::Job => "DeeployJob",
            Self::Tunnel => "Tunnel",
            Self::Escrow => "Escrow",
        }
    }

    /// The kind named by a `kind:` value.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One r1 resource read from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    /// A `DeeployProject`.
    Project(DeeployProject),
    /// A `DeeployJob`.
    Job(Box<DeeployJob>),
    /// A `Tunnel`.
    Tunnel(Tunnel),
    /// An `Escrow`.
    Escrow(Escrow),
}

impl Manifest {
    /// The resource's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Project(_) => Kind::Project,
            Self::Job(_) => Kind::Job,
            Self::Tunnel(_) => Kind::Tunnel,
            Self::Escrow(_) => Kind::Escrow,
        }
    }

    /// The resource's metadata.
    pub fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Self::Project(r) => &r.metadata,
            Self::Job(r) => &r.metadata,
            Self::Tunnel(r) => &r.metadata,
            Self::Escrow(r) => &r.metadata,
        }
    }

    /// `metadata.name`, empty when missing.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`, or `default` when missing.
    pub fn namespace(&self) -> &str {
        self.metadata()
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
    }

    /// `Kind namespace/name`, how messages name a resource.
    pub fn display_name(&self) -> String {
        format!("{} {}/{}", self.kind(), self.namespace(), self.name())
    }

    /// `spec.owner` as written, for the kinds that name their owner (escrows and projects):
    /// the CSP whose namespace the object claims.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Self::Escrow(e) => Some(&e.spec.owner),
            Self::Project(p) => Some(&p.spec.owner),
            Self::Job(_) | Self::Tunnel(_) => None,
        }
    }
}

/// One document of a manifest file, parsed or not.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based position of the document in its file.
    pub index: usize,
    /// The resource, or what keeps the document from being one.
    pub result: Result<Manifest, Vec<FieldError>>,
    /// When only unknown fields keep the document from being a resource: the resource read
    /// without them, so that its value errors are reported in the same answer.
    pub despite_unknown_fields: Option<Manifest>,
}

/// Splits a YAML (or JSON) text into documents and reads each as an r1 resource. Empty documents
/// are skipped; a syntax error ends the file, since nothing after it can be trusted.
///
/// The text is first checked against [`crate::prescan`]'s limits (size, documents, depth, nodes,
/// no anchors or aliases) without building any value; a text over them is refused as a whole,
/// with one document naming the first problem.
pub fn parse_documents(text: &str) -> Vec<Document> {
    if let Err(refusal) = prescan(text) {
        return vec![refused(text, refusal)];
    }
    let mut documents = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = match Value::deserialize(de) {
            Ok(Value::Null) => continue,
            Ok(value) => value,
            Err(e) => {
                documents.push(syntax_error(index, &e));
                break;
            }
        };
        let (result, despite_unknown_fields) = match read_value(value) {
            Read::Clean(manifest) => (Ok(manifest), None),
            Read::UnknownFields(manifest, errors) => (Err(errors), Some(manifest)),
            Read::Invalid(errors) => (Err(errors), None),
        };
        documents.push(Document {
            index,
            result,
            despite_unknown_fields,
        });
    }
    documents
}

/// The one document reporting why the pre-scan refused `text`. A syntax error is worded as
/// serde_yaml words it when serde_yaml finds one too: skipping documents with [`IgnoredAny`]
/// neither builds values nor follows aliases, so it stays linear in the text.
fn refused(text: &str, refusal: Refusal) -> Document {
    if refusal.syntax {
        let skipped = serde_yaml::Deserializer::from_str(text)
            .enumerate()
            .find_map(|(i, de)| IgnoredAny::deserialize(de).err().map(|e| (i + 1, e)));
        if let Some((index, e)) = skipped {
            return syntax_error(index, &e);
        }
    }
    Document {
        index: refusal.document,
        result: Err(vec![refusal.error]),
        despite_unknown_fields: None,
    }
}

fn syntax_error(index: usize, error: &serde_yaml::Error) -> Document {
    Document {
        index,
        result: Err(vec![FieldError::new(
            "",
            format!("YAML syntax error: {error}"),
        )]),
        despite_unknown_fields: None,
    }
}

/// Reads one YAML value as an r1 resource.
pub fn parse_value(value: Value) -> Result<Manifest, Vec<FieldError>> {
    match read_value(value) {
        Read::Clean(manifest) => Ok(manifest),
        Read::UnknownFields(_, errors) | Read::Invalid(errors) => Err(errors),
    }
}

/// How a YAML value reads as an r1 resource.
enum Read<T> {
    /// A resource, every field known.
    Clean(T),
    /// A resource once the unknown fields (the errors) are left out.
    UnknownFields(T, Vec<FieldError>),
    /// Not a resource: unknown fields seen before the first type error, then that error.
    Invalid(Vec<FieldError>),
}

impl<T> Read<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Read<U> {
        match self {
            Self::Clean(t) => Read::Clean(f(t)),
            Self::UnknownFields(t, errors) => Read::UnknownFields(f(t), errors),
            Self::Invalid(errors) => Read::Invalid(errors),
        }
    }
}

fn read_value(value: Value) -> Read<Manifest> {
    let Value::Mapping(map) = &value else {
        return Read::Invalid(vec![FieldError::new(
            "",
            "a manifest must be a mapping with apiVersion, kind, metadata and spec",
        )]);
    };
    let text_field = |name: &str| map.get(name).and_then(Value::as_str).map(str::to_owned);
    let mut errors = Vec::new();
    match text_field("apiVersion") {
        Some(v) if v == API_VERSION => {}
        Some(v) => errors.push(FieldError::new(
            "apiVersion",
            format!("{v:?} is not {API_VERSION:?}"),
        )),
        None => errors.push(FieldError::new(
            "apiVersion",
            format!("is required ({API_VERSION})"),
        )),
    }
    let kind = match text_field("kind") {
        Some(k) => match Kind::from_name(&k) {
            Some(kind) => Some(kind),
            None => {
                let known: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                errors.push(FieldError::new(
                    "kind",
                    format!("{k:?} is not an r1 resource (one of {})", known.join(", ")),
                ));
                None
            }
        },
        None => {
            errors.push(FieldError::new("kind", "is required"));
            None
        }
    };
    let Some(kind) = kind.filter(|_| errors.is_empty()) else {
        return Read::Invalid(errors);
    };
    match kind {
        Kind::Project => typed(value).map(Manifest::Project),
        Kind::Job => typed(value).map(|job| Manifest::Job(Box::new(job))),
        Kind::Tunnel => typed(value).map(Manifest::Tunnel),
        Kind::Escrow => typed(value).map(Manifest::Escrow),
    }
}

/// Deserializes with the path of the first type error and of every unknown field.
fn typed<T: DeserializeOwned>(value: Value) -> Read<T> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| {
        let path = ignored_path(&path);
        // apiVersion and kind were checked above; status is the controller's, not the user's.
        let checked_elsewhere = matches!(path.as_str(), "apiVersion" | "kind" | "status");
        if !checked_elsewhere && !path.starts_with("status.") {
            unknown.push(FieldError::new(path, "is not a known field"));
        }
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut record);
    let typed: Result<T, _> = serde_path_to_error::deserialize(ignored);
    match typed {
        Ok(typed) if unknown.is_empty() => Read::Clean(typed),
        Ok(typed) => Read::UnknownFields(typed, unknown),
        Err(e) => {
            unknown.push(type_error(e));
            Read::Invalid(unknown)
        }
    }
}

/// Turns serde's messages into field errors: a missing field is reported at the field itself.
fn type_error(e: serde_path_to_error::Error<serde_yaml::Error>) -> FieldError {
    let path = match e.path().to_string() {
        p if p == "." => String::new(),
        p => p,
    };
    let message = e.inner().to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let path = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return FieldError::new(path, "is required");
    }
    FieldError::new(path, message)
}

/// `spec.ports[0].name` for a serde_ignored path.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}
