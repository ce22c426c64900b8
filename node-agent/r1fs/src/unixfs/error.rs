//! What can go wrong while importing: reading the input, storing a block, or an input R1FS does
//! not add (a symlink, a device, a name that is not UTF-8).

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::sink::SinkError;

/// Why an import failed.
#[derive(Debug, Error)]
pub enum Error {
    /// Reading a stream given to [`Importer::add_reader`](super::Importer::add_reader) failed.
    #[error("reading the input: {0}")]
    Read(#[source] io::Error),
    /// Reading a file or a directory listing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The [`BlockSink`](super::BlockSink) refused a block.
    #[error("storing a block: {0}")]
    Sink(#[source] SinkError),
    /// [`Importer::add_dir`](super::Importer::add_dir) was given something else.
    #[error("{}: is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A symbolic link: R1FS adds regular files and directories only.
    #[error("{}: is a symbolic link; only regular files and directories can be added", .0.display())]
    Symlink(PathBuf),
    /// A device, socket or FIFO.
    #[error("{}: is not a regular file or a directory; only those can be added", .0.display())]
    Special(PathBuf),
    /// A directory entry whose name is not UTF-8 (a dag-pb link name is a string).
    #[error("{}: the name is not valid UTF-8", .0.display())]
    NonUtf8Name(PathBuf),
    /// Two names in one directory with the same 64-bit HAMT hash, which kubo cannot shard either.
    #[error("names {0:?} and {1:?} have the same murmur3 hash; the directory cannot be sharded")]
    HashCollision(String, String),
}

impl From<Infallible> for Error {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
