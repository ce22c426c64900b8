//! Fixed-size chunking (`size-262144`, kubo's default): a file is cut into 256 KiB chunks, the
//! last one shorter; an empty file is one empty chunk.
//!
//! [`Chunker`] reads each chunk into one buffer it keeps, so a file of any size is read with
//! 256 KiB of memory, and the buffer can be handed on to the next file.

use std::io::{self, ErrorKind, Read};

/// Bytes per chunk: kubo's `--chunker=size-262144`.
pub const CHUNK_SIZE: usize = 262_144;

/// Cuts a stream into chunks, reusing one buffer.
#[derive(Debug)]
pub struct Chunker {
    buffer: Vec<u8>,
    started: bool,
    done: bool,
}

impl Chunker {
    /// A chunker with its own buffer.
    pub fn new() -> Self {
        Chunker::with_buffer(Vec::new())
    }

    /// A chunker that reuses `buffer` (from [`Chunker::into_buffer`]) for a new stream.
    pub fn with_buffer(mut buffer: Vec<u8>) -> Self {
        buffer.resize(CHUNK_SIZE, 0);
        Chunker {
            buffer,
            started: false,
            done: false,
        }
    }

    /// The buffer back, for the next stream.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buffer
    }

    /// The next chunk of `reader`, or `None` after the last one. Every chunk but the last is
    /// exactly [`CHUNK_SIZE`] bytes; an empty stream gives one empty chunk.
    pub fn next_chunk<R: Read + ?Sized>(&mut self, reader: &mut R) -> io::Result<Option<&[u8]>> {
        if self.done {
            return Ok(None);
        }
        let filled = fill(reader, &mut self.buffer)?;
        if filled < CHUNK_SIZE {
            self.done = true;
        }
        if filled == 0 && self.started {
            return Ok(None);
        }
        self.started = true;
        Ok(Some(&self.buffer[..filled]))
    }
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker::new()
    }
}

/// Reads until `buffer` is full or the stream ends; how many bytes it read.
fn fill<R: Read + ?Sized>(reader: &mut R, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most 1000 bytes a call and is interrupted now and then.
    struct Trickle<'a> {
        data: &'a [u8],
        calls: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(7) {
                return Err(ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(1000).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn chunk_lengths(len: usize) -> Vec<usize> {
        let data = vec![1u8; len];
        let mut reader = Trickle {
            data: &data,
            calls: 0,
        };
        let mut chunker = Chunker::new();
        let mut lengths = Vec::new();
        while let Some(chunk) = chunker.next_chunk(&mut reader).expect("read") {
            lengths.push(chunk.len());
        }
        lengths
    }

    #[test]
    fn chunk_boundaries() {
        assert_eq!(chunk_lengths(0), [0]);
        assert_eq!(chunk_lengths(1), [1]);
        assert_eq!(chunk_lengths(CHUNK_SIZE - 1), [CHUNK_SIZE - 1]);
        assert_eq!(chunk_lengths(CHUNK_SIZE), [CHUNK_SIZE]);
        assert_eq!(chunk_lengths(CHUNK_SIZE + 1), [CHUNK_SIZE, 1]);
        assert_eq!(chunk_lengths(2 * CHUNK_SIZE), [CHUNK_SIZE, CHUNK_SIZE]);
    }

    #[test]
    fn a_read_error_is_returned() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let err = Chunker::new().next_chunk(&mut Broken).expect_err("error");
        assert_eq!(err.to_string(), "disk on fire");
    }
}
