//! Serving a router so that slow or many clients cannot hold the oracle: a cap on open
//! connections (past it the listener stops accepting, so further clients wait in the kernel's
//! backlog until a slot frees), a deadline for a request's headers (which also closes an idle
//! keep-alive connection: hyper starts that clock as soon as the connection is ready for its
//! next request), one for its body, one for the whole request, and a longest life per
//! connection. A response marked [`LongStream`] (a followed log, a shell) outlives the
//! connection's life: the connection closes once it ends, within [`ServeLimits::stream_lifetime`].

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use r1_crds::api::wire::ErrorBody;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Error code of a request that did not complete in time.
pub const TIMEOUT: &str = "timeout";

/// How long a connection that was asked to close may still finish its request.
pub const GRACE: Duration = Duration::from_secs(10);

/// Largest read buffer per connection, which bounds the request head.
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// What one listener allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest wait for a request's headers, counted from when the connection is ready for the
    /// request: the first request's headers, and the idle time between keep-alive requests.
    pub header_read: Duration,
    /// Longest a request's body may take to arrive, from its headers on.
    pub body_read: Duration,
    /// Longest a request may take from its headers to its response (body read and handler).
    pub request: Duration,
    /// Longest a connection stays open; then it is asked to close after its current request.
    pub connection_lifetime: Duration,
    /// How long a connection asked to close may still finish its request.
    pub grace: Duration,
    /// Longest a [`LongStream`] response keeps its connection open past its lifetime.
    pub stream_lifetime: Duration,
}

/// Marks a response whose body streams for as long as its reader wants (a followed log, a
/// shell): its connection is not cut [`ServeLimits::grace`] after the connection's lifetime, but left to
/// finish the stream, within [`ServeLimits::stream_lifetime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongStream;

impl Default for ServeLimits {
    /// 768 connections (under the common 1024 open-file limit, above what a few hundred slow
    /// clients take); 10 s for headers or idling, 30 s for a body, 60 s for a request, five
    /// minutes per connection, and a minute more than a node's longest session for a stream.
    fn default() -> Self {
        Self {
            max_connections: 768,
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            request: Duration::from_secs(60),
            connection_lifetime: Duration::from_secs(300),
            grace: GRACE,
            stream_lifetime: Duration::from_secs(3660),
        }
    }
}

/// Serves `router` on `listener` within the default [`ServeLimits`] until the process ends.
pub async fn serve_api(listener: TcpListener, router: Router) -> std::io::Result<()> {
    serve_router(
        listener,
        router,
        ServeLimits::default(),
        std::future::pending(),
    )
    .await
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets open
/// connections finish their requests (for at most [`ServeLimits::grace`]). Handlers see the peer address as
/// [`ConnectInfo<SocketAddr>`].
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, router, limits, closed).await;
            drop(permit);
        });
    }
    drop(listener);
    closing.send_replace(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _drained = slots.acquire_many(all).await;
    Ok(())
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ServeLimits,
    mut closed: watch::Receiver<bool>,
) {
    let streams = Arc::new(());
    let counted = streams.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let router = router.clone();
        let streams = counted.clone();
        async move {
            let response = answer(router, request, peer, limits).await;
            Ok::<_, std::convert::Infallible>(count_long_stream(response, streams))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(MAX_BUF_BYTES);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let shutting_down = tokio::select! {
        result = connection.as_mut() => return log_end(peer, result),
        () = tokio::time::sleep(limits.connection_lifetime) => false,
        _ = closed.wait_for(|closed| *closed) => true,
    };
    connection.as_mut().graceful_shutdown();
    // `streams` is held here and by the service, and once more by each long stream.
    let streaming = Arc::strong_count(&streams) > 2;
    let grace = if streaming && !shutting_down {
        limits.stream_lifetime
    } else {
        limits.grace
    };
    match tokio::time::timeout(grace, connection).await {
        Ok(result) => log_end(peer, result),
        Err(_) => tracing::debug!(%peer, "connection dropped after its grace period"),
    }
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

/// `response`, holding a clone of `streams` until its body ends when it is a [`LongStream`].
fn count_long_stream(response: Response, streams: Arc<()>) -> Response {
    if response.extensions().get::<LongStream>().is_none() {
        return response;
    }
    response.map(|body| {
        Body::new(CountedBody {
            inner: body,
            _streams: streams,
        })
    })
}

/// A response body that holds its connection's stream count while it lives.
struct CountedBody {
    inner: Body,
    _streams: Arc<()>,
}

impl HttpBody for CountedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs one request through `router` within the request deadline, its body within the body
/// deadline.
async fn answer(
    router: Router,
    request: Request<Incoming>,
    peer: SocketAddr,
    limits: ServeLimits,
) -> Response {
    let mut request = request.map(|body| Body::new(DeadlineBody::new(body, limits.body_read)));
    request.extensions_mut().insert(ConnectInfo(peer));
    match tokio::time::timeout(limits.request, router.oneshot(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::warn!(%peer, "request timed out");
            timeout_response(StatusCode::SERVICE_UNAVAILABLE, "the request took too long")
        }
    }
}

/// The JSON refusal of a request that ran out of time.
pub fn timeout_response(status: StatusCode, reason: &str) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: TIMEOUT.into(),
            reason: reason.into(),
            errors: Vec::new(),
        }),
    )
        .into_response()
}

/// A request body that fails once its deadline passes before it ends.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, within: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + within)),
        }
    }
}

/// The body did not arrive in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimedOut;

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl Error for BodyTimedOut {}

impl BodyTimedOut {
    /// Whether `error` or anything it wraps is a body deadline.
    pub fn caused(error: &(dyn Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.is::<BodyTimedOut>() {
                return true;
            }
            next = e.source();
        }
        false
    }
}

impl HttpBody for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = Box<dyn Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
