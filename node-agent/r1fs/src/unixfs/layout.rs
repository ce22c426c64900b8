//! The balanced file layout (kubo's default): chunks are the leaves, each internal node links
//! at most [`MAX_LINKS`] children, and the tree is filled left to right, every level grouped by
//! 174 like js-ipfs-unixfs-importer's `balanced` layout and go's `balanced.Layout`.
//!
//! Leaves are dag-pb UnixFS `File` nodes under CIDv0 and raw blocks under CIDv1 (`ipfs add
//! --cid-version=1` turns raw leaves on); a file of one chunk is that leaf alone. Internal
//! nodes are `File` nodes with `filesize` and one `blocksizes` entry per link.
//!
//! [`FileBuilder`] takes chunks one by one and hands each finished block to the sink at once,
//! so at most 174 pending links per level are held, never the file.

use super::cid::{Cid, CidVersion, Codec};
use super::dag_pb::{self, Link};
use super::data;
use super::sink::BlockSink;

/// Most links in one file node (`--max-links`, kubo's `helpers.DefaultLinksPerBlock`).
pub const MAX_LINKS: usize = 174;

/// A finished node of the file tree, as its parent links it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Built {
    /// Its CID.
    pub cid: Cid,
    /// Its block's size plus all blocks below it (the parent link's `Tsize`).
    pub tsize: u64,
    /// File bytes below it (the parent's `blocksizes` entry).
    pub filesize: u64,
}

/// Builds one file's DAG from its chunks.
#[derive(Debug)]
pub struct FileBuilder {
    version: CidVersion,
    /// Pending nodes per level; level 0 holds leaves. Each level stays below [`MAX_LINKS`].
    levels: Vec<Vec<Built>>,
    /// Reused for every leaf block under CIDv0.
    scratch: Vec<u8>,
}

impl FileBuilder {
    /// A builder for a file imported as `version`; `scratch` is a buffer to reuse for leaf
    /// blocks (give it back to the next file with [`FileBuilder::finish`]'s second value).
    pub fn new(version: CidVersion, scratch: Vec<u8>) -> Self {
        FileBuilder {
            version,
            levels: vec![Vec::new()],
            scratch,
        }
    }

    /// Adds the next chunk as a leaf.
    pub fn push_chunk<S: BlockSink + ?Sized>(
        &mut self,
        chunk: &[u8],
        sink: &mut S,
    ) -> Result<(), S::Error> {
        let leaf = match self.version {
            CidVersion::V0 => {
                data::write_file_leaf_block(chunk, &mut self.scratch);
                let cid = Cid::of(CidVersion::V0, Codec::DagPb, &self.scratch);
                sink.put(&cid, &self.scratch)?;
                Built {
                    cid,
                    tsize: self.scratch.len() as u64,
                    filesize: chunk.len() as u64,
                }
            }
            CidVersion::V1 => {
                let cid = Cid::of(CidVersion::V1, Codec::Raw, chunk);
                sink.put(&cid, chunk)?;
                Built {
                    cid,
                    tsize: chunk.len() as u64,
                    filesize: chunk.len() as u64,
                }
            }
        };
        self.push(0, leaf, sink)
    }

    /// Puts `node` on `level`, closing the level into a parent once it holds [`MAX_LINKS`].
    fn push<S: BlockSink + ?Sized>(
        &mut self,
        mut level: usize,
        mut node: Built,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::with_capacity(MAX_LINKS));
            }
            self.levels[level].push(node);
            if self.levels[level].len() < MAX_LINKS {
                return Ok(());
            }
            node = self.close(level, sink)?;
            level += 1;
        }
    }

    /// Makes the parent node of everything pending on `level`.
    fn close<S: BlockSink + ?Sized>(
        &mut self,
        level: usize,
        sink: &mut S,
    ) -> Result<Built, S::Error> {
        let children = &mut self.levels[level];
        let links: Vec<Link> = children
            .iter()
            .map(|c| Link {
                cid: c.cid,
                name: String::new(),
                tsize: c.tsize,
            })
            .collect();
        let blocksizes: Vec<u64> = children.iter().map(|c| c.filesize).collect();
        let below: u64 = children.iter().map(|c| c.tsize).sum();
        children.clear();
        let block = dag_pb::encode(&links, &data::file_node(&blocksizes));
        let cid = Cid::of(self.version, Codec::DagPb, &block);
        sink.put(&cid, &block)?;
        Ok(Built {
            cid,
            tsize: block.len() as u64 + below,
            filesize: blocksizes.iter().sum(),
        })
    }

    /// Closes the tree: the root, and the scratch buffer back. A builder given no chunk at all
    /// gives the empty file (one empty chunk).
    pub fn finish<S: BlockSink + ?Sized>(
        mut self,
        sink: &mut S,
    ) -> Result<(Built, Vec<u8>), S::Error> {
        if self.levels.iter().all(Vec::is_empty) {
            self.push_chunk(&[], sink)?;
        }
        // Bottom-up, as the JS layout reduces level after level: a level with pending nodes
        // gets a parent on the level above, until one node is left on top. The topmost
        // non-empty level is never empty again once filled, so this ends at the top.
        let mut level = 0;
        while level < self.levels.len() {
            let is_top = self.levels[level + 1..].iter().all(Vec::is_empty);
            if is_top
                && self.levels[level].len() == 1
                && let Some(root) = self.levels[level].pop()
            {
                return Ok((root, self.scratch));
            }
            if !self.levels[level].is_empty() {
                let node = self.close(level, sink)?;
                self.push(level + 1, node, sink)?;
            }
            level += 1;
        }
        unreachable!("the top level of a file tree always holds its root")
    }
}
