//! Checking a set of manifest files together, as `r1ctl validate -f DIR` does: every document is
//! parsed, duplicates are caught, and references resolve within the set.

use std::collections::HashMap;
use std::fmt;

use crate::field::FieldError;
use crate::manifest::{Kind, Manifest, parse_documents};
use crate::pricing::Catalogue;
use crate::validate::{ManifestSet, validate};

/// One manifest file's name and contents.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where the text came from, as shown in messages (a path, or `-` for stdin).
    pub name: String,
    /// The YAML or JSON text.
    pub text: String,
}

/// One problem found in a set of files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// File the problem is in.
    pub source: String,
    /// 1-based document within the file.
    pub document: usize,
    /// `Kind namespace/name` of the resource, when the document got that far.
    pub resource: Option<String>,
    /// The field and what is wrong with it.
    pub error: FieldError,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Some(resource) => write!(f, "{}: {resource}: {}", self.source, self.error),
            None => write!(
                f,
                "{} (document {}): {}",
                self.source, self.document, self.error
            ),
        }
    }
}

/// What checking a set of files found.
#[derive(Debug, Default)]
pub struct Report {
    /// Every problem, in file and document order.
    pub findings: Vec<Finding>,
    /// Resources that parsed, with their file and document, in order.
    pub resources: Vec<(String, usize, Manifest)>,
}

impl Report {
    /// True when nothing is wrong.
    pub fn is_valid(&self) -> bool {
        self.findings.is_empty()
    }
}

/// How references between resources are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum References {
    /// Every referenced object must be among the sources.
    WithinSet,
    /// Only the syntax of references is checked (the objects live elsewhere, e.g. in a cluster).
    SyntaxOnly,
}

/// Parses and validates every document of `sources` as one set.
pub fn check_sources(sources: &[Source], catalogue: &Catalogue, references: References) -> Report {
    let mut report = Report::default();
    let mut set = ManifestSet::default();
    let mut first_seen: HashMap<(Kind, String, String), (String, usize)> = HashMap::new();
    let mut misspelt = Vec::new();
    for source in sources {
        for doc in parse_documents(&source.text) {
            match doc.result {
                Ok(manifest) => {
                    let key = (
                        manifest.kind(),
                        manifest.namespace().to_owned(),
                        manifest.name().to_owned(),
                    );
                    if let Some((file, index)) = first_seen.get(&key) {
                        report.findings.push(Finding {
                            source: source.name.clone(),
                            document: doc.index,
                            resource: Some(manifest.display_name()),
                            error: FieldError::new(
                                "metadata.name",
                                format!("is defined twice (first in {file}, document {index})"),
                            ),
                        });
                        continue;
                    }
                    first_seen.insert(key, (source.name.clone(), doc.index));
                    set.insert(manifest.clone());
                    report
                        .resources
                        .push((source.name.clone(), doc.index, manifest));
                }
                Err(errors) => {
                    report
                        .findings
                        .extend(errors.into_iter().map(|error| Finding {
                            source: source.name.clone(),
                            document: doc.index,
                            resource: None,
                            error,
                        }));
                    if let Some(manifest) = doc.despite_unknown_fields {
                        set.insert(manifest.clone());
                        misspelt.push((source.name.clone(), doc.index, manifest));
                    }
                }
            }
        }
    }
    // A document refused for unknown fields is validated too: all its errors in one answer.
    for (source, document, manifest) in report.resources.iter().chain(&misspelt) {
        let index: Option<&dyn crate::validate::ResourceIndex> = match references {
            References::WithinSet => Some(&set),
            References::SyntaxOnly => None,
        };
        for error in validate(manifest, catalogue, index) {
            report.findings.push(Finding {
                source: source.clone(),
                document: *document,
                resource: Some(manifest.display_name()),
                error,
            });
        }
    }
    report
        .findings
        .sort_by(|a, b| (&a.source, a.document).cmp(&(&b.source, b.document)));
    report
}
