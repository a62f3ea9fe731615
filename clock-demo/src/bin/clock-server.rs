//! The clock server: the hub at `/hubs/clock`, a background worker pushing
//! the time to every client each second, and the clock page at `/`.
//!
//! ```text
//! clock-server --help
//! clock-server [--bind ADDR] [--tls-cert FILE --tls-key FILE] [--metrics]
//! ```
//!
//! `--bind` (or `HUB_BIND`) defaults to 127.0.0.1:5000. With `--tls-cert` and `--tls-key`
//! (PEM) everything is served over https and wss only.
//!
//! `--metrics` serves `GET /metrics` in the Prometheus text format.
//!
//! Prints `listening on http://HOST:PORT` (`https://` with TLS) once it
//! accepts connections;
//! stops cleanly on SIGINT/SIGTERM: the worker stops, every client gets a
//! Close message (with `allowReconnect`), and the process exits with 0.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clock_demo::{ClockHub, app, worker};
use hub_runtime::server::HubServer;
use tokio::sync::oneshot;

/// The clock server's flags.
#[derive(Debug, clap::Parser)]
// A flag given twice: the last one wins (scripts and the test harness
// append their own `--bind` to a default one).
#[command(
    version,
    args_override_self = true,
    about = "The clock sample: a hub at /hubs/clock that a background worker pushes the time through each second, and the clock page at /."
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:5000")]
    bind: SocketAddr,
    /// Serve `GET /metrics` in the Prometheus text format.
    #[arg(long)]
    metrics: bool,
    /// Serve https and wss only, with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
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
    let Args {
        bind,
        tls_cert,
        tls_key,
        metrics,
    } = <Args as clap::Parser>::parse();
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => match hub_runtime::server::tls::load_pem_files(cert, key) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("clock-server: --tls-cert/--tls-key: {e}");
                return ExitCode::FAILURE;
            }
        },
        // clap requires both or neither.
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };

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
        let _ = writeln!(stdout, "listening on {scheme}://{address}");
        let _ = stdout.flush();
    }
    tracing::info!("open {scheme}://{address}/ for the clock page; the hub is at /hubs/clock");

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
    let shutdown = async move {
        hub_runtime::shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_worker.send(());
        if let Err(e) = worker.await {
            tracing::warn!("the worker ended abnormally: {e}");
        }
        // Upgraded WebSockets are not requests the server waits for:
        // close them (clients are told they may reconnect).
        shutdown_hub.shutdown().await;
    };
    // Not `axum::serve`: hub_runtime's adds a header-read timeout.
    let options = hub_runtime::server::ServeOptions::default();
    let served = match tls {
        Some(config) => {
            hub_runtime::server::tls::serve_tls(listener, app, options, config, shutdown).await
        }
        None => hub_runtime::server::serve_with_shutdown(listener, app, options, shutdown).await,
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clock-server: {e}");
            ExitCode::FAILURE
        }
    }
}
