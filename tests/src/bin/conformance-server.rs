//! The conformance server: the hub that every client is tested against
//! (the official JavaScript client, the Python clients, our Rust client),
//! at `/hubs/test`.
//!
//! ```text
//! conformance-server --help
//! ```
//!
//! Hub methods: `Echo`, `Add`, `GetConnectionId`, `Broadcast`,
//! `SendToOthers`, `SendToConnection`, `JoinGroup`, `LeaveGroup`,
//! `SendToGroup`, `SendToUser`, `Whoami`, `Fail`, `AskClient` and
//! `AskConnection` (client results), `Echo2` (any value back), the server
//! stream `Counter` and the upload stream `Sum`. Clients receive `Receive`
//! and answer `Question`.
//!
//! Every transport is served by default — WebSockets, Server-Sent Events
//! and Long Polling — with both hub protocols, JSON and MessagePack
//! (except MessagePack over Server-Sent Events, which carry text only).
//! `--transports` limits the transports served (negotiate lists only
//! those), so that clients must fall back; `--stateful-reconnect` lets
//! clients turn stateful reconnect on (over WebSockets).
//! `--refuse-event-streams` answers every Server-Sent Events request with
//! 403 although negotiate offers them, as a proxy that refuses event
//! streams would: clients must fall back from there to Long Polling. (Not
//! 502: the `eventsource` package behind the official client in Node
//! retries a 5xx forever, even after the client gave up on it.)
//!
//! A bearer token `user-NAME` (header or `access_token` query parameter)
//! is the user `NAME`; any other token is refused with 401; no token is
//! anonymous.
//!
//! Prints `listening on http://HOST:PORT` once it accepts connections; stops
//! cleanly on SIGINT/SIGTERM, sending every client a Close message.
//! `--tls-cert FILE --tls-key FILE` (PEM) serves every endpoint over https
//! and wss instead, and prints `listening on https://HOST:PORT`.
//!
//! `--redis URL` joins the Redis backplane: processes sharing the URL are
//! one hub.
//!
//! `--allowed-origins ORIGIN[,ORIGIN…]` refuses requests from other browser
//! origins with 403 (requests without `Origin` are served);
//! `--header-read-timeout-ms MS` (default 30 000) disconnects clients that
//! take longer to send a request's line and headers; `--max-connections N`
//! refuses connections beyond N with 503.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use hub_runtime::hub::{Stream, UploadStream};
use hub_runtime::server::{
    HttpTransports, HubOptions, HubServer, ServeOptions, Unauthorized, bearer_token,
    serve_with_shutdown,
};
use hub_runtime::{CallContext, HubError, hub};
use hub_tests::conformance::{self, ConformanceHub, ConformanceHubContract};

/// The conformance hub, at `/hubs/test`: implements the contract
/// [`ConformanceHub`] of the hub-tests library.
struct TestHub;

#[hub(client = conformance::ConformanceClient)]
impl ConformanceHub for TestHub {
    async fn echo(&self, message: String) -> String {
        message
    }

    async fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    async fn get_connection_id(&self, ctx: &CallContext<Self>) -> String {
        ctx.connection_id().to_string()
    }

    async fn broadcast(&self, ctx: &CallContext<Self>, message: String) -> Result<(), HubError> {
        ctx.clients().all().receive(message).await
    }

    async fn send_to_others(
        &self,
        ctx: &CallContext<Self>,
        message: String,
    ) -> Result<(), HubError> {
        ctx.clients().others().receive(message).await
    }

    async fn send_to_connection(
        &self,
        ctx: &CallContext<Self>,
        connection_id: String,
        message: String,
    ) -> Result<(), HubError> {
        ctx.clients().client(connection_id).receive(message).await
    }

    async fn join_group(&self, ctx: &CallContext<Self>, group: String) -> Result<(), HubError> {
        ctx.groups().add(ctx.connection_id(), group).await
    }

    async fn leave_group(&self, ctx: &CallContext<Self>, group: String) -> Result<(), HubError> {
        ctx.groups().remove(ctx.connection_id(), group).await
    }

    async fn send_to_group(
        &self,
        ctx: &CallContext<Self>,
        group: String,
        message: String,
    ) -> Result<(), HubError> {
        ctx.clients().group(group).receive(message).await
    }

    async fn send_to_user(
        &self,
        ctx: &CallContext<Self>,
        user: String,
        message: String,
    ) -> Result<(), HubError> {
        ctx.clients().user(user).receive(message).await
    }

    async fn whoami(&self, ctx: &CallContext<Self>) -> Option<String> {
        ctx.user_id().map(str::to_owned)
    }

    async fn fail(&self, message: String) -> Result<(), HubError> {
        Err(HubError::new(message))
    }

    async fn ask_client(
        &self,
        ctx: &CallContext<Self>,
        question: String,
    ) -> Result<String, HubError> {
        ctx.clients().caller().question(question).await
    }

    async fn ask_connection(
        &self,
        ctx: &CallContext<Self>,
        connection_id: String,
        question: String,
    ) -> Result<String, HubError> {
        ctx.clients().client(connection_id).question(question).await
    }

    async fn echo2(&self, value: serde_json::Value) -> serde_json::Value {
        value
    }

    /// Streams `0, 1, …, count-1`, `delay_ms` apart; a CancelInvocation
    /// drops the stream, which stops it.
    async fn counter(&self, count: i64, delay_ms: u64) -> impl Stream<Item = i64> {
        let delay = Duration::from_millis(delay_ms);
        futures_util::stream::unfold(0_i64, move |next| async move {
            if next >= count {
                return None;
            }
            if next > 0 {
                tokio::time::sleep(delay).await;
            }
            Some((next, next + 1))
        })
    }

    /// Sums a client-to-server stream once the client completes it.
    async fn sum(&self, mut numbers: UploadStream<i64>) -> Result<i64, HubError> {
        let mut total = 0_i64;
        while let Some(number) = numbers.next().await {
            total = total.wrapping_add(number?);
        }
        Ok(total)
    }
}

/// `Authorization: Bearer user-NAME` (or `access_token=user-NAME`) is the
/// user `NAME`; any other token is refused; no token is anonymous.
fn user_from_token(request: &http::request::Parts) -> Result<Option<String>, Unauthorized> {
    match bearer_token(request) {
        None => Ok(None),
        Some(token) => match token.strip_prefix("user-") {
            Some(name) if !name.is_empty() => Ok(Some(name.to_owned())),
            _ => Err(Unauthorized),
        },
    }
}

/// The conformance server's flags (see `../shared/conformance-hub.md`).
#[derive(Debug, clap::Parser)]
// A flag given twice takes its last value: the tests start the server with
// `--bind 127.0.0.1:0` and may name a fixed port after it.
#[command(
    version,
    args_override_self = true,
    about = "The conformance hub every client is tested against, at /hubs/test."
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:5000")]
    bind: SocketAddr,
    /// Keep-alive interval in milliseconds (default: ASP.NET Core's 15 s).
    #[arg(long = "keep-alive-ms", value_name = "MS", value_parser = parse_millis)]
    keep_alive: Option<Duration>,
    /// The hub's receive limit in bytes (default: ASP.NET Core's 32 KB).
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<usize>,
    /// Join the Redis backplane at this URL: processes sharing it are one hub
    /// (rediss://… over TLS, trusting SSL_CERT_FILE or the system's roots).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Serve only these transports: websockets, sse, longpolling (comma-separated).
    #[arg(long, value_name = "LIST", value_parser = parse_transports)]
    transports: Option<HttpTransports>,
    /// Let clients turn stateful reconnect on (over WebSockets).
    #[arg(long)]
    stateful_reconnect: bool,
    /// Answer every Server-Sent Events request with 403 (negotiate still offers them).
    #[arg(long)]
    refuse_event_streams: bool,
    /// Disconnect a client that takes longer than this to send a request's
    /// line and headers, in milliseconds (default: Kestrel's 30 s).
    #[arg(long = "header-read-timeout-ms", value_name = "MS", value_parser = parse_millis, default_value = "30000")]
    header_read_timeout: Duration,
    /// Browser origins allowed to use the hub (comma-separated); a request
    /// with another `Origin` gets 403, one without `Origin` is served.
    #[arg(long, value_name = "ORIGIN[,ORIGIN…]", value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// The most hub connections at once; more get 503 (default: no limit).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Serve https and wss only, with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Serve `GET /metrics` in the Prometheus text format.
    #[arg(long)]
    metrics: bool,
}

fn parse_millis(ms: &str) -> Result<Duration, String> {
    ms.parse()
        .map(Duration::from_millis)
        .map_err(|e| format!("{e}"))
}

/// A GET that asks for an event stream gets 403; the rest passes.
async fn refuse_event_streams(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let event_stream = request.method() == http::Method::GET
        && request
            .headers()
            .get_all(http::header::ACCEPT)
            .iter()
            .any(|accept| {
                accept
                    .as_bytes()
                    .windows(17)
                    .any(|w| w == b"text/event-stream")
            });
    if event_stream {
        return axum::response::IntoResponse::into_response(http::StatusCode::FORBIDDEN);
    }
    next.run(request).await
}

/// `--transports websockets,serversentevents,longpolling` (any subset).
fn parse_transports(list: &str) -> Result<HttpTransports, String> {
    let mut transports = HttpTransports {
        web_sockets: false,
        server_sent_events: false,
        long_polling: false,
    };
    for name in list.split(',').map(str::trim) {
        match name.to_ascii_lowercase().as_str() {
            "websockets" | "ws" => transports.web_sockets = true,
            "serversentevents" | "sse" => transports.server_sent_events = true,
            "longpolling" | "lp" => transports.long_polling = true,
            other => return Err(format!("unknown transport {other}")),
        }
    }
    Ok(transports)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = <Args as clap::Parser>::parse();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match hub_runtime::server::tls::load_pem_files(cert, key) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("conformance-server: --tls-cert/--tls-key: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        // clap requires both or neither.
        _ => None,
    };

    let mut options = HubOptions::default();
    if let Some(interval) = args.keep_alive {
        options.keep_alive_interval = interval;
    }
    if let Some(limit) = args.max_message_size {
        options.maximum_receive_message_size = Some(limit);
    }
    if let Some(transports) = args.transports {
        options.transports = transports;
    }
    options.allow_stateful_reconnects = args.stateful_reconnect;
    options.allowed_origins = args.allowed_origins.clone();
    options.maximum_connections = args.max_connections;
    // The recorder comes first: the backplane registers its metrics when
    // it connects.
    let metrics = if args.metrics {
        match hub_runtime::server::metrics::prometheus_router() {
            Ok(metrics) => Some(metrics),
            Err(e) => {
                eprintln!("conformance-server: --metrics: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let mut builder = HubServer::builder(TestHub)
        .options(options)
        .user_id_provider(user_from_token);
    if let Some(url) = &args.redis {
        match hub_runtime::backplane::RedisBackplane::connect(url.as_str()).await {
            Ok(backplane) => builder = builder.backplane(backplane),
            Err(e) => {
                eprintln!("conformance-server: --redis {url}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let hub = builder.build();
    let mut app = axum::Router::new().nest("/hubs/test", hub.router());
    if let Some(metrics) = metrics {
        app = app.merge(metrics);
    }
    if args.refuse_event_streams {
        app = app.layer(axum::middleware::from_fn(refuse_event_streams));
    }

    let listener = match tokio::net::TcpListener::bind(args.bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("conformance-server: cannot bind {}: {e}", args.bind);
            return std::process::ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(args.bind);
    let mut stdout = std::io::stdout().lock();
    // The one line the test harness waits for.
    let scheme = if tls.is_some() { "https" } else { "http" };
    let _ = writeln!(stdout, "listening on {scheme}://{address}");
    let _ = stdout.flush();
    drop(stdout);

    let shutdown_hub = hub.clone();
    let shutdown = async move {
        hub_runtime::shutdown_signal().await;
        shutdown_hub.shutdown().await;
    };
    let served = match tls {
        // axum-server's TLS accept loop has its own handshake timeout.
        Some(config) => hub_runtime::server::tls::serve_tls(listener, app, config, shutdown).await,
        None => {
            let serve_options = ServeOptions {
                header_read_timeout: Some(args.header_read_timeout),
                ..ServeOptions::default()
            };
            serve_with_shutdown(listener, app, serve_options, shutdown).await
        }
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
