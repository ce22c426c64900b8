//! `r1ctl fs`: the node's R1FS store over its local API socket: add a file or directory that
//! lies on the node, read files and directories back (fetched from peers when the node does not
//! hold them), pin, unpin and stat.

use std::io::Write;
use std::path::{Path, PathBuf};

use r1_protocol::node_api::{self, AddRequest, CidRequest, r1fs_client::R1fsClient};
use tonic::transport::Channel;

use crate::node::{NodeError, rpc, unreachable_socket};

/// Directory levels `get` follows; a deeper tree is refused rather than recursed into.
const MAX_DEPTH: usize = 64;

async fn client(socket: &Path) -> Result<R1fsClient<Channel>, NodeError> {
    node_api::connect_r1fs(socket)
        .await
        .map_err(|e| unreachable_socket(socket, e))
}

fn cid(text: &str) -> CidRequest {
    CidRequest {
        cid: text.into(),
        key: String::new(),
    }
}

/// Adds `path` (on the node's file system, below its `r1fs.addDirs`) and prints its CID, and
/// with `encrypt` the content's key on a second line (`key <64 hex digits>`).
pub async fn add(
    socket: &Path,
    path: &Path,
    cid_version: u32,
    encrypt: bool,
    out: &mut impl Write,
) -> Result<(), NodeError> {
    let path = std::path::absolute(path)?;
    let added = client(socket)
        .await?
        .add(AddRequest {
            path: path.display().to_string(),
            cid_version,
            encrypt,
        })
        .await
        .map_err(rpc)?
        .into_inner();
    writeln!(out, "{}", added.cid)?;
    if !added.key.is_empty() {
        writeln!(out, "key {}", added.key)?;
    }
    Ok(())
}

/// Writes the file `root` to `out`, decrypted with `key` when given.
pub async fn cat(
    socket: &Path,
    root: &str,
    key: Option<&str>,
    out: &mut impl Write,
) -> Result<(), NodeError> {
    let mut client = client(socket).await?;
    cat_with(&mut client, root, key, out).await
}

async fn cat_with(
    client: &mut R1fsClient<Channel>,
    root: &str,
    key: Option<&str>,
    out: &mut impl Write,
) -> Result<(), NodeError> {
    let request = CidRequest {
        cid: root.into(),
        key: key.unwrap_or_default().into(),
    };
    let mut chunks = client.cat(request).await.map_err(rpc)?.into_inner();
    while let Some(chunk) = chunks.message().await.map_err(rpc)? {
        out.write_all(&chunk.data)?;
    }
    out.flush()?;
    Ok(())
}

/// Lists the directory `root`: CID, cumulative size, name.
pub async fn ls(socket: &Path, root: &str, out: &mut impl Write) -> Result<(), NodeError> {
    let entries = client(socket)
        .await?
        .ls(cid(root))
        .await
        .map_err(rpc)?
        .into_inner()
        .entries;
    for entry in entries {
        writeln!(out, "{} {:>12} {}", entry.cid, entry.tsize, entry.name)?;
    }
    Ok(())
}

/// Writes the file or directory `root` to `target` (which must not exist yet); an encrypted
/// file is decrypted with `key`.
pub async fn get(
    socket: &Path,
    root: &str,
    target: &Path,
    key: Option<&str>,
) -> Result<(), NodeError> {
    let mut client = client(socket).await?;
    let mut pending: Vec<(String, PathBuf, usize)> = vec![(root.to_owned(), target.into(), 0)];
    while let Some((root, target, depth)) = pending.pop() {
        if target.exists() {
            return Err(NodeError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists; not overwritten", target.display()),
            )));
        }
        let stat = client.stat(cid(&root)).await.map_err(rpc)?.into_inner();
        if stat.kind == "directory" {
            if depth >= MAX_DEPTH {
                return Err(NodeError::Rpc(format!(
                    "{root}: directories nested deeper than {MAX_DEPTH}"
                )));
            }
            std::fs::create_dir(&target)?;
            let entries = client
                .ls(cid(&root))
                .await
                .map_err(rpc)?
                .into_inner()
                .entries;
            for entry in entries {
                if !safe_name(&entry.name) {
                    return Err(NodeError::Rpc(format!(
                        "{root} holds an entry named {:?}, which is not a plain file name",
                        entry.name
                    )));
                }
                pending.push((entry.cid, target.join(&entry.name), depth + 1));
            }
        } else {
            let mut file = std::io::BufWriter::new(std::fs::File::create_new(&target)?);
            cat_with(&mut client, &root, key, &mut file).await?;
        }
    }
    Ok(())
}

/// A directory entry's name that names a file inside the directory, never above or beside it.
fn safe_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Pins `root` on the node (fetching it from peers) and says where the blocks came from.
pub async fn pin(socket: &Path, root: &str, out: &mut impl Write) -> Result<(), NodeError> {
    let pinned = client(socket)
        .await?
        .pin(cid(root))
        .await
        .map_err(rpc)?
        .into_inner();
    if !pinned.fetched {
        writeln!(out, "{root} was pinned already")?;
        return Ok(());
    }
    writeln!(
        out,
        "pinned {root}: {} blocks held already",
        pinned.blocks_held
    )?;
    for (peer, blocks) in &pinned.blocks_from {
        writeln!(out, "  {blocks:>6} blocks from {peer}")?;
    }
    for peer in &pinned.penalised {
        writeln!(
            out,
            "  dropped {peer}: it sent blocks that do not match their CIDs"
        )?;
    }
    Ok(())
}

/// Unpins `root`.
pub async fn unpin(socket: &Path, root: &str, out: &mut impl Write) -> Result<(), NodeError> {
    client(socket).await?.unpin(cid(root)).await.map_err(rpc)?;
    writeln!(out, "unpinned {root}")?;
    Ok(())
}

/// Prints what `root` is and how full the node's store is.
pub async fn stat(socket: &Path, root: &str, out: &mut impl Write) -> Result<(), NodeError> {
    let stat = client(socket)
        .await?
        .stat(cid(root))
        .await
        .map_err(rpc)?
        .into_inner();
    writeln!(out, "kind:   {}", stat.kind)?;
    writeln!(out, "size:   {} bytes", stat.size)?;
    writeln!(out, "links:  {}", stat.links)?;
    writeln!(
        out,
        "pinned: {}",
        if stat.owner.is_empty() {
            "no"
        } else {
            &stat.owner
        }
    )?;
    writeln!(
        out,
        "store:  {} MiB of {} MiB",
        stat.store_bytes >> 20,
        stat.store_quota >> 20
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_written() {
        for good in ["a", "photo.jpg", ".hidden", "a b"] {
            assert!(safe_name(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "/etc", "a\0b"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }
}
