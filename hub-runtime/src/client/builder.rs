//! [`HubConnectionBuilder`]: the options of a [`HubConnection`].
//!
//! Setters are named for what they set, without a `with_` prefix (as
//! tokio's `runtime::Builder`): `automatic_reconnect()`, `handlers(…)`,
//! `stateful_reconnect(…)`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::config::{Config, Transports};
use super::connection::HubConnection;
use super::net::{AccessTokenProvider, Net, Trust, pem_roots};
use super::reconnect::{DefaultReconnectPolicy, ReconnectPolicy};
use super::url::HubUrl;
use crate::handlers::ClientHandlers;
use crate::protocol::HubProtocol;
use crate::{HubError, HubErrorKind};

/// Builds a [`HubConnection`].
///
/// Defaults match the official clients: JSON protocol, WebSockets after a
/// negotiate, a 30 s server timeout, a 15 s keep-alive interval, a 15 s
/// handshake timeout, a 100 s HTTP timeout, and **no** automatic reconnect
/// unless [`automatic_reconnect`](Self::automatic_reconnect) (or a
/// sibling) is called.
///
/// `http://`, `https://`, `ws://` and `wss://` URLs work. TLS is rustls:
/// certificates are checked against the platform's roots, or the PEM file
/// named by `SSL_CERT_FILE` when it is set, unless
/// [`root_certificates`](Self::root_certificates) or
/// [`tls_config`](Self::tls_config) say otherwise. Cookies are kept across
/// negotiate and the transport; a proxy comes from
/// [`proxy`](Self::proxy) or `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`.
///
/// ```
/// use std::time::Duration;
/// use hub_runtime::client::HubConnection;
///
/// let connection = HubConnection::builder("https://example.com/hubs/chat")
///     .automatic_reconnect()
///     .server_timeout(Duration::from_secs(60))
///     .build()?;
/// # Ok::<(), hub_runtime::HubError>(())
/// ```
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
    transports: Transports,
    stateful_reconnect: Option<usize>,
    max_message_size: Option<usize>,
    stream_buffer_capacity: usize,
    stream_buffer_timeout: Duration,
    handlers: ClientHandlers,
    in_memory: Option<super::config::InMemoryConnector>,
    trust: Result<Trust, HubError>,
    proxy: Option<String>,
}

impl std::fmt::Debug for HubConnectionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnectionBuilder")
            .field("url", &self.url)
            .field("protocol", &self.protocol)
            .field("automatic_reconnect", &self.reconnect.is_some())
            .field("skip_negotiation", &self.skip_negotiation)
            .field("transports", &self.transports)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl HubConnectionBuilder {
    /// A builder for the hub at `url` (`http[s]://host[:port]/path`).
    ///
    /// ```
    /// use hub_runtime::client::HubConnectionBuilder;
    ///
    /// let connection = HubConnectionBuilder::new("http://127.0.0.1:5000/hubs/clock").build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
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
            transports: Transports::ALL,
            stateful_reconnect: None,
            max_message_size: None,
            stream_buffer_capacity: 1024,
            stream_buffer_timeout: Duration::from_secs(5),
            handlers: ClientHandlers::new(),
            in_memory: None,
            trust: Ok(Trust::Platform),
            proxy: None,
        }
    }

    /// The hub protocol: [`HubProtocol::Json`] (the default) or
    /// [`HubProtocol::MessagePack`] (sent in binary WebSocket frames).
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    /// use hub_runtime::protocol::HubProtocol;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .protocol(HubProtocol::MessagePack)
    ///     .build()?;
    /// assert_eq!(connection.protocol(), HubProtocol::MessagePack);
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn protocol(mut self, protocol: HubProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// An asynchronous access-token provider, called before every request
    /// of the connection: negotiate, the WebSocket upgrade, and each POST,
    /// poll and event-stream request of the HTTP transports — so also on
    /// each reconnect attempt. The token is sent as `Authorization: Bearer
    /// <token>`, and also as the `access_token` query parameter on the
    /// WebSocket and event-stream URLs. `None` sends no token.
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// async fn fetch_token() -> Option<String> {
    ///     Some("token-from-the-identity-server".to_owned())
    /// }
    ///
    /// let connection = HubConnection::builder("https://example.com/hub")
    ///     .access_token_factory(fetch_token)
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
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
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("https://example.com/hub")
    ///     .access_token(|| Some("user-ann".to_owned()))
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
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

    /// A header sent with every request: negotiate, the WebSocket upgrade,
    /// and each POST, poll and event-stream request. Invalid names or
    /// values make [`build`](Self::build) fail.
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("https://example.com/hub")
    ///     .header("X-Tenant", "blue")
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Automatic reconnect with the official clients' delays: 0, 2, 10 and
    /// 30 seconds, then give up.
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .automatic_reconnect()
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn automatic_reconnect(self) -> Self {
        self.reconnect_policy(DefaultReconnectPolicy::default())
    }

    /// Automatic reconnect waiting `delays[n]` before attempt `n + 1`, then
    /// giving up.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .reconnect_delays([Duration::ZERO, Duration::from_secs(1)])
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn reconnect_delays(self, delays: impl IntoIterator<Item = Duration>) -> Self {
        self.reconnect_policy(DefaultReconnectPolicy::new(delays))
    }

    /// Automatic reconnect following `policy` (any
    /// `Fn(&RetryContext) -> Option<Duration>` works too).
    ///
    /// Reconnect runs when the connection is lost while connected: the
    /// socket closes or fails, the server times out, the server breaks the
    /// protocol, or it sends Close with `allowReconnect`. It does not run
    /// after `stop()`, after a Close without `allowReconnect`, or when the
    /// first `start()` fails.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hub_runtime::client::{HubConnection, RetryContext};
    ///
    /// // Every second, for a minute.
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .reconnect_policy(|context: &RetryContext| {
    ///         (context.elapsed < Duration::from_secs(60)).then_some(Duration::from_secs(1))
    ///     })
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn reconnect_policy(mut self, policy: impl ReconnectPolicy) -> Self {
        self.reconnect = Some(Arc::new(policy));
        self
    }

    /// Closes the connection when nothing arrived from the server for this
    /// long (default 30 s; should be at least twice the server's
    /// keep-alive interval).
    ///
    /// ```
    /// use std::time::Duration;
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .server_timeout(Duration::from_secs(60))
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn server_timeout(mut self, timeout: Duration) -> Self {
        self.server_timeout = timeout;
        self
    }

    /// Sends a Ping when nothing was sent for this long (default 15 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .keep_alive_interval(Duration::from_secs(5))
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive_interval = interval;
        self
    }

    /// How long to wait for the handshake response (default 15 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .handshake_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long negotiate, the WebSocket upgrade and each POST may take
    /// (default 100 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .http_timeout(Duration::from_secs(10))
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Opens the WebSocket on the hub URL directly, without negotiate (the
    /// server must accept that, as ASP.NET Core does). The connection then
    /// has no connection id.
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("ws://127.0.0.1:5000/hub")
    ///     .skip_negotiation(true)
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn skip_negotiation(mut self, skip: bool) -> Self {
        self.skip_negotiation = skip;
        self
    }

    /// Refuses messages from the server larger than this many bytes (no
    /// limit by default).
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .max_message_size(Some(1024 * 1024))
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn max_message_size(mut self, max: Option<usize>) -> Self {
        self.max_message_size = max;
        self
    }

    /// How many items of one server stream may wait for its consumer
    /// (default 1024; at least 1). See "A slow consumer" on
    /// [`HubStream`](super::HubStream).
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .stream_buffer_capacity(64)
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn stream_buffer_capacity(mut self, capacity: usize) -> Self {
        self.stream_buffer_capacity = capacity.max(1);
        self
    }

    /// How long the connection waits for a stream consumer whose buffer is
    /// full before it cancels that stream (default 5 s). Meanwhile nothing
    /// else is read from the connection, so keep it well below the server
    /// timeout. See "A slow consumer" on [`HubStream`](super::HubStream).
    ///
    /// ```
    /// use std::time::Duration;
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .stream_buffer_timeout(Duration::from_secs(1))
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn stream_buffer_timeout(mut self, timeout: Duration) -> Self {
        self.stream_buffer_timeout = timeout;
        self
    }

    /// Client methods the server can call; see [`HubConnection::register`].
    ///
    /// ```
    /// use hub_runtime::ClientHandlers;
    /// use hub_runtime::client::HubConnection;
    ///
    /// // Usually a `#[hub_client]` trait's `into_handlers()`.
    /// let handlers = ClientHandlers::new();
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .handlers(handlers)
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn handlers(mut self, handlers: ClientHandlers) -> Self {
        self.handlers.extend(handlers);
        self
    }

    /// Which transports the client may use (default all; see
    /// [`Transports`]). `skip_negotiation` uses WebSockets only.
    ///
    /// ```
    /// use hub_runtime::client::{HubConnection, Transports};
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .transports(Transports { web_sockets: false, ..Transports::ALL })
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn transports(mut self, transports: Transports) -> Self {
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
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub")
    ///     .stateful_reconnect(100_000)
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn stateful_reconnect(mut self, buffer_size: usize) -> Self {
        self.stateful_reconnect = Some(buffer_size);
        self
    }

    /// Trusts only the certificates of this PEM text (one or more
    /// `BEGIN CERTIFICATE` blocks) for `https://` and `wss://`, instead of
    /// the platform's roots. A PEM without a usable certificate makes
    /// [`build`](Self::build) fail.
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let pem = b"-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
    /// let built = HubConnection::builder("https://127.0.0.1:5001/hub")
    ///     .root_certificates(pem)
    ///     .build();
    /// assert!(built.is_err(), "not a real certificate");
    /// ```
    pub fn root_certificates(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.trust = pem_roots(pem.as_ref()).map(|roots| Trust::Roots(Arc::new(roots)));
        self
    }

    /// A complete rustls client configuration for `https://` and `wss://`
    /// (own roots, client certificates, another verifier…). Its ALPN list
    /// should be empty or `http/1.1`: the client speaks HTTP/1.1.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hub_runtime::client::{HubConnection, rustls};
    ///
    /// let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    /// let config = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()
    ///     .expect("aws-lc-rs supports the defaults")
    ///     .with_root_certificates(rustls::RootCertStore::empty())
    ///     .with_no_client_auth();
    /// let connection = HubConnection::builder("https://example.com/hub")
    ///     .tls_config(config)
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.trust = Ok(Trust::Config(Arc::new(config)));
        self
    }

    /// Sends every request through this HTTP proxy (`http://host:port`,
    /// credentials as `http://user:password@host:port`): plain HTTP is
    /// forwarded, TLS and WebSockets are tunneled with `CONNECT`. Hosts
    /// listed in `NO_PROXY` still go direct. Without it, the proxy comes
    /// from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` as curl reads them.
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("https://example.com/hub")
    ///     .proxy("http://proxy.internal:3128")
    ///     .build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// Connects through `connector` instead of the network: what
    /// `HubServer::test_client` sets.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn in_memory(mut self, connector: super::config::InMemoryConnector) -> Self {
        self.in_memory = Some(connector);
        self
    }

    /// Checks the options and makes the (not yet started) connection.
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// assert!(HubConnection::builder("ftp://example.com/hub").build().is_err());
    /// ```
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
        let net = Net::new(&self.trust?, self.proxy.as_deref())?;
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
            net,
            in_memory: self.in_memory,
        };
        Ok(HubConnection::new(config, self.handlers))
    }
}

impl HubConnection {
    /// A builder for a connection to the hub at `url`.
    ///
    /// ```
    /// use hub_runtime::client::HubConnection;
    ///
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hub").build()?;
    /// # Ok::<(), hub_runtime::HubError>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> HubConnectionBuilder {
        HubConnectionBuilder::new(url)
    }
}
