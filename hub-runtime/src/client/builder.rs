//! [`HubConnectionBuilder`]: the options of a [`HubConnection`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::connection::HubConnection;
use super::reconnect::{DefaultReconnectPolicy, ReconnectPolicy};
use super::url::HubUrl;
use crate::handlers::ClientHandlers;
use crate::protocol::HubProtocol;
use crate::{BoxFuture, HubError, HubErrorKind};

/// Supplies the bearer token, called before every negotiate and every
/// WebSocket connect.
type AccessTokenProvider = Arc<dyn Fn() -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// Opens an in-memory transport to a hub in this process (the server's
/// test client), given the access token and headers a request would carry.
pub(crate) type InMemoryConnector = Arc<
    dyn Fn(
            Option<String>,
            HeaderMap,
        ) -> BoxFuture<
            'static,
            Result<
                (
                    super::http_transports::BoxSink,
                    super::http_transports::BoxSource,
                ),
                HubError,
            >,
        > + Send
        + Sync,
>;

/// The settled options of a connection.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) url: HubUrl,
    pub(crate) protocol: HubProtocol,
    access_token: Option<AccessTokenProvider>,
    pub(crate) headers: HeaderMap,
    pub(crate) reconnect: Option<Arc<dyn ReconnectPolicy>>,
    pub(crate) server_timeout: Duration,
    pub(crate) keep_alive_interval: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) skip_negotiation: bool,
    pub(crate) transports: super::Transports,
    pub(crate) stateful_reconnect: Option<usize>,
    pub(crate) max_message_size: Option<usize>,
    pub(crate) stream_buffer_capacity: usize,
    pub(crate) stream_buffer_timeout: Duration,
    /// Connect in memory instead of over the network (no negotiate).
    pub(crate) in_memory: Option<InMemoryConnector>,
}

impl Config {
    /// A fresh token from the provider, if one is configured.
    pub(crate) async fn access_token(&self) -> Option<String> {
        match &self.access_token {
            Some(provider) => provider().await,
            None => None,
        }
    }
}

/// Builds a [`HubConnection`].
///
/// Defaults match the official clients: JSON protocol, WebSockets after a
/// negotiate, a 30 s server timeout, a 15 s keep-alive interval, a 15 s
/// handshake timeout, a 100 s HTTP timeout, and **no** automatic reconnect
/// unless [`with_automatic_reconnect`](Self::with_automatic_reconnect) (or
/// a sibling) is called.
///
/// Only `http://` and `ws://` URLs are supported: this client has no TLS.
#[must_use]
pub struct HubConnectionBuilder {
    url: String,
    protocol: HubProtocol,
    access_token: Option<AccessTokenProvider>,
    headers: Vec<(String, String)>,
    reconnect: Option<Arc<dyn ReconnectPolicy>>,
    server_timeout: Duration,
    keep_alive_interval: Duration,
    handshake_timeout: Duration,
    http_timeout: Duration,
    skip_negotiation: bool,
    transports: super::Transports,
    stateful_reconnect: Option<usize>,
    max_message_size: Option<usize>,
    stream_buffer_capacity: usize,
    stream_buffer_timeout: Duration,
    handlers: ClientHandlers,
    in_memory: Option<InMemoryConnector>,
}

impl std::fmt::Debug for HubConnectionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnectionBuilder")
            .field("url", &self.url)
            .field("protocol", &self.protocol)
            .field("automatic_reconnect", &self.reconnect.is_some())
            .field("skip_negotiation", &self.skip_negotiation)
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

impl HubConnectionBuilder {
    /// A builder for the hub at `url` (`http://host:port/path`).
    pub fn new(url: impl Into<String>) -> Self {
        HubConnectionBuilder {
            url: url.into(),
            protocol: HubProtocol::Json,
            access_token: None,
            headers: Vec::new(),
            reconnect: None,
            server_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(15),
            http_timeout: Duration::from_secs(100),
            skip_negotiation: false,
            transports: super::Transports::ALL,
            stateful_reconnect: None,
            max_message_size: None,
            stream_buffer_capacity: 1024,
            stream_buffer_timeout: Duration::from_secs(5),
            handlers: ClientHandlers::new(),
            in_memory: None,
        }
    }

    /// Connects through `connector` instead of the network: what
    /// `HubServer::test_client` sets.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn in_memory(mut self, connector: InMemoryConnector) -> Self {
        self.in_memory = Some(connector);
        self
    }

    /// The hub protocol: [`HubProtocol::Json`] (the default) or
    /// [`HubProtocol::MessagePack`] (sent in binary WebSocket frames).
    pub fn protocol(mut self, protocol: HubProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// An asynchronous access-token provider, called before every negotiate
    /// and every WebSocket connect (so also on each reconnect attempt). The
    /// token is sent as `Authorization: Bearer <token>` on negotiate, and as
    /// both that header and the `access_token` query parameter on the
    /// WebSocket. `None` sends no token.
    pub fn access_token_factory<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.access_token = Some(Arc::new(move || Box::pin(provider())));
        self
    }

    /// A synchronous access-token provider; see
    /// [`access_token_factory`](Self::access_token_factory).
    pub fn access_token<F>(mut self, provider: F) -> Self
    where
        F: Fn() -> Option<String> + Send + Sync + 'static,
    {
        let provider = Arc::new(provider);
        self.access_token = Some(Arc::new(move || {
            let token = provider();
            Box::pin(async move { token })
        }));
        self
    }

    /// A header sent with the negotiate request and the WebSocket upgrade.
    /// Invalid names or values make [`build`](Self::build) fail.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Automatic reconnect with the official clients' delays: 0, 2, 10 and
    /// 30 seconds, then give up.
    pub fn with_automatic_reconnect(self) -> Self {
        self.with_reconnect_policy(DefaultReconnectPolicy::default())
    }

    /// Automatic reconnect waiting `delays[n]` before attempt `n + 1`, then
    /// giving up.
    pub fn with_reconnect_delays(self, delays: impl IntoIterator<Item = Duration>) -> Self {
        self.with_reconnect_policy(DefaultReconnectPolicy::new(delays))
    }

    /// Automatic reconnect following `policy` (any
    /// `Fn(&RetryContext) -> Option<Duration>` works too).
    ///
    /// Reconnect runs when the connection is lost while connected: the
    /// socket closes or fails, the server times out, the server breaks the
    /// protocol, or it sends Close with `allowReconnect`. It does not run
    /// after `stop()`, after a Close without `allowReconnect`, or when the
    /// first `start()` fails.
    pub fn with_reconnect_policy(mut self, policy: impl ReconnectPolicy) -> Self {
        self.reconnect = Some(Arc::new(policy));
        self
    }

    /// Closes the connection when nothing arrived from the server for this
    /// long (default 30 s; should be at least twice the server's
    /// keep-alive interval).
    pub fn server_timeout(mut self, timeout: Duration) -> Self {
        self.server_timeout = timeout;
        self
    }

    /// Sends a Ping when nothing was sent for this long (default 15 s).
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive_interval = interval;
        self
    }

    /// How long to wait for the handshake response (default 15 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long negotiate and the WebSocket upgrade may take (default 100 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Opens the WebSocket on the hub URL directly, without negotiate (the
    /// server must accept that, as ASP.NET Core does). The connection then
    /// has no connection id.
    pub fn skip_negotiation(mut self, skip: bool) -> Self {
        self.skip_negotiation = skip;
        self
    }

    /// Refuses messages from the server larger than this many bytes (no
    /// limit by default).
    pub fn max_message_size(mut self, max: Option<usize>) -> Self {
        self.max_message_size = max;
        self
    }

    /// How many items of one server stream may wait for its consumer
    /// (default 1024; at least 1). See "A slow consumer" on
    /// [`HubStream`](super::HubStream).
    pub fn stream_buffer_capacity(mut self, capacity: usize) -> Self {
        self.stream_buffer_capacity = capacity.max(1);
        self
    }

    /// How long the connection waits for a stream consumer whose buffer is
    /// full before it cancels that stream (default 5 s). Meanwhile nothing
    /// else is read from the connection, so keep it well below the server
    /// timeout. See "A slow consumer" on [`HubStream`](super::HubStream).
    pub fn stream_buffer_timeout(mut self, timeout: Duration) -> Self {
        self.stream_buffer_timeout = timeout;
        self
    }

    /// Client methods the server can call; see [`HubConnection::register`].
    pub fn with_handlers(mut self, handlers: ClientHandlers) -> Self {
        self.handlers.extend(handlers);
        self
    }

    /// Which transports the client may use (default all; see
    /// [`Transports`](super::Transports)). `skip_negotiation` uses
    /// WebSockets only.
    pub fn transports(mut self, transports: super::Transports) -> Self {
        self.transports = transports;
        self
    }

    /// Turns stateful reconnect on (as the official clients'
    /// `withStatefulReconnect()`), when the server allows it and the
    /// transport is WebSockets: a dropped socket is resumed on a new one
    /// with the same connection, and neither side loses or repeats a
    /// message. At most `buffer_size` bytes of sent messages wait for the
    /// server's acknowledgement (the official default is 100 000); beyond
    /// that, sends wait.
    pub fn with_stateful_reconnect(mut self, buffer_size: usize) -> Self {
        self.stateful_reconnect = Some(buffer_size);
        self
    }

    /// Checks the options and makes the (not yet started) connection.
    pub fn build(self) -> Result<HubConnection, HubError> {
        let url = HubUrl::parse(&self.url)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let invalid = || {
                HubError::with_kind(
                    HubErrorKind::Transport,
                    format!("Invalid header '{name}: {value}'"),
                )
            };
            let name = HeaderName::try_from(name.as_str()).map_err(|_| invalid())?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|_| invalid())?;
            headers.append(name, value);
        }
        let config = Config {
            url,
            protocol: self.protocol,
            access_token: self.access_token,
            headers,
            reconnect: self.reconnect,
            server_timeout: self.server_timeout,
            keep_alive_interval: self.keep_alive_interval,
            handshake_timeout: self.handshake_timeout,
            http_timeout: self.http_timeout,
            skip_negotiation: self.skip_negotiation,
            transports: self.transports,
            stateful_reconnect: self.stateful_reconnect,
            max_message_size: self.max_message_size,
            stream_buffer_capacity: self.stream_buffer_capacity,
            stream_buffer_timeout: self.stream_buffer_timeout,
            in_memory: self.in_memory,
        };
        Ok(HubConnection::new(config, self.handlers))
    }
}

impl HubConnection {
    /// A builder for a connection to the hub at `url`.
    pub fn builder(url: impl Into<String>) -> HubConnectionBuilder {
        HubConnectionBuilder::new(url)
    }
}
