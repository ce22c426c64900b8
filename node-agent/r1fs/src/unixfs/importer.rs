//! The entry point: [`Importer`] adds bytes, a stream, a file or a directory tree and gives the
//! root CID `ipfs add` (kubo, default settings) would print, handing every block to a sink.

use std::fs::{self, File};
use std::io::Read;
use std::mem;
use std::path::Path;

use super::chunker::{CHUNK_SIZE, Chunker};
use super::cid::{Cid, CidVersion};
use super::dir::{self, SHARD_THRESHOLD};
use super::error::Error;
use super::layout::FileBuilder;
use super::sink::{Block, BlockSink};

/// Imports files and directories as UnixFS DAGs with kubo's `ipfs add` defaults: fixed 256 KiB
/// chunks, balanced layout of at most 174 links, CIDv0 with dag-pb leaves or CIDv1 with raw
/// leaves, directories HAMT-sharded above 256 KiB, entries whose name starts with `.` left out
/// of a directory as `ipfs add -r` does without `--hidden`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Importer {
    version: CidVersion,
    include_hidden: bool,
    shard_threshold: u64,
}

/// A root added through a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    /// The root CID: what `ipfs add` prints.
    pub cid: Cid,
    /// The root block's size plus every block below it (the `Tsize` a parent link would carry;
    /// counts a repeated block each time it is linked).
    pub dag_size: u64,
}

/// Bytes added in memory: the root and every block, children before parents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The root CID.
    pub root: Cid,
    /// As [`Added::dag_size`].
    pub dag_size: u64,
    /// Every block, the root last.
    pub blocks: Vec<Block>,
}

/// Buffers reused from one file to the next.
#[derive(Default)]
struct Scratch {
    chunk: Vec<u8>,
    block: Vec<u8>,
}

/// Turns a caller's sink error into [`Error::Sink`].
struct Boxing<'a, S: ?Sized>(&'a mut S);

impl<S> BlockSink for Boxing<'_, S>
where
    S: BlockSink + ?Sized,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    type Error = Error;

    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), Error> {
        self.0.put(cid, data).map_err(|e| Error::Sink(Box::new(e)))
    }
}

impl Importer {
    /// An importer with kubo's defaults for this CID version (`--cid-version`).
    pub fn new(version: CidVersion) -> Self {
        Importer {
            version,
            include_hidden: false,
            shard_threshold: SHARD_THRESHOLD,
        }
    }

    /// Also adds entries whose name starts with `.` (`ipfs add -r --hidden`).
    pub fn include_hidden(mut self, include: bool) -> Self {
        self.include_hidden = include;
        self
    }

    /// Shards directories whose estimated size is above `bytes` instead of 256 KiB (kubo's
    /// `Import.UnixFSHAMTDirectorySizeThreshold`).
    pub fn shard_threshold(mut self, bytes: u64) -> Self {
        self.shard_threshold = bytes;
        self
    }

    /// The CID version it writes.
    pub fn version(&self) -> CidVersion {
        self.version
    }

    /// Adds `data` as one file, keeping every block in memory.
    pub fn add_bytes(&self, data: &[u8]) -> Imported {
        let mut blocks = Vec::new();
        let mut builder = FileBuilder::new(self.version, Vec::new());
        for chunk in data.chunks(CHUNK_SIZE) {
            let Ok(()) = builder.push_chunk(chunk, &mut blocks);
        }
        let Ok((root, _)) = builder.finish(&mut blocks);
        Imported {
            root: root.cid,
            dag_size: root.tsize,
            blocks,
        }
    }

    /// Adds everything `reader` yields as one file, handing each block to `sink` as soon as it
    /// is made; holds one chunk and at most 174 links per tree level in memory.
    pub fn add_reader<R, S>(&self, reader: R, sink: &mut S) -> Result<Added, Error>
    where
        R: Read,
        S: BlockSink + ?Sized,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        self.stream(reader, &mut Boxing(sink), &mut Scratch::default())
    }

    /// Adds a regular file, or a directory with everything below it (`ipfs add -r`).
    /// Symlinks, devices, sockets and FIFOs are refused, at the top or anywhere below.
    pub fn add_path<S>(&self, path: impl AsRef<Path>, sink: &mut S) -> Result<Added, Error>
    where
        S: BlockSink + ?Sized,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        self.path(path.as_ref(), &mut Boxing(sink), &mut Scratch::default())
    }

    /// Adds a directory with everything below it; refuses anything that is not a directory.
    pub fn add_dir<S>(&self, path: impl AsRef<Path>, sink: &mut S) -> Result<Added, Error>
    where
        S: BlockSink + ?Sized,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        let path = path.as_ref();
        let meta = fs::symlink_metadata(path).map_err(Error::io(path))?;
        if !meta.is_dir() {
            return Err(Error::NotADirectory(path.to_path_buf()));
        }
        self.dir(path, &mut Boxing(sink), &mut Scratch::default())
    }

    fn stream<R: Read, S: BlockSink<Error = Error>>(
        &self,
        mut reader: R,
        sink: &mut S,
        scratch: &mut Scratch,
    ) -> Result<Added, Error> {
        let mut chunker = Chunker::with_buffer(mem::take(&mut scratch.chunk));
        let mut builder = FileBuilder::new(self.version, mem::take(&mut scratch.block));
        while let Some(chunk) = chunker.next_chunk(&mut reader).map_err(Error::Read)? {
            builder.push_chunk(chunk, sink)?;
        }
        let (root, block) = builder.finish(sink)?;
        scratch.chunk = chunker.into_buffer();
        scratch.block = block;
        Ok(Added {
            cid: root.cid,
            dag_size: root.tsize,
        })
    }

    fn path<S: BlockSink<Error = Error>>(
        &self,
        path: &Path,
        sink: &mut S,
        scratch: &mut Scratch,
    ) -> Result<Added, Error> {
        let kind = fs::symlink_metadata(path)
            .map_err(Error::io(path))?
            .file_type();
        if kind.is_symlink() {
            Err(Error::Symlink(path.to_path_buf()))
        } else if kind.is_file() {
            let file = File::open(path).map_err(Error::io(path))?;
            self.stream(file, sink, scratch).map_err(|e| match e {
                Error::Read(source) => Error::Io {
                    path: path.to_path_buf(),
                    source,
                },
                other => other,
            })
        } else if kind.is_dir() {
            self.dir(path, sink, scratch)
        } else {
            Err(Error::Special(path.to_path_buf()))
        }
    }

    fn dir<S: BlockSink<Error = Error>>(
        &self,
        path: &Path,
        sink: &mut S,
        scratch: &mut Scratch,
    ) -> Result<Added, Error> {
        let mut names = Vec::new();
        for item in fs::read_dir(path).map_err(Error::io(path))? {
            let item = item.map_err(Error::io(path))?;
            let name = item.file_name();
            if !self.include_hidden && name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            names.push(
                name.into_string()
                    .map_err(|_| Error::NonUtf8Name(item.path()))?,
            );
        }
        // Byte order, as kubo walks a directory (the resulting CID does not depend on it).
        names.sort_unstable();
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let added = self.path(&path.join(&name), sink, scratch)?;
            entries.push(dir::Entry {
                name,
                cid: added.cid,
                tsize: added.dag_size,
            });
        }
        let (cid, dag_size) = dir::build(entries, self.version, self.shard_threshold, sink)?;
        Ok(Added { cid, dag_size })
    }
}
