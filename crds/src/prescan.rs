//! Limits on a manifest's shape, checked on the YAML event stream before any value is built, so
//! that no input costs more to parse than a small multiple of its size.
//!
//! serde_yaml expands aliases while it builds values and bounds only the number of jumps, not
//! the nodes they produce: a few kilobytes of nested aliases become gigabytes. Kubernetes
//! manifests never need anchors or aliases, so they are refused outright, and size, document
//! count, nesting depth and node count are bounded before serde_yaml sees the text.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::ScanError;

use crate::field::FieldError;

/// Largest manifest text read, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// Most documents one manifest text (one request) may hold.
pub const MAX_DOCUMENTS: usize = 100;

/// Deepest nesting of mappings and sequences in a document (r1 resources need about 6).
pub const MAX_DEPTH: usize = 32;

/// Most YAML nodes (scalars, mappings, sequences) in one manifest text, over all documents.
pub const MAX_NODES: usize = 50_000;

/// Why a text was refused before parsing, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 1-based document the problem is in.
    pub document: usize,
    /// The problem, at the field path where it is.
    pub error: FieldError,
    /// Whether it is a YAML syntax error (whose wording serde_yaml may tell better).
    pub syntax: bool,
}

/// Checks `text` against the limits without building any value.
pub fn prescan(text: &str) -> Result<(), Refusal> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(refusal(
            1,
            "",
            format!(
                "the manifest is {} bytes; at most {MAX_MANIFEST_BYTES} are accepted",
                text.len()
            ),
        ));
    }
    let mut scan = Scan::default();
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return Ok(()),
            Ok((event, _)) => scan.event(event)?,
            Err(e) => return Err(scan.syntax_error(&e)),
        }
    }
}

/// Where the scan is: the document, the open collections and how many nodes it saw.
#[derive(Debug, Default)]
struct Scan {
    document: usize,
    in_document: bool,
    nodes: usize,
    frames: Vec<Frame>,
}

/// An open collection and the position in it.
#[derive(Debug)]
enum Frame {
    /// A mapping; `key` is the key whose value comes next, `None` while a key comes next.
    Mapping { key: Option<String> },
    /// A sequence and the index of the next item.
    Sequence { next: usize },
}

impl Scan {
    fn event(&mut self, event: Event) -> Result<(), Refusal> {
        match event {
            Event::DocumentStart => {
                self.document += 1;
                self.in_document = true;
                self.frames.clear();
                if self.document > MAX_DOCUMENTS {
                    return Err(self.refuse(format!(
                        "a manifest holds at most {MAX_DOCUMENTS} documents; split it into several \
                         requests"
                    )));
                }
                Ok(())
            }
            Event::DocumentEnd => {
                self.in_document = false;
                Ok(())
            }
            Event::Alias(_) => Err(self.refuse(
                "YAML aliases (*name) are not accepted: Kubernetes manifests never need them; \
                 write the value out in full",
            )),
            Event::Scalar(value, _, anchor, _) => {
                self.node(anchor)?;
                self.finish_node(Some(value));
                Ok(())
            }
            Event::SequenceStart(anchor, _) => {
                self.node(anchor)?;
                self.open(Frame::Sequence { next: 0 })
            }
            Event::MappingStart(anchor, _) => {
                self.node(anchor)?;
                self.open(Frame::Mapping { key: None })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.frames.pop();
                self.finish_node(None);
                Ok(())
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => Ok(()),
        }
    }

    /// Counts a node and refuses an anchor on it.
    fn node(&mut self, anchor: usize) -> Result<(), Refusal> {
        if anchor != 0 {
            return Err(self.refuse(
                "YAML anchors (&name) are not accepted: Kubernetes manifests never need them; \
                 write the value out in full",
            ));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.refuse(format!(
                "a manifest holds at most {MAX_NODES} YAML values; split it into several requests"
            )));
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame) -> Result<(), Refusal> {
        if self.frames.len() >= MAX_DEPTH {
            return Err(self.refuse(format!("is nested more than {MAX_DEPTH} levels deep")));
        }
        self.frames.push(frame);
        Ok(())
    }

    /// Moves the enclosing collection past a finished node (`scalar` is its text, if a scalar).
    fn finish_node(&mut self, scalar: Option<String>) {
        match self.frames.last_mut() {
            Some(Frame::Mapping { key }) => {
                *key = match key {
                    None => Some(scalar.unwrap_or_else(|| "?".into())),
                    Some(_) => None,
                }
            }
            Some(Frame::Sequence { next }) => *next += 1,
            None => {}
        }
    }

    /// The field path of the node being read, e.g. `spec.ports[1].name`.
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.frames {
            match frame {
                Frame::Mapping { key: Some(key) } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Frame::Mapping { key: None } => {}
                Frame::Sequence { next } => path.push_str(&format!("[{next}]")),
            }
        }
        path
    }

    fn refuse(&self, message: impl Into<String>) -> Refusal {
        refusal(self.document.max(1), &self.path(), message.into())
    }

    /// A parser error: an alias to an unknown anchor is still an alias; the rest is syntax.
    fn syntax_error(&self, error: &ScanError) -> Refusal {
        let document = if self.in_document {
            self.document
        } else {
            self.document + 1
        };
        // The scanner reads ahead and stops at 255 open flow collections, before the events
        // that would pass the depth limit reach the scan.
        if error.info().contains("recursion limit exceeded") {
            return Refusal {
                document,
                ..self.refuse(format!("is nested more than {MAX_DEPTH} levels deep"))
            };
        }
        if error.info().contains("unknown anchor") {
            return Refusal {
                document,
                ..self.refuse(
                    "YAML aliases (*name) are not accepted: Kubernetes manifests never need them; \
                     write the value out in full",
                )
            };
        }
        Refusal {
            document,
            error: FieldError::new("", format!("YAML syntax error: {error}")),
            syntax: true,
        }
    }
}

fn refusal(document: usize, path: &str, message: String) -> Refusal {
    Refusal {
        document,
        error: FieldError::new(path, message),
        syntax: false,
    }
}

#[cfg(test)]
mod tests;
