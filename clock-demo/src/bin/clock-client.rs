//! The clock console client: the sample's `ClockHubClient`.
//!
//! ```text
//! clock-client --help
//! clock-client [--url URL]      (or HUB_URL; default http://127.0.0.1:5000/hubs/clock)
//! ```
//!
//! Implements [`IClock`] and registers it with the connection, asks the
//! hub for its time through the typed [`IClockHubProxy`] (no method-name
//! string anywhere), then prints
//! every time the server pushes, one ISO 8601 instant a line on stdout
//! (status messages go to stderr). It waits for the server when it is not
//! up yet, reconnects by itself when the server restarts, and exits with 0
//! on Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clock_demo::{IClock, IClockHubProxy};
use hub_runtime::Timestamp;
use hub_runtime::client::{HubConnection, HubConnectionEvent, HubConnectionState};
use tokio::sync::broadcast::{self, error::RecvError};

/// How long to wait between two attempts to start the connection.
const START_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The sample's `ClockHubClient`: what the server's `IClock` calls land on.
struct ClockHubClient;

impl IClock for ClockHubClient {
    async fn show_time(&self, now: Timestamp) {
        // Millisecond precision, as `Date.prototype.toISOString` prints.
        let now = Timestamp::from_unix_millis(now.unix_millis()).unwrap_or(now);
        let mut stdout = std::io::stdout().lock();
        // Flushed at once, so that a pipe (a test, `| tee`) sees each tick.
        let _ = writeln!(stdout, "{now}");
        let _ = stdout.flush();
    }
}

/// The clock client's flags.
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "The clock sample's console client: prints every time the clock hub pushes, reconnecting by itself."
)]
struct Args {
    /// The clock hub's URL.
    #[arg(
        long,
        env = "HUB_URL",
        default_value = "http://127.0.0.1:5000/hubs/clock"
    )]
    url: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let Args { url } = <Args as clap::Parser>::parse();
    let connection = match HubConnection::builder(url.as_str())
        .automatic_reconnect()
        .handlers(ClockHubClient.into_handlers())
        .build()
    {
        Ok(connection) => connection,
        Err(e) => {
            eprintln!("clock-client: {e}");
            return ExitCode::from(2);
        }
    };
    let reporter = tokio::spawn(report_events(connection.events()));

    tokio::select! {
        () = stay_connected(&connection, &url) => {}
        () = hub_runtime::shutdown_signal() => {}
    }
    connection.stop().await;
    reporter.abort();
    eprintln!("clock-client: stopped");
    ExitCode::SUCCESS
}

/// Keeps the connection up for as long as the process runs: starts it,
/// retrying every second while the server is unreachable (the sample's
/// `StartAsync` loop), and starts it again whenever automatic reconnect
/// gives up, so that a server that is down for minutes is picked up again.
async fn stay_connected(connection: &HubConnection, url: &str) {
    loop {
        let mut announced = false;
        loop {
            match connection.start().await {
                Ok(()) => break,
                Err(e) => {
                    if !announced {
                        eprintln!("clock-client: cannot connect to {url} ({e}); retrying…");
                        announced = true;
                    }
                    tokio::time::sleep(START_RETRY_DELAY).await;
                }
            }
        }
        eprintln!(
            "clock-client: connected to {url} (connection id {})",
            connection.connection_id().as_deref().unwrap_or("none")
        );
        // A typed call: no method-name string, the result is a `Timestamp`.
        match connection.hub::<IClockHubProxy>().get_time().await {
            Ok(now) => eprintln!("clock-client: the server's time is {now}"),
            Err(e) => eprintln!("clock-client: cannot ask the server for the time ({e})"),
        }
        let mut state = connection.state_changes();
        // The channel lives as long as `connection`; an error cannot happen.
        let _ = state
            .wait_for(|state| *state == HubConnectionState::Disconnected)
            .await;
    }
}

/// Tells the user what the connection is doing.
async fn report_events(mut events: broadcast::Receiver<HubConnectionEvent>) {
    loop {
        match events.recv().await {
            Ok(HubConnectionEvent::Reconnecting { error }) => match error {
                Some(error) => eprintln!("clock-client: connection lost ({error}); reconnecting…"),
                None => eprintln!("clock-client: the server closed the connection; reconnecting…"),
            },
            Ok(HubConnectionEvent::Reconnected { connection_id }) => eprintln!(
                "clock-client: reconnected (connection id {})",
                connection_id.as_deref().unwrap_or("none")
            ),
            Ok(HubConnectionEvent::Closed {
                error: Some(error), ..
            }) => {
                eprintln!("clock-client: connection closed ({error}); starting again…");
            }
            Ok(HubConnectionEvent::Closed { error: None, .. }) => {}
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
