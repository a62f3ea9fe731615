//! The clock server: the hub at `/hubs/clock`, a background worker pushing
//! the time to every client each second, and the clock page at `/`.
//!
//! ```text
//! clock-server [--bind ADDR] [--metrics]     (default 127.0.0.1:5000)
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

const USAGE: &str = "usage: clock-server [--bind ADDR] [--metrics]   (default 127.0.0.1:5000)";

fn parse_args() -> Result<(SocketAddr, bool), String> {
    let mut bind = SocketAddr::from(([127, 0, 0, 1], 5000));
    let mut metrics = false;
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        match flag.as_str() {
            "--bind" => {
                let value = words.next().ok_or("--bind needs a value")?;
                bind = value
                    .parse()
                    .map_err(|e| format!("--bind {value}: {e} (expected HOST:PORT)"))?;
            }
            "--metrics" => metrics = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok((bind, metrics))
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
    let (bind, metrics) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("clock-server: {message}");
            return ExitCode::from(2);
        }
    };

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
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            hub_runtime::shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop_worker.send(());
            if let Err(e) = worker.await {
                tracing::warn!("the worker ended abnormally: {e}");
            }
            // Upgraded WebSockets are not requests axum waits for: close
            // them (clients are told they may reconnect).
            shutdown_hub.shutdown().await;
        })
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clock-server: {e}");
            ExitCode::FAILURE
        }
    }
}
