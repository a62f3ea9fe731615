//! The conformance hub's contract (`/work/shared/conformance-hub.md`):
//! [`ConformanceHub`], the methods clients invoke, and
//! [`ConformanceClient`], the methods the hub calls back. The
//! `conformance-server` binary implements the first; every Rust test that
//! talks to it calls the hub through the typed proxy
//! ([`ConformanceHubProxy`]) and answers with [`Callbacks`].
//!
//! Adding a hub method: declare it here (its wire name is the PascalCase of
//! its Rust name) and implement it in `src/bin/conformance-server.rs`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use hub_runtime::client::{HubConnection, HubConnectionBuilder};
use hub_runtime::hub::UploadStream;
use hub_runtime::{CallContext, HubError, hub_client, hub_server};
use tokio::sync::{Notify, mpsc};

/// The client methods the conformance hub calls back.
#[hub_client]
pub trait ConformanceClient {
    /// A message from `Broadcast`, `SendToOthers`, `SendToConnection`,
    /// `SendToGroup` or `SendToUser`.
    async fn receive(&self, message: String);

    /// A client result: the client answers the server's question.
    async fn question(&self, question: String) -> String;
}

/// The conformance hub's methods, at `/hubs/test`.
#[hub_server]
pub trait ConformanceHub {
    /// Returns `message` unchanged.
    async fn echo(&self, message: String) -> String;

    /// `a + b` (64-bit, wrapping).
    async fn add(&self, a: i64, b: i64) -> i64;

    /// The caller's connection id.
    async fn get_connection_id(&self, ctx: &CallContext<Self>) -> String;

    /// `Receive(message)` on every client.
    async fn broadcast(&self, ctx: &CallContext<Self>, message: String) -> Result<(), HubError>;

    /// `Receive(message)` on every client but the caller.
    async fn send_to_others(
        &self,
        ctx: &CallContext<Self>,
        message: String,
    ) -> Result<(), HubError>;

    /// `Receive(message)` on one connection.
    async fn send_to_connection(
        &self,
        ctx: &CallContext<Self>,
        connection_id: String,
        message: String,
    ) -> Result<(), HubError>;

    /// Adds the caller to `group`.
    async fn join_group(&self, ctx: &CallContext<Self>, group: String) -> Result<(), HubError>;

    /// Removes the caller from `group`.
    async fn leave_group(&self, ctx: &CallContext<Self>, group: String) -> Result<(), HubError>;

    /// `Receive(message)` on every member of `group`.
    async fn send_to_group(
        &self,
        ctx: &CallContext<Self>,
        group: String,
        message: String,
    ) -> Result<(), HubError>;

    /// `Receive(message)` on every connection of `user`.
    async fn send_to_user(
        &self,
        ctx: &CallContext<Self>,
        user: String,
        message: String,
    ) -> Result<(), HubError>;

    /// The caller's user id, `None` when anonymous.
    async fn whoami(&self, ctx: &CallContext<Self>) -> Option<String>;

    /// Fails with `message`.
    async fn fail(&self, message: String) -> Result<(), HubError>;

    /// Asks the caller `Question(question)` (a client result) and returns
    /// its answer.
    async fn ask_client(
        &self,
        ctx: &CallContext<Self>,
        question: String,
    ) -> Result<String, HubError>;

    /// Asks `Question(question)` of one connection and returns its answer.
    async fn ask_connection(
        &self,
        ctx: &CallContext<Self>,
        connection_id: String,
        question: String,
    ) -> Result<String, HubError>;

    /// Returns any JSON value unchanged.
    async fn echo2(&self, value: serde_json::Value) -> serde_json::Value;

    /// Streams `0, 1, …, count-1`, `delay_ms` apart; stops when canceled.
    async fn counter(&self, count: i64, delay_ms: u64) -> impl Stream<Item = i64>;

    /// The sum of an upload stream, once the client completes it.
    async fn sum(&self, numbers: UploadStream<i64>) -> Result<i64, HubError>;

    /// The caller's user and roles (distinct, in ordinal order).
    async fn claims(&self, ctx: &CallContext<Self>) -> CallerClaims;

    /// `"admin ok"`, for callers with the role `admin` (declared with
    /// `#[authorize]` on the implementation).
    async fn admin_only(&self) -> String;

    /// `"authenticated ok"`, for authenticated callers.
    async fn authenticated_only(&self) -> String;

    /// The header `name` of the request that opened the caller's
    /// connection.
    async fn request_header(&self, ctx: &CallContext<Self>, name: String) -> Option<String>;

    /// Stores `value` under `key` for the caller's connection.
    async fn set_item(&self, ctx: &CallContext<Self>, key: String, value: String);

    /// What the caller's connection stored under `key`.
    async fn get_item(&self, ctx: &CallContext<Self>, key: String) -> Option<String>;

    /// Aborts the caller's connection.
    async fn abort_me(&self, ctx: &CallContext<Self>);

    /// Aborts connection `connection_id` (on any node); `true` if it was
    /// connected to this one.
    async fn kick(&self, ctx: &CallContext<Self>, connection_id: String) -> Result<bool, HubError>;

    /// How many earlier invocations of this connection authorization and
    /// the hub filter passed on to their method.
    async fn invocation_count(&self, ctx: &CallContext<Self>) -> u64;
}

/// What `Claims` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallerClaims {
    /// The user, `None` when anonymous.
    pub user: Option<String>,
    /// The roles, distinct, in ordinal order.
    pub roles: Vec<String>,
}

/// `/hubs/secure`: authenticated users only (declared on the
/// implementation with `#[authorize]`).
#[hub_server]
pub trait ConformanceSecureHub {
    /// The caller's user id.
    async fn whoami(&self, ctx: &CallContext<Self>) -> Option<String>;
}

/// Generous: the machine running the tests may be busy.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// `future`'s output, or a panic naming `what` after [`PATIENCE`].
///
/// # Panics
/// When `future` takes longer than [`PATIENCE`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
}

/// A test connection's [`ConformanceClient`]: `Receive` goes to an inbox,
/// `Question(q)` answers `"NAME answers q"`, and the question `"wait"` is
/// answered only once the `Notify` from [`Callbacks::new`] is notified.
pub struct Callbacks {
    name: String,
    inbox: mpsc::UnboundedSender<String>,
    release: Arc<Notify>,
}

impl Callbacks {
    /// Callbacks answering as `name`, the receiver of what `Receive` gets,
    /// and the `Notify` that releases a `"wait"` question.
    pub fn new(name: &str) -> (Callbacks, mpsc::UnboundedReceiver<String>, Arc<Notify>) {
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let callbacks = Callbacks {
            name: name.to_owned(),
            inbox: inbox_tx,
            release: release.clone(),
        };
        (callbacks, inbox, release)
    }
}

impl ConformanceClient for Callbacks {
    async fn receive(&self, message: String) {
        let _ = self.inbox.send(message);
    }

    async fn question(&self, question: String) -> String {
        if question == "wait" {
            self.release.notified().await;
        }
        format!("{} answers {question}", self.name)
    }
}

/// A client of the conformance hub: its connection, the typed proxy over
/// it, what its `Receive` got, and the `Notify` that releases a `"wait"`
/// question.
pub struct ConformanceConnection {
    /// The connection (not started by [`ConformanceConnection::new`]).
    pub connection: HubConnection,
    /// The hub's methods, called over `connection`.
    pub hub: ConformanceHubProxy,
    /// Every message `Receive` got, in order.
    pub inbox: mpsc::UnboundedReceiver<String>,
    /// Notify it once to answer a pending `"wait"` question.
    pub release: Arc<Notify>,
}

impl ConformanceConnection {
    /// A connection built by `builder` with [`Callbacks`] named `name`
    /// registered; not started yet.
    ///
    /// # Errors
    /// When the builder refuses its settings.
    pub fn new(builder: HubConnectionBuilder, name: &str) -> Result<Self, HubError> {
        let (callbacks, inbox, release) = Callbacks::new(name);
        let connection = builder.handlers(callbacks.into_handlers()).build()?;
        let hub = connection.hub::<ConformanceHubProxy>();
        Ok(ConformanceConnection {
            connection,
            hub,
            inbox,
            release,
        })
    }

    /// Starts the connection, within [`PATIENCE`].
    ///
    /// # Errors
    /// When the connection cannot start.
    ///
    /// # Panics
    /// When starting takes longer than [`PATIENCE`].
    pub async fn start(&self) -> Result<(), HubError> {
        within("start()", self.connection.start()).await
    }

    /// The next message `Receive` got.
    ///
    /// # Panics
    /// When none arrives within [`PATIENCE`].
    pub async fn next(&mut self) -> String {
        within("a Receive message", self.inbox.recv())
            .await
            .expect("the handlers were dropped")
    }

    /// Asserts that nothing was received so far: asks the server to send
    /// this connection a marker, which arrives after anything sent to it
    /// before (one connection's messages stay in order, and handlers start
    /// in arrival order), and checks that the marker comes first.
    ///
    /// # Panics
    /// When something else arrives first.
    pub async fn assert_nothing_received(&mut self) {
        let id = self
            .connection
            .connection_id()
            .expect("the connection is started");
        let marker = format!("marker for {id}");
        within(
            "SendToConnection",
            self.hub.send_to_connection(id, marker.clone()),
        )
        .await
        .expect("SendToConnection succeeds");
        assert_eq!(self.next().await, marker, "an unexpected message arrived");
    }

    /// Stops the connection.
    pub async fn stop(self) {
        self.connection.stop().await;
    }
}
