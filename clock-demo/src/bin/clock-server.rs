//! The clock server: the hub at `/hubs/clock`, a background worker pushing
//! the time to every client each second, and the clock page at `/`.
//!
//! ```text
//! clock-server [--bind ADDR] [--tls-cert FILE --tls-key FILE]
//! ```
//!
//! `--bind` defaults to 127.0.0.1:5000. With `--tls-cert` and `--tls-key`
//! (PEM) everything is served over https and wss only.
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

const USAGE: &str = "usage: clock-server [--bind ADDR] [--tls-cert FILE --tls-key FILE]   (default bind 127.0.0.1:5000)";

/// The flags: where to listen, and the PEM certificate and key files when
/// serving over TLS.
struct Args {
    bind: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
}

fn parse_args() -> Result<Args, String> {
    let mut bind = SocketAddr::from(([127, 0, 0, 1], 5000));
    let mut tls_cert = None;
    let mut tls_key = None;
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        match flag.as_str() {
            "--bind" => {
                let value = words.next().ok_or("--bind needs a value")?;
                bind = value
                    .parse()
                    .map_err(|e| format!("--bind {value}: {e} (expected HOST:PORT)"))?;
            }
            "--tls-cert" => {
                tls_cert = Some(PathBuf::from(
                    words.next().ok_or("--tls-cert needs a file")?,
                ))
            }
            "--tls-key" => {
                tls_key = Some(PathBuf::from(words.next().ok_or("--tls-key needs a file")?))
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err(format!("--tls-cert and --tls-key go together\n{USAGE}")),
    };
    Ok(Args { bind, tls })
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
    let Args { bind, tls } = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("clock-server: {message}");
            return ExitCode::from(2);
        }
    };
    let tls = match tls {
        Some((cert, key)) => match hub_runtime::server::tls::load_pem_files(cert, key) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("clock-server: --tls-cert/--tls-key: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
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
    let shutdown = async move {
        hub_runtime::shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_worker.send(());
        if let Err(e) = worker.await {
            tracing::warn!("the worker ended abnormally: {e}");
        }
        // Upgraded WebSockets are not requests axum waits for: close
        // them (clients are told they may reconnect).
        shutdown_hub.shutdown().await;
    };
    let served = match tls {
        Some(config) => {
            hub_runtime::server::tls::serve_tls(listener, app(&hub), config, shutdown).await
        }
        None => {
            axum::serve(listener, app(&hub))
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clock-server: {e}");
            ExitCode::FAILURE
        }
    }
}
