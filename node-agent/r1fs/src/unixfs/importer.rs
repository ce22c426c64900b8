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
use super::sink::{Block, BlockSink, SinkError};

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
    S::Error: Into<SinkError>,
{
    type Error = Error;

    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), Error> {
        self.0.put(cid, data).map_err(|e| Error::Sink(e.into()))
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
        S::Error: Into<SinkError>,
    {
        self.stream(reader, &mut Boxing(sink), &mut Scratch::default())
    }

    /// Adds a regular file, or a directory with everything below it (`ipfs add -r`).
    /// Symlinks, devices, sockets and FIFOs are refused, at the top or anywhere below.
    pub fn add_path<S>(&self, path: impl AsRef<Path>, sink: &mut S) -> Result<Added, Error>
    where
        S: BlockSink + ?Sized,
        S::Error: Into<SinkError>,
    {
        self.path(path.as_ref(), &mut Boxing(sink), &mut Scratch::default())
    }

    /// Adds a directory with everything below it; refuses anything that is not a directory.
    pub fn add_dir<S>(&self, path: impl AsRef<Path>, sink: &mut S) -> Result<Added, Error>
    where
        S: BlockSink + ?Sized,
        S::Error: Into<SinkError>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::cid::{Codec, verify};
    use crate::unixfs::sink::{Discard, FnSink};
    use proptest::prelude::*;

    const V0: Importer = Importer {
        version: CidVersion::V0,
        include_hidden: false,
        shard_threshold: SHARD_THRESHOLD,
    };
    const V1: Importer = Importer {
        version: CidVersion::V1,
        include_hidden: false,
        shard_threshold: SHARD_THRESHOLD,
    };

    #[test]
    fn known_small_files() {
        // Printed by kubo-cids/cids.mjs (ipfs-unixfs-importer with kubo's defaults) for the
        // same bytes; `printf hello | ipfs add` gives the first.
        for (importer, data, cid) in [
            (
                V0,
                &b"hello"[..],
                "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX",
            ),
            (
                V0,
                b"hello\n",
                "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN",
            ),
            (V0, b"", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"),
            (
                V1,
                b"hello",
                "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq",
            ),
            (
                V1,
                b"hello\n",
                "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am",
            ),
            (
                V1,
                b"",
                "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            ),
        ] {
            let imported = importer.add_bytes(data);
            assert_eq!(imported.root.to_string(), cid, "{data:?}");
            assert_eq!(imported.blocks.len(), 1);
            let streamed = importer.add_reader(data, &mut Discard).expect("import");
            assert_eq!(
                streamed,
                Added {
                    cid: imported.root,
                    dag_size: imported.dag_size
                }
            );
        }
    }

    #[test]
    fn known_empty_directory() {
        // Printed by kubo-cids/cids.mjs for an empty directory.
        let tmp = tempfile::tempdir().expect("tempdir");
        let v0 = V0.add_dir(tmp.path(), &mut Discard).expect("import");
        let v1 = V1.add_dir(tmp.path(), &mut Discard).expect("import");
        assert_eq!(
            v0.cid.to_string(),
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        );
        assert_eq!(
            v1.cid.to_string(),
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
        );
    }

    #[test]
    fn a_file_of_two_chunks_is_a_node_over_two_leaves() {
        let data = vec![7u8; CHUNK_SIZE + 1];
        let v0 = V0.add_bytes(&data);
        assert_eq!(v0.blocks.len(), 3, "two leaves, then the root");
        let root = crate::unixfs::dag_pb::decode(&v0.blocks[2].data).expect("dag-pb");
        assert_eq!(root.links.len(), 2);
        assert!(root.links.iter().all(|l| l.name.is_empty()));
        assert_eq!(root.links[1].tsize, v0.blocks[1].data.len() as u64);
        let total: u64 = v0.blocks.iter().map(|b| b.data.len() as u64).sum();
        assert_eq!(v0.dag_size, total);
        let v1 = V1.add_bytes(&data);
        assert_eq!(v1.blocks[0].cid.codec(), Codec::Raw);
        assert_eq!(v1.blocks[0].data.len(), CHUNK_SIZE);
        assert_eq!(v1.root.codec(), Codec::DagPb);
        assert_eq!(v1.root.version(), CidVersion::V1);
    }

    #[test]
    fn a_refused_block_stops_the_import() {
        let mut sink =
            FnSink(|_: &Cid, _: &[u8]| -> Result<(), SinkError> { Err("disk full".into()) });
        let err = V0.add_reader(&b"data"[..], &mut sink).expect_err("refused");
        assert_eq!(err.to_string(), "storing a block: disk full");
    }

    #[test]
    fn only_regular_files_and_directories_are_added() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("d");
        fs::create_dir(&dir).expect("mkdir");
        fs::write(dir.join("file"), b"x").expect("write");
        std::os::unix::fs::symlink("file", dir.join("link")).expect("symlink");
        let err = V0.add_dir(&dir, &mut Discard).expect_err("symlink");
        assert!(
            matches!(&err, Error::Symlink(p) if p.ends_with("d/link")),
            "{err}"
        );
        assert!(err.to_string().ends_with(
            "d/link: is a symbolic link; only regular files and directories can be added"
        ));
        assert!(matches!(
            V0.add_path(dir.join("link"), &mut Discard),
            Err(Error::Symlink(_))
        ));
        assert!(matches!(
            V0.add_path("/dev/null", &mut Discard),
            Err(Error::Special(_))
        ));
        assert!(matches!(
            V0.add_dir(dir.join("file"), &mut Discard),
            Err(Error::NotADirectory(_))
        ));
        let missing = V0
            .add_path(dir.join("missing"), &mut Discard)
            .expect_err("missing");
        assert!(
            missing
                .to_string()
                .contains("d/missing: No such file or directory"),
            "{missing}"
        );
    }

    #[test]
    fn a_name_that_is_not_utf8_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(
            tmp.path().join(std::ffi::OsStr::from_bytes(b"bad-\xff")),
            b"x",
        )
        .expect("write");
        assert!(matches!(
            V0.add_dir(tmp.path(), &mut Discard),
            Err(Error::NonUtf8Name(_))
        ));
    }

    #[test]
    fn hidden_entries_are_left_out_unless_asked_for() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let with = tmp.path().join("with");
        let without = tmp.path().join("without");
        for dir in [&with, &without] {
            fs::create_dir(dir).expect("mkdir");
            fs::write(dir.join("seen"), b"x").expect("write");
        }
        fs::write(with.join(".hidden"), b"y").expect("write");
        let cid = |importer: Importer, dir: &Path| {
            importer.add_dir(dir, &mut Discard).expect("import").cid
        };
        assert_eq!(cid(V0, &with), cid(V0, &without));
        assert_ne!(cid(V0.include_hidden(true), &with), cid(V0, &without));
    }

    /// Deterministic bytes for the property tests (proptest picks the seed and length).
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn every_block_verifies_and_no_changed_byte_does(
            seed in any::<u64>(),
            len in prop_oneof![0..600usize, (CHUNK_SIZE - 2)..(CHUNK_SIZE + 3), 0..(3 * CHUNK_SIZE)],
            v1 in any::<bool>(),
            at in any::<prop::sample::Index>(),
            flip in 1..=255u8,
        ) {
            let importer = if v1 { V1 } else { V0 };
            let imported = importer.add_bytes(&bytes(seed, len));
            prop_assert_eq!(imported.blocks.last().map(|b| b.cid), Some(imported.root));
            for block in &imported.blocks {
                prop_assert!(verify(&block.cid, &block.data));
                if !block.data.is_empty() {
                    let mut changed = block.data.clone();
                    let i = at.index(changed.len());
                    changed[i] ^= flip;
                    prop_assert!(!verify(&block.cid, &changed));
                }
            }
        }
    }
}
