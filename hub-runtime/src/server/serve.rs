//! Serving an axum app over plain TCP with the timeouts a public server
//! needs: [`serve`] and [`serve_with_shutdown`].
//!
//! `axum::serve` runs hyper without a timer, which turns hyper's
//! header-read timeout off: a client that sends half a request line and
//! then nothing keeps its connection (and a file descriptor) for ever.
//! These functions drive each connection with hyper's HTTP/1 builder, a
//! tokio timer and [`ServeOptions::header_read_timeout`] (30 s by default,
//! Kestrel's `RequestHeadersTimeout`), with upgrades (WebSockets) on.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// How [`serve_with_shutdown`] serves HTTP connections.
///
/// ```
/// use std::time::Duration;
/// use hub_runtime::server::ServeOptions;
///
/// let options = ServeOptions {
///     header_read_timeout: Some(Duration::from_secs(10)),
///     ..ServeOptions::default()
/// };
/// assert_eq!(ServeOptions::default().header_read_timeout, Some(Duration::from_secs(30)));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client may take to send a request's line and headers,
    /// counted from the connection's start or from the end of its previous
    /// request (default 30 s, Kestrel's `RequestHeadersTimeout`). A client
    /// that takes longer (a half-sent request, or an idle keep-alive
    /// connection) is disconnected. `None` turns it off — then only the
    /// file-descriptor limit bounds such connections.
    pub header_read_timeout: Option<Duration>,

    /// Set `TCP_NODELAY` on accepted sockets (default `true`, as Kestrel):
    /// hub messages are small and latency-sensitive.
    pub tcp_nodelay: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Some(Duration::from_secs(30)),
            tcp_nodelay: true,
        }
    }
}

/// Serves `app` on `listener` with [`ServeOptions::default`] until the
/// process ends. See [`serve_with_shutdown`].
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
/// hub_runtime::server::serve(listener, app).await
/// # }
/// ```
pub async fn serve(listener: TcpListener, app: Router) -> io::Result<()> {
    serve_with_shutdown(
        listener,
        app,
        ServeOptions::default(),
        std::future::pending(),
    )
    .await
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting, lets the HTTP requests in flight finish (idle connections
/// are closed at once) and returns.
///
/// Like `axum::serve(…).with_graceful_shutdown(…)`, plus the header-read
/// timeout of `options` ([`ServeOptions::header_read_timeout`]). Each request
/// carries the peer's address as axum's [`ConnectInfo<SocketAddr>`].
/// Upgraded WebSockets are not HTTP requests any more: close hub
/// connections from the `shutdown` future with
/// [`HubServer::shutdown`](super::HubServer::shutdown).
///
/// ```no_run
/// use hub_runtime::server::{ServeOptions, serve_with_shutdown};
/// # async fn run<H: hub_runtime::Hub>(hub: hub_runtime::server::HubServer<H>) -> std::io::Result<()> {
/// let app = axum::Router::new().nest("/hubs/clock", hub.router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
/// serve_with_shutdown(listener, app, ServeOptions::default(), async move {
///     hub_runtime::shutdown_signal().await;
///     hub.shutdown().await;
/// })
/// .await
/// # }
/// ```
///
/// # Errors
/// Never, today: accept errors (too many open files, say) are logged and
/// retried after a pause, as `axum::serve` does. The `Result` leaves room
/// for errors a caller must see.
pub async fn serve_with_shutdown<F>(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_streams(
        listener,
        app,
        options,
        |stream| std::future::ready(Ok(stream)),
        shutdown,
    )
    .await
}

/// The accept loop of [`serve_with_shutdown`], each accepted socket first
/// turned into the connection's byte stream by `handshake` (the identity
/// for plain HTTP, the TLS handshake for https) inside the connection's
/// own task: a slow handshake holds up no other connection. A failed
/// handshake drops the socket.
pub(crate) async fn serve_streams<F, H, HF, S>(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    handshake: H,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
    H: Fn(tokio::net::TcpStream) -> HF + Clone + Send + 'static,
    HF: Future<Output = io::Result<S>> + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Each connection task holds a receiver: the sender sees them all
    // closed once every connection has ended.
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if !is_connection_error(&error) {
                    // EMFILE and the like: give connections time to end.
                    tracing::error!(%error, "accept failed; retrying in 1 s");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = &mut shutdown => break,
                    }
                }
                continue;
            }
        };
        if options.tcp_nodelay {
            let _ = stream.set_nodelay(true);
        }
        let handshake = handshake.clone();
        let app = app.clone();
        let options = options.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            match handshake(stream).await {
                Ok(stream) => serve_connection(stream, remote, app, options, stopped).await,
                Err(error) => {
                    tracing::debug!(%remote, %error, "connection dropped before HTTP");
                }
            }
        });
    }
    drop(listener);
    drop(stopped);
    stop.send_replace(true);
    stop.closed().await;
    Ok(())
}

/// Errors of one incoming connection (not of the listener).
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection<S>(
    stream: S,
    remote: SocketAddr,
    app: Router,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(remote));
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.oneshot(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%remote, %error, "HTTP connection ended with an error");
                }
                return;
            }
            changed = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
