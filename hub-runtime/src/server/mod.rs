//! The axum server: negotiate, the WebSocket transport, the connection
//! registry and [`HubContext`] creation.
//!
//! ```no_run
//! use axum::Router;
//! use hub_runtime::server::{HubOptions, HubServer, ServeOptions};
//! # use hub_runtime::{Hub, targets::{BroadcastTarget, ClientContract, SingleTarget}};
//! # use hub_runtime::hub::{HubCall, InvocationError, MethodDescriptor, MethodOutput};
//! # struct Clock;
//! # struct ClockClient;
//! # impl ClientContract for ClockClient { type Broadcast = BroadcastTarget; type Single = SingleTarget; }
//! # impl Hub for Clock {
//! #     type Client = ClockClient;
//! #     const METHODS: &'static [MethodDescriptor] = &[];
//! #     fn invoke(self: std::sync::Arc<Self>, _: usize, _: HubCall<Self>)
//! #         -> hub_runtime::BoxFuture<'static, Result<MethodOutput, InvocationError>> {
//! #         Box::pin(async { Err(InvocationError::UnknownMethod) })
//! #     }
//! # }
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = HubServer::builder(Clock)
//!     .options(HubOptions { enable_detailed_errors: true, ..HubOptions::default() })
//!     .build();
//!
//! // A background worker talks to the clients through the context.
//! let context = hub.context();
//! tokio::spawn(async move {
//!     let _ = context.clients().all().send("ShowTime", vec![]).await;
//! });
//!
//! let app = Router::new().nest("/hubs/clock", hub.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! let shutdown = hub.clone();
//! // Not `axum::serve`: it has no header-read timeout (see [`serve`]).
//! hub_runtime::server::serve_with_shutdown(listener, app, ServeOptions::default(), async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     // Close every hub connection (Close with allowReconnect: true)
//!     // before the server stops accepting and drains its HTTP connections.
//!     shutdown.shutdown().await;
//! })
//! .await
//! # }
//! ```
//!
//! # Endpoints
//!
//! Mounted at `{base}` (any path, with [`Router::nest`] or
//! [`Router::merge`]):
//!
//! | request | answer |
//! |---|---|
//! | `POST {base}/negotiate` | negotiate versions 0 and 1; errors as HTTP 200 `{"error":…}`; other methods 405 |
//! | `GET {base}?id=<token>` + WebSocket upgrade | the negotiated connection; unknown or used id → 404 `No Connection with that ID`; a dropped stateful-reconnect socket resumes here |
//! | `GET {base}` + WebSocket upgrade | a new connection (`skipNegotiation`) |
//! | `GET {base}?id=<token>` with `Accept: text/event-stream` | Server-Sent Events: the connection's messages, as `data:` events |
//! | `GET {base}?id=<token>` otherwise | Long Polling: the next messages (the first poll returns at once); 204 once the connection ended |
//! | `POST {base}?id=<token>` | Server-Sent Events and Long Polling: the client's messages |
//! | `DELETE {base}?id=<token>` | ends a Long Polling connection |
//!
//! A transport that [`HubOptions::transports`] turns off answers 404
//! `… transport not supported by this end point type`, and negotiate does
//! not offer it. A token belongs to the user who negotiated it (a
//! transport request or POST from anyone else gets 403) and to the
//! transport that first used it; any other request with it is refused.
//! With [`HubOptions::allowed_origins`], a request from a browser origin
//! not in the list gets 403 on every endpoint; beyond
//! [`HubOptions::maximum_connections`] new connections get 503.
//!
//! Serve the router with [`serve`] or [`serve_with_shutdown`] (a
//! header-read timeout, which `axum::serve` lacks).
//!
//! The router composes with the application's tower layers (CORS,
//! tracing, authentication) like any other axum router.
//!
//! # Streams
//!
//! A streaming hub method (see [`MethodKind::ServerStream`]) runs outside
//! the parallel-invocation limit, as in ASP.NET Core. Its items go through
//! a window of [`HubOptions::stream_buffer_capacity`] items in flight per
//! stream: a client that reads slowly slows its own stream down, never the
//! server or other clients, and never overflows its outbound queue. A
//! CancelInvocation drops the method's stream at once and is answered with
//! a Completion without error; an `Err` item ends the stream with
//! `An error occurred on the server while streaming results.`
//!
//! Upload streams (`streamIds`) are opened when the invocation arrives and
//! closed when it ends (items for closed or unknown streams are ignored, a
//! stream id still open is refused with `Stream ID '…' is already in
//! use.`); a closing connection ends them with an error. Each buffers
//! `stream_buffer_capacity` items; a bounded lookahead beyond that keeps
//! the connection readable (see `HubOptions::stream_buffer_capacity`).
//!
//! # Client results and the invocation limit
//!
//! A hub method that awaits a client result
//! (`ctx.clients().caller().question(q).await`) cannot get its answer if
//! the connection stops reading while it waits — ASP.NET Core's pitfall
//! with `MaximumParallelInvocationsPerClient`. Here the connection's read
//! loop never runs hub methods itself: invocations run as tasks, and the
//! loop keeps reading Completions, Pings and cancellations whatever the
//! limit. While a method awaits a client result it gives its slot of the
//! limit back (and takes it again, in turn, once answered), so even at the
//! default limit of 1 the caller's other invocations — including further
//! client results — proceed. An answer that never comes fails with
//! [`HubErrorKind::Timeout`](crate::HubErrorKind::Timeout) after
//! [`HubOptions::client_result_timeout`]; an error answer with
//! `HubErrorKind::Remote`; a connection that closes first with
//! `HubErrorKind::ConnectionClosed`.
//!
//! [`MethodKind::ServerStream`]: crate::hub::MethodKind::ServerStream

mod authentication;
pub(crate) mod connection;
mod dispatch;
mod http;
mod limits;
pub mod metrics;
mod negotiated;
mod options;
mod origins;
pub(crate) mod registry;
mod responses;
mod serve;
#[cfg(feature = "client")]
mod test_client;
#[cfg(feature = "server-tls")]
pub mod tls;
pub(crate) mod transport;
mod transport_requests;
mod users;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use tokio::sync::watch;

use crate::authorization::{Authorization, Policies, Policy, UnregisteredPolicy};
use crate::filter::{Filters, HubFilter};
use crate::server::connection::SessionConfig;
use crate::{Hub, HubContext};

pub use authentication::Authenticator;
pub use options::{HttpTransports, HubOptions};
pub use serve::{ServeOptions, serve, serve_with_shutdown};
pub use users::{Anonymous, Unauthorized, UserIdProvider, bearer_token};

use dispatch::MethodTable;
use registry::Registry;

/// A running hub: cheap to clone (an `Arc`), `Send + Sync`.
///
/// Build one with [`HubServer::builder`], mount [`HubServer::router`] in
/// an axum app, talk to clients from anywhere with
/// [`HubServer::context`], and stop with [`HubServer::shutdown`]. See the
/// [module docs](self) for a complete example.
pub struct HubServer<H: Hub> {
    shared: Arc<Shared<H>>,
}

impl<H: Hub> Clone for HubServer<H> {
    fn clone(&self) -> Self {
        HubServer {
            shared: self.shared.clone(),
        }
    }
}

/// A negotiated connection whose transport request has not come yet.
struct Negotiated {
    connection_id: String,
    created: Instant,
    /// Negotiate turned stateful reconnect on.
    stateful: bool,
    /// The user who negotiated: the token is bound to them, and a
    /// transport request (or POST) from anyone else is refused with 403.
    user: Option<Arc<str>>,
    /// POST bodies that came before the transport request (some clients
    /// send the handshake before their first poll).
    early_input: Option<(
        crate::server::transport::PostSender,
        crate::server::transport::PostInput,
    )>,
}

/// Everything the handlers, sessions and contexts of one hub share.
pub(crate) struct Shared<H: Hub> {
    hub: Arc<H>,
    options: HubOptions,
    session: Arc<SessionConfig>,
    registry: Arc<Registry>,
    methods: MethodTable,
    authenticator: Box<dyn authentication::DynAuthenticator>,
    /// The policies `#[authorize]` names, with their state.
    policies: Arc<Policies>,
    /// Each method's `#[authorize]`, by index into `H::METHODS`.
    method_authorization: Box<[Option<&'static Authorization>]>,
    /// Global filters, then the hub's own (see [`crate::filter`]).
    filters: Arc<Filters>,
    negotiated: Mutex<HashMap<String, Negotiated>>,
    /// Connections whose transport request has come, by token.
    live: transport_requests::LiveConnections,
    shutdown: watch::Sender<bool>,
    sessions: watch::Sender<usize>,
    /// Metric handles per hub path, registered at its first connection.
    metrics: crate::telemetry::hub_metrics::HubMetricsByPath,
    /// The hub's short type name: `rpc.service` on spans.
    service: &'static str,
}

/// Configures a [`HubServer`]; from [`HubServer::builder`].
pub struct HubServerBuilder<H: Hub> {
    hub: H,
    options: HubOptions,
    authenticator: Box<dyn authentication::DynAuthenticator>,
    backplane: Option<Arc<dyn crate::backplane::Backplane>>,
    policies: Policies,
    global_filters: Filters,
    filters: Filters,
}

impl<H: Hub> HubServerBuilder<H> {
    /// Replaces the options (default: [`HubOptions::default`]).
    pub fn options(mut self, options: HubOptions) -> Self {
        self.options = options;
        self
    }

    /// Names the user of each connection from its HTTP request (default:
    /// [`Anonymous`]). See [`UserIdProvider`]; [`Self::authenticator`] is
    /// its successor, with roles, claims, expiry and `async`. The last of
    /// the two given wins.
    pub fn user_id_provider(mut self, provider: impl UserIdProvider) -> Self {
        self.authenticator = Box::new(authentication::UserIds(provider));
        self
    }

    /// Makes each connection's [`Identity`](crate::Identity) from its HTTP
    /// requests (default: everyone anonymous). See [`Authenticator`].
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Box::new(authenticator);
        self
    }

    /// Runs the hub as one node of several: `backplane` carries what other
    /// nodes' connections must receive (see [`crate::backplane`]). Without
    /// it (the default) the hub delivers in-process only.
    ///
    /// ```no_run
    /// # use hub_runtime::{hub, hub_client};
    /// # #[hub_client]
    /// # pub trait IChat { async fn receive(&self, message: String); }
    /// # pub struct MyHub;
    /// # #[hub(client = IChat)]
    /// # impl MyHub { async fn ping(&self) {} }
    /// # #[cfg(feature = "redis")]
    /// # async fn run() -> Result<(), hub_runtime::backplane::RedisBackplaneError> {
    /// use hub_runtime::backplane::RedisBackplane;
    /// use hub_runtime::server::HubServer;
    ///
    /// let hub = HubServer::builder(MyHub)
    ///     .backplane(RedisBackplane::connect("redis://127.0.0.1:6379").await?)
    ///     .build();
    /// # let _ = hub;
    /// # Ok(())
    /// # }
    /// ```
    pub fn backplane(mut self, backplane: impl crate::backplane::Backplane) -> Self {
        self.backplane = Some(Arc::new(backplane));
        self
    }

    /// Registers `policy`, the instance of a [`Policy`] type that the
    /// hub's `#[authorize(policy = …)]` names, with whatever state it
    /// needs. Every policy the hub names must be registered
    /// ([`Self::try_build`]).
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policies.insert(policy);
        self
    }

    /// Adds filters shared by every hub of the application (built once,
    /// given to each hub's builder). They run before the hub's own filters
    /// (see [`crate::filter`] for the order).
    pub fn global_filters(mut self, filters: &Filters) -> Self {
        self.global_filters.extend(filters);
        self
    }

    /// Adds a filter of this hub, inside the global filters and the ones
    /// added before it.
    pub fn filter(mut self, filter: impl HubFilter) -> Self {
        self.filters.push(filter);
        self
    }

    /// Builds the server, or says which policy named in `#[authorize]` is
    /// not registered with [`Self::policy`]. No task is started until a
    /// client connects.
    pub fn try_build(mut self) -> Result<HubServer<H>, UnregisteredPolicy> {
        let method_authorization: Box<[_]> =
            (0..H::METHODS.len()).map(H::method_authorization).collect();
        let named = H::AUTHORIZATION
            .into_iter()
            .chain(method_authorization.iter().flatten().copied())
            .flat_map(|authorization| authorization.policies);
        for policy in named {
            if !self.policies.contains(policy) {
                return Err(UnregisteredPolicy {
                    hub: std::any::type_name::<H>(),
                    policy: policy.name(),
                });
            }
        }
        let mut filters = std::mem::take(&mut self.global_filters);
        filters.extend(&self.filters);
        Ok(self.build_checked(method_authorization, filters))
    }

    /// Builds the server. No task is started until a client connects.
    ///
    /// # Panics
    ///
    /// When a policy named in the hub's `#[authorize]` is not registered
    /// ([`Self::try_build`] returns the error instead): a server that
    /// would refuse those calls at run time is refused when it is built.
    pub fn build(self) -> HubServer<H> {
        match self.try_build() {
            Ok(server) => server,
            Err(error) => panic!("{error}"),
        }
    }

    fn build_checked(
        self,
        method_authorization: Box<[Option<&'static Authorization>]>,
        filters: Filters,
    ) -> HubServer<H> {
        let options = self.options;
        let session = Arc::new(SessionConfig {
            handshake_timeout: options.handshake_timeout,
            keep_alive_interval: options.keep_alive_interval,
            client_timeout: options.client_timeout_interval,
            max_receive: options.maximum_receive_message_size,
            max_parallel_invocations: options.maximum_parallel_invocations_per_client.max(1),
            max_queued_invocations: options.maximum_queued_invocations_per_client.max(1),
            outbound_capacity: options.outbound_queue_capacity.max(1),
            outbound_pause_bytes: options.application_max_buffer_size.max(1),
            outbound_max_bytes: options.maximum_outbound_buffer_size.max(1),
            send_timeout: options.transport_send_timeout,
            close_timeout: options
                .transport_send_timeout
                .min(std::time::Duration::from_secs(5)),
            drain_timeout: options.shutdown_timeout,
            detailed_errors: options.enable_detailed_errors,
            protocols: options.supported_protocols.clone(),
            stream_buffer_capacity: options.stream_buffer_capacity.max(1),
        });
        let mut registry = Registry::new(options.client_result_timeout);
        if let Some(backplane) = &self.backplane {
            registry =
                registry.with_backplane(backplane.clone(), options.supported_protocols.clone());
        }
        let registry = Arc::new(registry);
        if let Some(backplane) = &self.backplane {
            backplane.attach(crate::backplane::LocalNode::new(
                &registry,
                std::any::type_name::<H>(),
            ));
        }
        HubServer {
            shared: Arc::new(Shared {
                hub: Arc::new(self.hub),
                registry,
                methods: MethodTable::new::<H>(),
                authenticator: self.authenticator,
                policies: Arc::new(self.policies),
                method_authorization,
                filters: Arc::new(filters),
                negotiated: Mutex::new(HashMap::new()),
                live: transport_requests::LiveConnections::default(),
                shutdown: watch::Sender::new(false),
                sessions: watch::Sender::new(0),
                metrics: Default::default(),
                service: crate::telemetry::service_name(std::any::type_name::<H>()),
                session,
                options,
            }),
        }
    }
}

impl<H: Hub> HubServer<H> {
    /// Starts configuring a server for `hub`.
    ///
    /// ```
    /// # use hub_runtime::{hub, hub_client};
    /// # #[hub_client]
    /// # pub trait IChat { async fn receive(&self, message: String); }
    /// # pub struct MyHub;
    /// # #[hub(client = IChat)]
    /// # impl MyHub { async fn ping(&self) {} }
    /// use hub_runtime::server::{HubOptions, HubServer, bearer_token};
    ///
    /// let hub = HubServer::builder(MyHub)
    ///     .options(HubOptions::default())
    ///     // The bearer token is the user's id (a real server checks it).
    ///     .user_id_provider(|request: &http::request::Parts| Ok(bearer_token(request)))
    ///     .build();
    /// # let _ = hub;
    /// ```
    pub fn builder(hub: H) -> HubServerBuilder<H> {
        HubServerBuilder {
            hub,
            options: HubOptions::default(),
            authenticator: Box::new(authentication::UserIds(Anonymous)),
            backplane: None,
            policies: Policies::default(),
            global_filters: Filters::new(),
            filters: Filters::new(),
        }
    }

    /// A server for `hub` with the default options.
    pub fn new(hub: H) -> Self {
        Self::builder(hub).build()
    }

    /// The axum router serving this hub: `/negotiate` and the transport
    /// endpoint at its root. Mount it under any path:
    ///
    /// ```
    /// # use hub_runtime::{hub, hub_client};
    /// # #[hub_client]
    /// # pub trait IChat { async fn receive(&self, message: String); }
    /// # pub struct MyHub;
    /// # #[hub(client = IChat)]
    /// # impl MyHub { async fn ping(&self) {} }
    /// use hub_runtime::server::HubServer;
    ///
    /// let hub = HubServer::new(MyHub);
    /// let app: axum::Router = axum::Router::new()
    ///     .nest("/hubs/chat", hub.router())
    ///     // Layers (CORS, authentication, extensions) wrap the hub's
    ///     // endpoints too.
    ///     .layer(axum::Extension("shared state"));
    /// # let _ = app;
    /// ```
    ///
    /// Under `nest`, axum routes `{base}` and `{base}/negotiate` but not
    /// `{base}/` with a trailing slash: give clients the hub URL without a
    /// trailing slash (as the official samples do).
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        http::router(self.shared.clone())
    }

    /// The hub's context: its clients and groups, for background tasks.
    pub fn context(&self) -> HubContext<H> {
        HubContext::new(self.shared.registry.clone())
    }

    /// The options the server runs with.
    pub fn options(&self) -> &HubOptions {
        &self.shared.options
    }

    /// How many connections have completed their handshake and not ended.
    pub fn connection_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// Shuts the hub down gracefully and waits (at most
    /// [`HubOptions::shutdown_timeout`] plus the transport's close time)
    /// until every connection has ended.
    ///
    /// New negotiations and transport requests are refused with 503. Every
    /// connection stops reading new invocations, lets its in-flight
    /// invocations complete (bounded by `shutdown_timeout`; client results
    /// they await are still answered), then gets a Close with
    /// `allowReconnect: true` — clients with automatic reconnect come back
    /// to the next server — and its socket is closed.
    ///
    /// With [`serve_with_shutdown`] (or `axum::serve`), call it from the
    /// shutdown future (see the [module docs](self)): upgraded WebSockets
    /// are not HTTP requests that the server waits for.
    pub async fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        let budget = self.shared.options.shutdown_timeout
            + self.shared.session.close_timeout
            + self.shared.session.send_timeout;
        let mut sessions = self.shared.sessions.subscribe();
        let _ = tokio::time::timeout(budget, sessions.wait_for(|count| *count == 0)).await;
    }

    /// Whether [`HubServer::shutdown`] has been called.
    pub fn is_shut_down(&self) -> bool {
        *self.shared.shutdown.borrow()
    }
}

impl<H: Hub> std::fmt::Debug for HubServer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubServer")
            .field("hub", &std::any::type_name::<H>())
            .field("connections", &self.connection_count())
            .field("options", &self.shared.options)
            .finish()
    }
}
