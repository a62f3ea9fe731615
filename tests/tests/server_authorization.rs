//! Authorization, filters and identity of a hub served in-process over a
//! real loopback socket, called by the Rust client through the typed proxy
//! of a `#[hub_server]` contract:
//!
//! * the documented filter order (global filters, then the hub's, first
//!   added outermost; around invocations, connects and disconnects), with
//!   authorization before every filter;
//! * policies: registered with their state, async, over the arguments; a
//!   hub-level policy answering 401; streams and upload streams refused;
//! * a tower layer's request extension reaching the authenticator, and the
//!   client's address in the caller context.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use hub_runtime::authorization::{AuthorizationRequest, Policy, SyncPolicy};
use hub_runtime::client::{HubConnection, HubConnectionState};
use hub_runtime::filter::{
    Filters, HubFilter, HubInvocation, NextConnected, NextDisconnected, NextInvocation,
};
use hub_runtime::hub::{ConnectionContext, InvocationError, MethodOutput, Stream, UploadStream};
use hub_runtime::protocol::HubProtocol;
use hub_runtime::server::{Authenticator, HubServer, Unauthorized, bearer_token};
use hub_runtime::{CallContext, HubError, Identity, authorize, hub, hub_client, hub_server};

const PATIENCE: Duration = Duration::from_secs(30);

/// The clients of the guarded hub (never called: the hub needs a contract).
#[hub_client]
pub trait IGuardedClient {
    /// A notice.
    async fn notice(&self, text: String);
}

/// The guarded hub: one method per kind of authorization.
#[hub_server]
pub trait IGuardedHub {
    /// Anyone.
    async fn open(&self) -> String;
    /// Role `admin`.
    async fn admin(&self) -> String;
    /// The `StaffList` policy (state, async).
    async fn staff(&self) -> String;
    /// The `OwnRoom` policy (over the arguments).
    async fn own_room(&self, room: String) -> String;
    /// A server stream, role `admin`.
    async fn numbers(&self, count: u32) -> impl Stream<Item = u32>;
    /// An upload stream, role `admin`.
    async fn total(&self, numbers: UploadStream<u32>) -> Result<u32, HubError>;
    /// The claim the tower layer's user became.
    async fn layer_user(&self, ctx: CallContext<Self>) -> Option<String>;
    /// Whether the caller's address is a loopback one.
    async fn remote_is_loopback(&self, ctx: CallContext<Self>) -> bool;
}

/// Who may call `Staff`: state the policy gets from the server it is
/// registered on.
struct StaffList(Vec<String>);

impl Policy for StaffList {
    async fn authorize(&self, request: &AuthorizationRequest<'_>) -> bool {
        // A lookup that awaits (a database would).
        tokio::task::yield_now().await;
        request
            .identity
            .user_id()
            .is_some_and(|user| self.0.iter().any(|staff| staff == user))
    }
}

/// A room named after the caller: a policy over the arguments.
struct OwnRoom;

impl SyncPolicy for OwnRoom {
    fn check(&self, request: &AuthorizationRequest<'_>) -> bool {
        let room: Option<String> = request.arguments.and_then(|a| a.bind(0).ok());
        room.is_some() && room.as_deref() == request.identity.user_id()
    }
}

struct GuardedHub {
    log: Log,
}

#[hub(client = IGuardedClient)]
impl IGuardedHub for GuardedHub {
    async fn open(&self) -> String {
        self.log.push("method");
        "open".into()
    }

    #[authorize(roles("admin"))]
    async fn admin(&self) -> String {
        self.log.push("method");
        "admin".into()
    }

    #[authorize(policy = StaffList)]
    async fn staff(&self) -> String {
        "staff".into()
    }

    #[authorize(policy = OwnRoom)]
    async fn own_room(&self, room: String) -> String {
        room
    }

    #[authorize(roles("admin"))]
    async fn numbers(&self, count: u32) -> impl Stream<Item = u32> {
        futures_util::stream::iter(0..count)
    }

    #[authorize(roles("admin"))]
    async fn total(&self, mut numbers: UploadStream<u32>) -> Result<u32, HubError> {
        let mut total = 0;
        while let Some(number) = numbers.next().await {
            total += number?;
        }
        Ok(total)
    }

    async fn layer_user(&self, ctx: CallContext<Self>) -> Option<String> {
        ctx.identity().claim("layer").map(str::to_owned)
    }

    async fn remote_is_loopback(&self, ctx: CallContext<Self>) -> bool {
        ctx.connection()
            .remote_addr()
            .is_some_and(|address| address.ip().is_loopback())
    }

    async fn on_connected(&self) -> Result<(), HubError> {
        self.log.push("on_connected");
        Ok(())
    }

    async fn on_disconnected(&self, _error: Option<HubError>) {
        self.log.push("on_disconnected");
    }
}

/// What ran, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// Takes the log once it holds `entries` entries (or after
    /// [`PATIENCE`]): hooks that run after the client's call has returned
    /// (`on_connected` runs once the handshake is answered, `on_disconnected`
    /// after the client left) are waited for, not raced.
    async fn take_after(&self, entries: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.0.lock().unwrap().len() < entries && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.take()
    }
}

/// Logs entering and leaving each hook under its name.
struct Named(&'static str, Log);

impl HubFilter for Named {
    async fn invoke(
        &self,
        call: &HubInvocation<'_>,
        next: NextInvocation<'_>,
    ) -> Result<MethodOutput, InvocationError> {
        self.1.push(format!("{}>{}", self.0, call.method));
        let outcome = next.run().await;
        self.1.push(format!("{}<", self.0));
        outcome
    }

    async fn on_connected(
        &self,
        _connection: &Arc<ConnectionContext>,
        next: NextConnected<'_>,
    ) -> Result<(), HubError> {
        self.1.push(format!("{}>connect", self.0));
        let outcome = next.run().await;
        self.1.push(format!("{}<", self.0));
        outcome
    }

    async fn on_disconnected(
        &self,
        _connection: &Arc<ConnectionContext>,
        _error: Option<&HubError>,
        next: NextDisconnected<'_>,
    ) {
        self.1.push(format!("{}>disconnect", self.0));
        next.run().await;
        self.1.push(format!("{}<", self.0));
    }
}

/// The layer's user, set by a tower layer in front of the hub, or a
/// bearer token `NAME[:ROLE]`.
#[derive(Clone)]
struct LayerUser(String);

struct Tokens;

impl Authenticator for Tokens {
    async fn authenticate(&self, request: &http::request::Parts) -> Result<Identity, Unauthorized> {
        if let Some(LayerUser(name)) = request.extensions.get::<LayerUser>() {
            return Ok(Identity::user(name.as_str()).with_claim("layer", name.as_str()));
        }
        let Some(token) = bearer_token(request) else {
            return Ok(Identity::anonymous());
        };
        Ok(match token.split_once(':') {
            Some((name, role)) => Identity::user(name).with_role(role),
            None => Identity::user(token),
        })
    }
}

/// A tower layer (axum middleware) that authenticates `X-Layer-User`
/// before the hub sees the request.
async fn layer_auth(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let user = request
        .headers()
        .get("x-layer-user")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Some(user) = user {
        request.extensions_mut().insert(LayerUser(user));
    }
    next.run(request).await
}

struct Served {
    url: String,
    log: Log,
}

async fn serve() -> Served {
    let log = Log::default();
    let global = Filters::new()
        .with(Named("g1", log.clone()))
        .with(Named("g2", log.clone()));
    let hub = HubServer::builder(GuardedHub { log: log.clone() })
        .authenticator(Tokens)
        .global_filters(&global)
        .filter(Named("h1", log.clone()))
        .filter(Named("h2", log.clone()))
        .policy(StaffList(vec!["sam".into()]))
        .policy(OwnRoom)
        .build();
    let app = axum::Router::new()
        .nest("/hubs/guarded", hub.router())
        .layer(axum::middleware::from_fn(layer_auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Served {
        url: format!("http://{address}/hubs/guarded"),
        log,
    }
}

struct Quiet;

impl IGuardedClient for Quiet {
    async fn notice(&self, _text: String) {}
}

async fn connect(
    url: &str,
    protocol: HubProtocol,
    token: Option<&str>,
    header: Option<(&str, &str)>,
) -> (HubConnection, IGuardedHubProxy) {
    let mut builder = HubConnection::builder(url)
        .protocol(protocol)
        .handlers(Quiet.into_handlers());
    if let Some(token) = token {
        let token = token.to_owned();
        builder = builder.access_token(move || Some(token.clone()));
    }
    if let Some((name, value)) = header {
        builder = builder.header(name, value);
    }
    let connection = builder.build().unwrap();
    tokio::time::timeout(PATIENCE, connection.start())
        .await
        .unwrap()
        .unwrap();
    let proxy = connection.hub::<IGuardedHubProxy>();
    (connection, proxy)
}

fn unauthorized(error: HubError, method: &str) {
    assert_eq!(
        error.message(),
        format!("Failed to invoke '{method}' because user is unauthorized")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_run_in_the_documented_order_after_authorization() {
    let served = serve().await;
    let (connection, hub) = connect(&served.url, HubProtocol::Json, None, None).await;
    assert_eq!(
        served.log.take_after(9).await,
        [
            "g1>connect",
            "g2>connect",
            "h1>connect",
            "h2>connect",
            "on_connected",
            "h2<",
            "h1<",
            "g2<",
            "g1<"
        ]
    );
    assert_eq!(hub.open().await.unwrap(), "open");
    assert_eq!(
        served.log.take(),
        [
            "g1>Open", "g2>Open", "h1>Open", "h2>Open", "method", "h2<", "h1<", "g2<", "g1<"
        ]
    );
    // Refused by authorization: no filter sees it, the method never runs.
    unauthorized(hub.admin().await.unwrap_err(), "Admin");
    assert_eq!(served.log.take(), Vec::<String>::new());
    connection.stop().await;
    // The disconnect goes through the chain too (after the client left).
    assert_eq!(
        served.log.take_after(9).await,
        [
            "g1>disconnect",
            "g2>disconnect",
            "h1>disconnect",
            "h2>disconnect",
            "on_disconnected",
            "h2<",
            "h1<",
            "g2<",
            "g1<"
        ]
    );
}

async fn policies_streams_and_layers(protocol: HubProtocol) {
    let served = serve().await;
    let url = served.url.as_str();
    let (anonymous_connection, anonymous) = connect(url, protocol, None, None).await;
    let (sam_connection, sam) = connect(url, protocol, Some("sam"), None).await;
    let (admin_connection, admin) = connect(url, protocol, Some("ada:admin"), None).await;

    // A policy with state registered on the server, awaiting.
    assert_eq!(sam.staff().await.unwrap(), "staff");
    unauthorized(admin.staff().await.unwrap_err(), "Staff");
    unauthorized(anonymous.staff().await.unwrap_err(), "Staff");
    // A policy over the arguments.
    assert_eq!(sam.own_room("sam".into()).await.unwrap(), "sam");
    unauthorized(sam.own_room("ada".into()).await.unwrap_err(), "OwnRoom");

    // A server stream and an upload stream under `#[authorize]`.
    let items: Vec<u32> = admin
        .numbers(3)
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(items, [0, 1, 2]);
    let refused: Vec<Result<u32, HubError>> = sam.numbers(3).unwrap().collect().await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    unauthorized(refused.into_iter().next().unwrap().unwrap_err(), "Numbers");
    let upload = || futures_util::stream::iter([1_u32, 2, 3]);
    assert_eq!(admin.total(upload()).await.unwrap(), 6);
    unauthorized(sam.total(upload()).await.unwrap_err(), "Total");
    assert_eq!(sam.open().await.unwrap(), "open", "still connected");
    assert_eq!(sam_connection.state(), HubConnectionState::Connected);

    // A tower layer's extension reaches the authenticator.
    let (layered_connection, layered) =
        connect(url, protocol, None, Some(("X-Layer-User", "zed"))).await;
    assert_eq!(layered.layer_user().await.unwrap().as_deref(), Some("zed"));
    assert_eq!(anonymous.layer_user().await.unwrap(), None);
    assert!(layered.remote_is_loopback().await.unwrap());

    for connection in [
        anonymous_connection,
        sam_connection,
        admin_connection,
        layered_connection,
    ] {
        connection.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_streams_and_layers_json() {
    policies_streams_and_layers(HubProtocol::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_streams_and_layers_messagepack() {
    policies_streams_and_layers(HubProtocol::MessagePack).await;
}

/// A hub closed by a hub-level policy.
#[hub_server]
pub trait IClosedHub {
    /// A greeting.
    async fn hello(&self) -> String;
}

/// A hub whose whole-hub policy refuses: 401 at negotiate.
struct Closed;

#[hub(client = IGuardedClient)]
#[authorize(policy = StaffList)]
impl IClosedHub for Closed {
    async fn hello(&self) -> String {
        "hello".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_level_policy_answers_401_at_negotiate() {
    let hub = HubServer::builder(Closed)
        .authenticator(Tokens)
        .policy(StaffList(vec!["sam".into()]))
        .build();
    let app = axum::Router::new().nest("/hubs/closed", hub.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{address}/hubs/closed");
    for token in [None, Some("ada:admin")] {
        let mut builder = HubConnection::builder(url.as_str());
        if let Some(token) = token {
            builder = builder.access_token(move || Some(token.to_owned()));
        }
        let error = builder.build().unwrap().start().await.unwrap_err();
        assert!(error.message().contains("401"), "{error}");
    }
    let connection = HubConnection::builder(url.as_str())
        .access_token(|| Some("sam".to_owned()))
        .build()
        .unwrap();
    connection.start().await.unwrap();
    let hello = connection.hub::<IClosedHubProxy>().hello().await.unwrap();
    assert_eq!(hello, "hello");
    connection.stop().await;
}
