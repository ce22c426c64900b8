//! Reading UnixFS DAGs back: a file's bytes in order, a directory's entries (plain or
//! HAMT-sharded) and what a root is, through any block source. Every block is checked against
//! its CID before its bytes or links are used, so a reader never returns bytes the root does not
//! commit to.

use thiserror::Error;

use super::cid::{Cid, Codec, verify};
use super::dag_pb::{self, DagPbError};
use super::varint::{self, VarintError};

/// Why a DAG could not be read.
#[derive(Debug, Error)]
pub enum ReadError<E> {
    /// A block the DAG links to is not in the source.
    #[error("block {0} is missing")]
    Missing(Cid),
    /// A block's bytes do not hash to its CID.
    #[error("block {0} does not match its CID")]
    Corrupt(Cid),
    /// A dag-pb block does not decode.
    #[error("block {cid}: {error}")]
    DagPb {
        /// The block.
        cid: Cid,
        /// Why it does not decode.
        error: DagPbError,
    },
    /// A dag-pb block's UnixFS data does not decode.
    #[error("block {0}: malformed UnixFS data")]
    Unixfs(Cid),
    /// The root is not what the call reads (a directory given to `cat`, a file to `ls`).
    #[error("{cid} is a {found}, not a {wanted}")]
    Kind {
        /// The root.
        cid: Cid,
        /// What it is.
        found: Kind,
        /// What the call needs.
        wanted: Kind,
    },
    /// The source failed.
    #[error(transparent)]
    Source(E),
}

/// What a UnixFS node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// File bytes (a raw leaf, a UnixFS `Raw` or `File` node).
    File,
    /// A directory, plain or HAMT-sharded.
    Directory,
    /// A symlink or metadata node, which R1FS does not read.
    Other,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::File => "file",
            Kind::Directory => "directory",
            Kind::Other => "symlink or metadata node",
        })
    }
}

/// What a root is, from its block alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// File, directory or other.
    pub kind: Kind,
    /// A file's size in bytes (its UnixFS `filesize`); for a directory the sum of its links'
    /// cumulative sizes.
    pub size: u64,
    /// Links of the root block.
    pub links: usize,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name.
    pub name: String,
    /// Its root.
    pub cid: Cid,
    /// Its cumulative size (the link's `Tsize`: its blocks' bytes, not the file size).
    pub tsize: u64,
}

/// The UnixFS fields a reader uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Data {
    kind: u64,
    data: Vec<u8>,
    filesize: Option<u64>,
}

const RAW: u64 = 0;
const DIRECTORY: u64 = 1;
const FILE: u64 = 2;
const HAMT_SHARD: u64 = 5;

/// Length of a HAMT link's slot prefix (two hex digits at fanout 256).
const HAMT_PREFIX: usize = 2;

/// Reads blocks through `read` (`Ok(None)`: not there), checking each against its CID.
pub struct Reader<F> {
    read: F,
}

/// A block read and checked: its links and UnixFS data (raw leaves have neither links nor a
/// type, only bytes).
enum Block {
    Raw(Vec<u8>),
    Node {
        links: Vec<dag_pb::Link>,
        data: Data,
    },
}

impl<F, E> Reader<F>
where
    F: FnMut(&Cid) -> Result<Option<Vec<u8>>, E>,
{
    /// A reader over a block source.
    pub fn new(read: F) -> Self {
        Self { read }
    }

    fn block(&mut self, cid: &Cid) -> Result<Block, ReadError<E>> {
        let bytes = (self.read)(cid)
            .map_err(ReadError::Source)?
            .ok_or(ReadError::Missing(*cid))?;
        if !verify(cid, &bytes) {
            return Err(ReadError::Corrupt(*cid));
        }
        if cid.codec() == Codec::Raw {
            return Ok(Block::Raw(bytes));
        }
        let node = dag_pb::decode(&bytes).map_err(|error| ReadError::DagPb { cid: *cid, error })?;
        let data = decode_data(node.data.as_deref().unwrap_or_default())
            .map_err(|_| ReadError::Unixfs(*cid))?;
        Ok(Block::Node {
            links: node.links,
            data,
        })
    }

    /// What `root` is.
    pub fn stat(&mut self, root: &Cid) -> Result<Stat, ReadError<E>> {
        Ok(match self.block(root)? {
            Block::Raw(bytes) => Stat {
                kind: Kind::File,
                size: bytes.len() as u64,
                links: 0,
            },
            Block::Node { links, data } => {
                let kind = kind_of(data.kind);
                let size = match kind {
                    Kind::File => data.filesize.unwrap_or(data.data.len() as u64),
                    _ => links.iter().map(|l| l.tsize).sum(),
                };
                Stat {
                    kind,
                    size,
                    links: links.len(),
                }
            }
        })
    }

    /// The bytes of the file under `root`, in order, one block's worth per item.
    pub fn cat(&mut self, root: Cid) -> FileBytes<'_, F> {
        FileBytes {
            reader: self,
            root,
            pending: vec![root],
        }
    }

    /// The entries of the directory under `root`, sorted by name (shards followed to their
    /// leaves).
    pub fn ls(&mut self, root: &Cid) -> Result<Vec<Entry>, ReadError<E>> {
        let (links, data) = match self.block(root)? {
            Block::Node { links, data } => (links, data),
            Block::Raw(_) => return Err(not_a_directory(*root, Kind::File)),
        };
        let mut entries = Vec::new();
        match data.kind {
            DIRECTORY => entries.extend(links.into_iter().map(entry)),
            HAMT_SHARD => self.shard_entries(links, &mut entries)?,
            other => return Err(not_a_directory(*root, kind_of(other))),
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn shard_entries(
        &mut self,
        links: Vec<dag_pb::Link>,
        entries: &mut Vec<Entry>,
    ) -> Result<(), ReadError<E>> {
        let mut pending = links;
        while let Some(link) = pending.pop() {
            if link.name.len() > HAMT_PREFIX {
                let name = link.name.get(HAMT_PREFIX..).unwrap_or_default().to_owned();
                entries.push(Entry {
                    name,
                    ..entry(link)
                });
                continue;
            }
            match self.block(&link.cid)? {
                Block::Node { links, data } if data.kind == HAMT_SHARD => pending.extend(links),
                _ => return Err(ReadError::Unixfs(link.cid)),
            }
        }
        Ok(())
    }
}

fn entry(link: dag_pb::Link) -> Entry {
    Entry {
        name: link.name,
        cid: link.cid,
        tsize: link.tsize,
    }
}

fn not_a_directory<E>(cid: Cid, found: Kind) -> ReadError<E> {
    ReadError::Kind {
        cid,
        found,
        wanted: Kind::Directory,
    }
}

fn kind_of(unixfs_type: u64) -> Kind {
    match unixfs_type {
        RAW | FILE => Kind::File,
        DIRECTORY | HAMT_SHARD => Kind::Directory,
        _ => Kind::Other,
    }
}

/// The bytes of one file, block by block (see [`Reader::cat`]).
pub struct FileBytes<'r, F> {
    reader: &'r mut Reader<F>,
    root: Cid,
    pending: Vec<Cid>,
}

impl<F, E> Iterator for FileBytes<'_, F>
where
    F: FnMut(&Cid) -> Result<Option<Vec<u8>>, E>,
{
    type Item = Result<Vec<u8>, ReadError<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let cid = self.pending.pop()?;
            let block = match self.reader.block(&cid) {
                Ok(block) => block,
                Err(e) => {
                    self.pending.clear();
                    return Some(Err(e));
                }
            };
            let (links, data) = match block {
                Block::Raw(bytes) => return Some(Ok(bytes)),
                Block::Node { links, data } => (links, data),
            };
            if !matches!(data.kind, RAW | FILE) {
                self.pending.clear();
                return Some(Err(ReadError::Kind {
                    cid: if cid == self.root { cid } else { self.root },
                    found: kind_of(data.kind),
                    wanted: Kind::File,
                }));
            }
            self.pending.extend(links.into_iter().rev().map(|l| l.cid));
            if !data.data.is_empty() {
                return Some(Ok(data.data));
            }
        }
    }
}

/// Reads the UnixFS `Data` message, skipping fields a reader does not use (blocksizes,
/// hashType, fanout, mode, mtime).
fn decode_data(bytes: &[u8]) -> Result<Data, VarintError> {
    let mut out = Data::default();
    let mut seen_type = false;
    let mut pos = 0;
    while pos < bytes.len() {
        let (tag, n) = varint::decode(&bytes[pos..])?;
        pos += n;
        match tag & 7 {
            0 => {
                let (value, n) = varint::decode(&bytes[pos..])?;
                pos += n;
                match tag >> 3 {
                    1 => {
                        out.kind = value;
                        seen_type = true;
                    }
                    3 => out.filesize = Some(value),
                    _ => {}
                }
            }
            2 => {
                let (len, n) = varint::decode(&bytes[pos..])?;
                let start = pos + n;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| start.checked_add(len))
                    .filter(|&end| end <= bytes.len())
                    .ok_or(VarintError::Truncated)?;
                if tag >> 3 == 2 {
                    out.data = bytes[start..end].to_vec();
                }
                pos = end;
            }
            _ => return Err(VarintError::Truncated),
        }
    }
    if seen_type {
        Ok(out)
    } else {
        Err(VarintError::Truncated)
    }
}

#[cfg(test)]
mod tests;
