//! Errors that point at a field of a manifest by its YAML path, e.g. `spec.ports[1].containerPort`.

use std::fmt;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field from the document root: `spec.resources.memory`, `spec.env[2].name`.
    pub path: String,
    /// What is wrong, in a sentence that names the offending value.
    pub message: String,
}

impl FieldError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects errors under a path prefix while a validator walks a resource.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    /// Records `message` at `path`.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    /// Records the error of `check` at `path`, if any.
    pub fn check<T>(&mut self, path: impl Into<String>, check: Result<T, String>) -> Option<T> {
        match check {
            Ok(value) => Some(value),
            Err(message) => {
                self.add(path, message);
                None
            }
        }
    }

    /// The errors recorded, in the order found.
    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}
