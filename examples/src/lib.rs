//! Small, complete examples of typed hubs. Each example is a binary
//! (`src/bin/NAME.rs`, run with `cargo run -p hub-examples --bin NAME`)
//! whose hub and contracts live in the module of the same name here, so
//! that its tests — over real sockets and in memory — use the same typed
//! contracts as its clients.
//!
//! | binary | shows |
//! |---|---|
//! | `chat` | rooms (groups), users and roles from a bearer token, a moderator-only method, a typed client contract |
//! | `stock-ticker` | server-to-client streaming and a background producer, cancelled cleanly |
//! | `upload` | a client-to-server stream with progress |
//! | `rust-client` | the typed Rust client: automatic and stateful reconnect, any server by URL (https too), roles |
//! | `scale-out` | two hub processes and Redis, started by one command |
//! | `axum-app` | a hub inside an existing axum app, next to REST routes, with tower layers and shared state |

pub mod axum_app;
pub mod chat;
pub mod stock_ticker;
pub mod upload;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// Serves `app` on `bind` until SIGINT/SIGTERM: prints
/// `listening on http://HOST:PORT` once it accepts connections (the line
/// scripts and tests wait for), then on the signal runs `on_shutdown`
/// (stop background work, [`HubServer::shutdown`](hub_runtime::server::HubServer::shutdown))
/// before axum stops.
///
/// # Errors
/// When `bind` cannot be bound or serving fails.
pub async fn serve<F>(app: axum::Router, bind: SocketAddr, on_shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_maybe_tls(app, bind, None, on_shutdown).await
}

/// As [`serve`], over https and wss only when `tls` names a PEM
/// certificate chain and its private key (`--tls-cert`, `--tls-key`); the
/// line printed is then `listening on https://HOST:PORT`.
///
/// # Errors
/// When the files cannot be read or do not make a TLS configuration,
/// `bind` cannot be bound, or serving fails.
pub async fn serve_maybe_tls<F>(
    app: axum::Router,
    bind: SocketAddr,
    tls: Option<(&Path, &Path)>,
    on_shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let tls = tls
        .map(|(cert, key)| hub_runtime::server::tls::load_pem_files(cert, key))
        .transpose()
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let address = listener.local_addr()?;
    {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {scheme}://{address}")?;
        stdout.flush()?;
    }
    // The library's server loop: a header-read timeout against clients
    // that open connections and send nothing (and, over TLS, a handshake
    // timeout).
    let options = hub_runtime::server::ServeOptions::default();
    let shutdown = async move {
        hub_runtime::shutdown_signal().await;
        on_shutdown.await;
    };
    match tls {
        Some(config) => {
            hub_runtime::server::tls::serve_tls(listener, app, options, config, shutdown).await
        }
        None => hub_runtime::server::serve_with_shutdown(listener, app, options, shutdown).await,
    }
}

/// Logs to stderr, at `default` unless `RUST_LOG` says otherwise.
pub fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .init();
}
