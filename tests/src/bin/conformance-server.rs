//! The conformance server: the hub that every client is tested against
//! (the official JavaScript client, the Python clients, our Rust client),
//! at `/hubs/test`.
//!
//! ```text
//! conformance-server --help
//! conformance-server --bind 127.0.0.1:0 --max-message-size 2097152
//! ```
//!
//! Hub methods: `Echo`, `Add`, `GetConnectionId`, `Broadcast`,
//! `SendToOthers`, `SendToConnection`, `JoinGroup`, `LeaveGroup`,
//! `SendToGroup`, `SendToUser`, `Whoami`, `Fail`, `AskClient` and
//! `AskConnection` (client results), `Echo2` (any value back), the server
//! stream `Counter` and the upload stream `Sum`; and, for identity,
//! authorization, caller context and filters: `Claims`, `AdminOnly`
//! (`#[authorize(roles("admin"))]`), `AuthenticatedOnly` (`#[authorize]`),
//! `RequestHeader`, `SetItem`/`GetItem` (typed per-connection items),
//! `AbortMe`, `Kick` (`HubContext::abort_connection`) and
//! `InvocationCount`. Clients receive `Receive` and answer `Question`.
//! A hub filter fails every invocation whose first argument is
//! `"blocked-by-filter"` and refuses connections whose request has
//! `reject=filter` in its query. `/hubs/secure` is a hub for authenticated
//! users only (`#[authorize]` on the hub: 401 at negotiate) with `Whoami`.
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
//! is the user `NAME`, optionally followed by `.role-ROLE` claims and one
//! `.exp-SECONDS` expiry (Unix time); any other token, or an expired one,
//! is refused with 401; no token is anonymous. A connection is closed when
//! its token expires (`close_on_authentication_expiration`).
//!
//! Prints `listening on http://HOST:PORT` once it accepts connections; stops
//! cleanly on SIGINT/SIGTERM, sending every client a Close message.
//! `--tls-cert FILE --tls-key FILE` (PEM) serves every endpoint over https
//! and wss instead, and prints `listening on https://HOST:PORT`.
//!
//! `--redis URL` joins the Redis backplane: processes sharing the URL are
//! one hub. `--redis-cluster URL[,URL…]` does the same on a Redis Cluster
//! given some of its nodes.
//!
//! `--allowed-origins ORIGIN[,ORIGIN…]` refuses requests from other browser
//! origins with 403 (requests without `Origin` are served);
//! `--header-read-timeout-ms MS` (default 30 000) disconnects clients that
//! take longer to send a request's line and headers; `--max-connections N`
//! refuses connections beyond N with 503.
//!
//! Timeouts, in milliseconds, for tests that need them short (each sets the
//! `HubOptions` field of the same name; ASP.NET Core's defaults otherwise):
//! `--keep-alive-ms`, `--client-timeout-ms`, `--handshake-timeout-ms`,
//! `--disconnect-timeout-ms` (a negotiated connection waiting for its
//! transport, a Long Polling connection for its next poll, a stateful
//! connection for its client).

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use hub_runtime::filter::{HubFilter, HubInvocation, NextConnected, NextInvocation};
use hub_runtime::hub::{ConnectionContext, InvocationError, MethodOutput, Stream, UploadStream};
use hub_runtime::server::{
    Authenticator, HttpTransports, HubOptions, HubServer, ServeOptions, Unauthorized, bearer_token,
    serve_with_shutdown,
};
use hub_runtime::{CallContext, HubError, Identity, authorize, hub};
use hub_tests::conformance::{
    self, CallerClaims, ConformanceHub, ConformanceHubContract, ConformanceSecureHub,
    ConformanceSecureHubContract,
};

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

    /// The caller's user and roles.
    async fn claims(&self, ctx: &CallContext<Self>) -> CallerClaims {
        CallerClaims {
            user: ctx.user_id().map(str::to_owned),
            roles: ctx.identity().roles().map(str::to_owned).collect(),
        }
    }

    /// A header of the request that opened the caller's connection.
    async fn request_header(&self, ctx: &CallContext<Self>, name: String) -> Option<String> {
        let value = ctx.request()?.headers.get(name.as_str())?;
        Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// Stores `value` under `key` for the caller's connection.
    async fn set_item(&self, ctx: &CallContext<Self>, key: String, value: String) {
        ctx.items()
            .update(|items: &mut StoredItems| items.0.insert(key, value));
    }

    /// What the caller's connection stored under `key`.
    async fn get_item(&self, ctx: &CallContext<Self>, key: String) -> Option<String> {
        ctx.items()
            .update(|items: &mut StoredItems| items.0.get(&key).cloned())
    }

    /// Only for callers with the role `admin` (declared, not checked here).
    #[authorize(roles("admin"))]
    async fn admin_only(&self) -> String {
        "admin ok".into()
    }

    /// Only for authenticated callers.
    #[authorize]
    async fn authenticated_only(&self) -> String {
        "authenticated ok".into()
    }

    /// How many earlier invocations of this connection authorization and
    /// the filter passed on to their method (the filter counts them).
    async fn invocation_count(&self, ctx: &CallContext<Self>) -> u64 {
        ctx.items()
            .get::<PassedInvocations>()
            .map_or(0, |passed| passed.0.saturating_sub(1))
    }

    /// Aborts the caller's connection.
    async fn abort_me(&self, ctx: &CallContext<Self>) {
        ctx.abort();
    }

    /// Aborts connection `connection_id` (on any node); `true` if it was
    /// connected here.
    async fn kick(&self, ctx: &CallContext<Self>, connection_id: String) -> Result<bool, HubError> {
        ctx.hub_context().abort_connection(connection_id).await
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

/// The strings a connection stored with `SetItem`: one of its typed items.
#[derive(Clone, Default)]
struct StoredItems(std::collections::HashMap<String, String>);

/// How many invocations of a connection the filter passed on (this one
/// included): one of the connection's typed items.
#[derive(Clone, Copy, Default)]
struct PassedInvocations(u64);

/// The hub filter of `/hubs/test`: an invocation whose first argument is
/// `"blocked-by-filter"` fails without running; a connection whose
/// request has `reject=filter` in its query is refused.
struct ConformanceFilter;

impl HubFilter for ConformanceFilter {
    async fn invoke(
        &self,
        call: &HubInvocation<'_>,
        next: NextInvocation<'_>,
    ) -> Result<MethodOutput, InvocationError> {
        let first = (!call.arguments.is_empty())
            .then(|| call.arguments.bind::<String>(0).ok())
            .flatten();
        if first.as_deref() == Some("blocked-by-filter") {
            return Err(InvocationError::blocked("blocked by filter"));
        }
        call.connection
            .items()
            .update(|passed: &mut PassedInvocations| passed.0 += 1);
        next.run().await
    }

    async fn on_connected(
        &self,
        connection: &Arc<ConnectionContext>,
        next: NextConnected<'_>,
    ) -> Result<(), HubError> {
        let query = connection
            .request()
            .and_then(|request| request.uri.query())
            .unwrap_or_default();
        if query.split('&').any(|pair| pair == "reject=filter") {
            return Err(HubError::new("rejected by filter"));
        }
        next.run().await
    }
}

/// `/hubs/secure`: authenticated users only, for the whole hub (an
/// anonymous negotiate gets 401).
struct SecureHub;

#[hub(client = conformance::ConformanceClient)]
#[authorize]
impl ConformanceSecureHub for SecureHub {
    async fn whoami(&self, ctx: &CallContext<Self>) -> Option<String> {
        ctx.user_id().map(str::to_owned)
    }
}

/// The conformance tokens: `Authorization: Bearer user-NAME` (or
/// `access_token=user-NAME`) is the user `NAME`, followed by any number of
/// `.role-ROLE` and at most one `.exp-SECONDS` (Unix time); any other
/// token, or one whose expiry has passed, is refused; no token is
/// anonymous.
struct ConformanceTokens;

impl Authenticator for ConformanceTokens {
    async fn authenticate(&self, request: &http::request::Parts) -> Result<Identity, Unauthorized> {
        match bearer_token(request) {
            None => Ok(Identity::anonymous()),
            Some(token) => parse_token(&token, SystemTime::now()).ok_or(Unauthorized),
        }
    }
}

/// The identity of a conformance token at `now`; `None` for a malformed
/// or expired one.
fn parse_token(token: &str, now: SystemTime) -> Option<Identity> {
    fn word(text: &str) -> Option<&str> {
        let valid = !text.is_empty()
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
        valid.then_some(text)
    }
    let mut parts = token.split('.');
    let name = word(parts.next()?.strip_prefix("user-")?)?;
    let mut identity = Identity::user(name);
    let mut expiry = None;
    for claim in parts {
        if let Some(role) = claim.strip_prefix("role-") {
            identity = identity.with_role(word(role)?);
        } else if let Some(seconds) = claim.strip_prefix("exp-") {
            let valid = !seconds.is_empty() && seconds.bytes().all(|b| b.is_ascii_digit());
            if !valid || expiry.is_some() {
                return None;
            }
            // A number past what time can hold is a time that never comes.
            expiry = Some(
                seconds
                    .parse::<u64>()
                    .ok()
                    .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
                    .unwrap_or(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 64)),
            );
        } else {
            return None;
        }
    }
    if let Some(expiry) = expiry {
        if now >= expiry {
            return None;
        }
        identity = identity.with_expiry(expiry);
    }
    Some(identity)
}

/// The conformance server's flags (see `../shared/conformance-hub.md`).
#[derive(Debug, clap::Parser)]
// A flag given twice: the last one wins (scripts and the test harness
// append their own `--bind` to a default one).
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
    #[arg(long = "max-message-size", value_name = "BYTES")]
    max_message_size: Option<usize>,
    /// Join the Redis backplane at this URL: processes sharing it are one hub
    /// (rediss://… over TLS, trusting SSL_CERT_FILE or the system's roots).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Join the Redis backplane on the Redis Cluster these nodes belong to
    /// (comma-separated `redis://HOST:PORT`): processes sharing it are one hub.
    #[arg(long, value_name = "URL[,URL…]", conflicts_with = "redis")]
    redis_cluster: Option<String>,
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
    /// Client timeout in milliseconds (default: ASP.NET Core's 30 s); also
    /// the time a POST body has to arrive whole.
    #[arg(long = "client-timeout-ms", value_name = "MS", value_parser = parse_millis)]
    client_timeout: Option<Duration>,
    /// The time a client has to send its hub handshake after the transport
    /// opened, in milliseconds (default: ASP.NET Core's 15 s); a late one
    /// gets `Handshake was canceled.`
    #[arg(long = "handshake-timeout-ms", value_name = "MS", value_parser = parse_millis)]
    handshake_timeout: Option<Duration>,
    /// Disconnect timeout in milliseconds (default: ASP.NET Core's 15 s): how
    /// long a negotiated connection waits for its transport request, a Long
    /// Polling connection for its next poll, and a stateful-reconnect
    /// connection for its client to come back.
    #[arg(long = "disconnect-timeout-ms", value_name = "MS", value_parser = parse_millis)]
    disconnect_timeout: Option<Duration>,
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
    if let Some(timeout) = args.client_timeout {
        options.client_timeout_interval = timeout;
    }
    if let Some(timeout) = args.handshake_timeout {
        options.handshake_timeout = timeout;
    }
    if let Some(timeout) = args.disconnect_timeout {
        options.disconnect_timeout = timeout;
    }
    // Tokens with `exp-SECONDS` close their connections when they expire.
    options.close_on_authentication_expiration = true;
    let secure = HubServer::builder(SecureHub)
        .options(options.clone())
        .authenticator(ConformanceTokens)
        .build();
    let mut builder = HubServer::builder(TestHub)
        .options(options)
        .authenticator(ConformanceTokens)
        .filter(ConformanceFilter);
    if let Some(url) = &args.redis {
        match hub_runtime::backplane::RedisBackplane::connect(url.as_str()).await {
            Ok(backplane) => builder = builder.backplane(backplane),
            Err(e) => {
                eprintln!("conformance-server: --redis {url}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if let Some(seeds) = &args.redis_cluster {
        let cluster = hub_runtime::backplane::RedisBackplane::cluster_builder(seeds.split(','));
        match cluster.connect().await {
            Ok(backplane) => builder = builder.backplane(backplane),
            Err(e) => {
                eprintln!("conformance-server: --redis-cluster {seeds}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let hub = builder.build();
    let mut app = axum::Router::new()
        .nest("/hubs/test", hub.router())
        .nest("/hubs/secure", secure.router());
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
    let serve_options = ServeOptions {
        header_read_timeout: Some(args.header_read_timeout),
        ..ServeOptions::default()
    };
    let shutdown = async move {
        hub_runtime::shutdown_signal().await;
        tokio::join!(shutdown_hub.shutdown(), secure.shutdown());
    };
    let served = match tls {
        Some(config) => {
            hub_runtime::server::tls::serve_tls(listener, app, serve_options, config, shutdown)
                .await
        }
        None => serve_with_shutdown(listener, app, serve_options, shutdown).await,
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
