//! The dag-pb block format: a protobuf `PBNode` of links and opaque data, in the one canonical
//! byte form go-merkledag and js `@ipld/dag-pb` write.
//!
//! ```text
//! message PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
//! message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }
//! ```
//!
//! Canonical means: every link before the data (field 2 ahead of field 1 on the wire), each
//! link's fields in order Hash, Name, Tsize, every field present (a file node's links carry an
//! empty Name), and links sorted by name bytes (the sort is stable, so nameless file links
//! keep their order). [`decode`] reads the same form back and refuses anything else.

use thiserror::Error;

use super::cid::{Cid, CidError};
use super::varint::{self, VarintError};

/// One link of a dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The child's CID.
    pub cid: Cid,
    /// The entry name (empty for the chunks of a file).
    pub name: String,
    /// The child's serialized size plus the sizes of everything below it.
    pub tsize: u64,
}

/// Why bytes are not a canonical dag-pb node this crate reads.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DagPbError {
    /// A varint (tag, length or value) is malformed.
    #[error("dag-pb: {0}")]
    Varint(#[from] VarintError),
    /// A length-delimited field runs past the end of its message.
    #[error("dag-pb: a field runs past the end of the block")]
    Truncated,
    /// A field number or wire type the format does not have, or a field out of order or twice.
    #[error("dag-pb: unexpected field tag 0x{0:x}")]
    Tag(u64),
    /// A link without a Hash.
    #[error("dag-pb: link without a hash")]
    MissingHash,
    /// A link's Hash is not a CID this crate reads.
    #[error("dag-pb: link hash: {0}")]
    Cid(#[from] CidError),
    /// A link's Name is not UTF-8.
    #[error("dag-pb: link name is not UTF-8")]
    Name,
    /// Links not sorted by name.
    #[error("dag-pb: links are not sorted by name")]
    Unsorted,
}

/// A dag-pb node read back by [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The links, in block order.
    pub links: Vec<Link>,
    /// The data field, when present.
    pub data: Option<Vec<u8>>,
}

/// Encodes a node in canonical form. `links` must already be in canonical order (sorted by
/// name bytes; a directory builder sorts its entries, a file's links have no name).
pub fn encode(links: &[Link], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(links, data.len()));
    let mut cid_bytes = Vec::with_capacity(36);
    for link in links {
        cid_bytes.clear();
        link.cid.write_bytes(&mut cid_bytes);
        out.push(0x12);
        varint::encode(
            link_len(cid_bytes.len(), link.name.len(), link.tsize) as u64,
            &mut out,
        );
        out.push(0x0a);
        varint::encode(cid_bytes.len() as u64, &mut out);
        out.extend_from_slice(&cid_bytes);
        out.push(0x12);
        varint::encode(link.name.len() as u64, &mut out);
        out.extend_from_slice(link.name.as_bytes());
        out.push(0x18);
        varint::encode(link.tsize, &mut out);
    }
    out.push(0x0a);
    varint::encode(data.len() as u64, &mut out);
    out.extend_from_slice(data);
    out
}

/// Length of one encoded `PBLink` message (without the tag and length that wrap it).
fn link_len(cid_len: usize, name_len: usize, tsize: u64) -> usize {
    1 + varint::encoded_len(cid_len as u64)
        + cid_len
        + 1
        + varint::encoded_len(name_len as u64)
        + name_len
        + 1
        + varint::encoded_len(tsize)
}

/// Length [`encode`] gives for these links and this much data.
pub fn encoded_len(links: &[Link], data_len: usize) -> usize {
    let links: usize = links
        .iter()
        .map(|l| {
            let len = link_len(l.cid.encoded_len(), l.name.len(), l.tsize);
            1 + varint::encoded_len(len as u64) + len
        })
        .sum();
    links + 1 + varint::encoded_len(data_len as u64) + data_len
}

/// Sorts links into canonical order: by name bytes, stable.
pub fn sort_links(links: &mut [Link]) {
    links.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
}

/// Reads a length-delimited field's body at `pos`: the body and the position after it.
fn delimited(bytes: &[u8], pos: usize) -> Result<(&[u8], usize), DagPbError> {
    let (len, n) = varint::decode(&bytes[pos..])?;
    let start = pos + n;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|&end| end <= bytes.len())
        .ok_or(DagPbError::Truncated)?;
    Ok((&bytes[start..end], end))
}

/// Reads a canonical dag-pb node (links, then optional data, nothing else).
pub fn decode(bytes: &[u8]) -> Result<Node, DagPbError> {
    let mut links = Vec::new();
    let mut data = None;
    let mut pos = 0;
    while pos < bytes.len() {
        let (tag, n) = varint::decode(&bytes[pos..])?;
        pos += n;
        match tag {
            0x12 if data.is_none() => {
                let (body, next) = delimited(bytes, pos)?;
                links.push(decode_link(body)?);
                pos = next;
            }
            0x0a if data.is_none() => {
                let (body, next) = delimited(bytes, pos)?;
                data = Some(body.to_vec());
                pos = next;
            }
            other => return Err(DagPbError::Tag(other)),
        }
    }
    if links
        .windows(2)
        .any(|w| w[0].name.as_bytes() > w[1].name.as_bytes())
    {
        return Err(DagPbError::Unsorted);
    }
    Ok(Node { links, data })
}

fn decode_link(bytes: &[u8]) -> Result<Link, DagPbError> {
    let mut cid = None;
    let mut name = None;
    let mut tsize = None;
    let mut pos = 0;
    while pos < bytes.len() {
        let (tag, n) = varint::decode(&bytes[pos..])?;
        pos += n;
        match tag {
            0x0a if cid.is_none() && name.is_none() && tsize.is_none() => {
                let (body, next) = delimited(bytes, pos)?;
                cid = Some(Cid::from_bytes(body)?);
                pos = next;
            }
            0x12 if name.is_none() && tsize.is_none() => {
                let (body, next) = delimited(bytes, pos)?;
                name = Some(String::from_utf8(body.to_vec()).map_err(|_| DagPbError::Name)?);
                pos = next;
            }
            0x18 if tsize.is_none() => {
                let (value, n) = varint::decode(&bytes[pos..])?;
                tsize = Some(value);
                pos += n;
            }
            other => return Err(DagPbError::Tag(other)),
        }
    }
    Ok(Link {
        cid: cid.ok_or(DagPbError::MissingHash)?,
        name: name.unwrap_or_default(),
        tsize: tsize.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::cid::{CidVersion, Codec};

    fn link(name: &str, tsize: u64) -> Link {
        Link {
            cid: Cid::of(CidVersion::V0, Codec::DagPb, name.as_bytes()),
            name: name.into(),
            tsize,
        }
    }

    #[test]
    fn links_come_before_data_and_every_field_is_written() {
        let l = Link {
            cid: Cid::v0([0xab; 32]),
            name: String::new(),
            tsize: 300,
        };
        let bytes = encode(std::slice::from_ref(&l), &[0x08, 0x02]);
        let mut expected = vec![0x12, 0x29, 0x0a, 0x22, 0x12, 0x20];
        expected.extend([0xab; 32]);
        expected.extend([0x12, 0x00, 0x18, 0xac, 0x02, 0x0a, 0x02, 0x08, 0x02]);
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), encoded_len(&[l], 2));
    }

    #[test]
    fn decode_reads_what_encode_writes() {
        let mut links = vec![link("b", 5), link("a", 1 << 40), link("ü", 0)];
        sort_links(&mut links);
        assert_eq!(
            links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["a", "b", "ü"]
        );
        let bytes = encode(&links, b"data");
        assert_eq!(bytes.len(), encoded_len(&links, 4));
        assert_eq!(
            decode(&bytes),
            Ok(Node {
                links,
                data: Some(b"data".to_vec())
            })
        );
    }

    #[test]
    fn decode_refuses_what_is_not_canonical() {
        let links = vec![link("a", 1), link("b", 2)];
        let sorted = encode(&links, b"x");
        let unsorted = encode(&[links[1].clone(), links[0].clone()], b"x");
        assert!(decode(&sorted).is_ok());
        assert_eq!(decode(&unsorted), Err(DagPbError::Unsorted));
        // Data before a link.
        let mut data_first = vec![0x0a, 0x01, b'x'];
        data_first.extend_from_slice(&sorted[..sorted.len() - 3]);
        assert_eq!(decode(&data_first), Err(DagPbError::Tag(0x12)));
        // Cut short.
        assert_eq!(decode(&sorted[..10]), Err(DagPbError::Truncated));
        // An unknown field.
        assert_eq!(decode(&[0x1a, 0x00]), Err(DagPbError::Tag(0x1a)));
    }
}
