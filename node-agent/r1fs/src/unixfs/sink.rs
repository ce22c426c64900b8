//! Where blocks go as they are made: a [`BlockSink`] receives every block of an import, children
//! before their parents, so a node can write them to disk while a large file is still read.

use std::convert::Infallible;

use super::cid::Cid;

/// A boxed error: what [`Error::Sink`](super::Error::Sink) carries, and the error of
/// [`FnSink`]. The importer takes any sink whose error converts into it (every
/// `std::error::Error + Send + Sync + 'static` does, [`Infallible`] too).
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One block: its CID and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The CID of `data`.
    pub cid: Cid,
    /// The serialized block (a dag-pb node, or a raw chunk under CIDv1).
    pub data: Vec<u8>,
}

/// Receives each block an import makes. Identical blocks (two equal chunks, two equal files)
/// are handed over each time they occur.
pub trait BlockSink {
    /// Why the sink may refuse a block ([`Infallible`] for one that cannot).
    type Error;

    /// Takes one block; an error stops the import.
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), Self::Error>;
}

/// Collects every block in memory.
impl BlockSink for Vec<Block> {
    type Error = Infallible;

    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), Infallible> {
        self.push(Block {
            cid: *cid,
            data: data.to_vec(),
        });
        Ok(())
    }
}

impl<S: BlockSink + ?Sized> BlockSink for &mut S {
    type Error = S::Error;

    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), S::Error> {
        (**self).put(cid, data)
    }
}

/// Drops every block: for working out a CID only.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl BlockSink for Discard {
    type Error = Infallible;

    fn put(&mut self, _cid: &Cid, _data: &[u8]) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A closure as a sink.
pub struct FnSink<F>(pub F);

impl<F: FnMut(&Cid, &[u8]) -> Result<(), SinkError>> BlockSink for FnSink<F> {
    type Error = SinkError;

    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), SinkError> {
        (self.0)(cid, data)
    }
}
