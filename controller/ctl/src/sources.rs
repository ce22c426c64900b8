//! Collecting manifest files from `-f` arguments: files, directories (optionally recursive) and
//! `-` for standard input, as kubectl does.

use std::io::Read;
use std::path::{Path, PathBuf};

use r1_crds::check::Source;

/// Extensions read from directories.
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A path cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A directory holds no manifests.
    #[error("{0} contains no .yaml, .yml or .json files")]
    EmptyDirectory(PathBuf),
}

/// Reads every manifest named by `paths`; directories contribute their manifest files in name
/// order (and their subdirectories' when `recursive`).
pub fn read_sources(paths: &[PathBuf], recursive: bool) -> Result<Vec<Source>, SourceError> {
    let mut sources = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| SourceError::Read {
                    path: path.clone(),
                    source,
                })?;
            sources.push(Source {
                name: "-".into(),
                text,
            });
        } else if path.is_dir() {
            let before = sources.len();
            read_dir(path, recursive, &mut sources)?;
            if sources.len() == before {
                return Err(SourceError::EmptyDirectory(path.clone()));
            }
        } else {
            sources.push(read_file(path)?);
        }
    }
    Ok(sources)
}

fn read_file(path: &Path) -> Result<Source, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(Source {
        name: path.display().to_string(),
        text,
    })
}

fn read_dir(dir: &Path, recursive: bool, sources: &mut Vec<Source>) -> Result<(), SourceError> {
    let io = |source| SourceError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                read_dir(&entry, recursive, sources)?;
            }
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e))
        {
            sources.push(read_file(&entry)?);
        }
    }
    Ok(())
}
