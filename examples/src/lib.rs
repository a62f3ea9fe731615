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
//! | `rust-client` | the typed Rust client: automatic and stateful reconnect, any server by URL |
//! | `scale-out` | two hub processes and Redis, started by one command |
//! | `axum-app` | a hub inside an existing axum app, next to REST routes, with tower layers and shared state |

pub mod axum_app;
pub mod chat;
pub mod stock_ticker;
pub mod upload;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;

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
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let address = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{address}")?;
        stdout.flush()?;
    }
    // The library's server loop: a header-read timeout against clients
    // that open connections and send nothing.
    hub_runtime::server::serve_with_shutdown(
        listener,
        app,
        hub_runtime::server::ServeOptions::default(),
        async move {
            hub_runtime::shutdown_signal().await;
            on_shutdown.await;
        },
    )
    .await
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
