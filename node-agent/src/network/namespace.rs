//! Opening a socket inside a replica's network namespace from the agent's own: a short-lived
//! thread enters the namespace of the replica's process, opens the socket there and hands it
//! back; the socket stays in that namespace while the agent uses it from its own.

use std::io;

/// Runs `open` on a thread named `thread` that entered the network namespace of process `pid`,
/// and returns what it opened.
pub async fn open_in<T, F>(pid: u32, thread: &str, open: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let result = (|| {
                let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                open()
            })();
            let _ = reply.send(result);
        })?;
    answer
        .await
        .map_err(|_| io::Error::other("the namespace thread ended without an answer"))?
}
