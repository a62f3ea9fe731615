//! The clock server: the hub at `/hubs/clock`, a background worker pushing
//! the time to every client each second, and the clock page at `/`.
//!
//! ```text
//! clock-server --help
//! clock-server [--bind ADDR] [--metrics]     (or HUB_BIND; default 127.0.0.1:5000)
//! ```
//!
//! `--metrics` serves `GET /metrics` in the Prometheus text format.
//!
//! Prints `listening on http://HOST:PORT` once it accepts connections;
//! stops cleanly on SIGINT/SIGTERM: the worker stops, every client gets a
//! Close message (with `allowReconnect`), and the process exits with 0.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use clock_demo::{ClockHub, app, worker};
use hub_runtime::server::HubServer;
use tokio::sync::oneshot;

/// The clock server's flags.
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "The clock sample: a hub at /hubs/clock that a background worker pushes the time through each second, and the clock page at /."
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:5000")]
    bind: SocketAddr,
    /// Serve `GET /metrics` in the Prometheus text format.
    #[arg(long)]
    metrics: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let Args { bind, metrics } = <Args as clap::Parser>::parse();

    let hub = HubServer::new(ClockHub);
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("clock-server: cannot bind {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(bind);

    let (stop_worker, worker_stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(worker(hub.context(), async move {
        // A dropped sender stops the worker too.
        let _ = worker_stopped.await;
    }));

    {
        // The one line scripts and tests wait for.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on http://{address}");
        let _ = stdout.flush();
    }
    tracing::info!("open http://{address}/ for the clock page; the hub is at /hubs/clock");

    let shutdown_hub = hub.clone();
    let mut app = app(&hub);
    if metrics {
        match hub_runtime::server::metrics::prometheus_router() {
            Ok(metrics) => app = app.merge(metrics),
            Err(e) => {
                eprintln!("clock-server: --metrics: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Not `axum::serve`: hub_runtime's adds a header-read timeout.
    let served = hub_runtime::server::serve_with_shutdown(
        listener,
        app,
        hub_runtime::server::ServeOptions::default(),
        async move {
            hub_runtime::shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop_worker.send(());
            if let Err(e) = worker.await {
                tracing::warn!("the worker ended abnormally: {e}");
            }
            // Upgraded WebSockets are not requests the server waits for:
            // close them (clients are told they may reconnect).
            shutdown_hub.shutdown().await;
        },
    )
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clock-server: {e}");
            ExitCode::FAILURE
        }
    }
}
