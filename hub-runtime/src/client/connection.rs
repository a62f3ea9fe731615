//! [`HubConnection`]: the client's public API. What it drives lives
//! next to it: the shared state and call table ([`shared`](super::shared),
//! [`in_flight`](super::in_flight)), the session and reconnect loop
//! ([`session`](super::session)), the connection's tasks
//! ([`writer`](super::writer), [`reader`](super::reader),
//! [`dispatcher`](super::dispatcher)) and the transports
//! ([`transport`](super::transport)).

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::arguments::{CallArguments, IntoArguments};
use super::config::Config;
use super::events::{HubConnectionEvent, HubConnectionState};
use super::session::run_session;
use super::shared::{CallKind, Shared, StreamRegistration, closed_error};
use super::stream::HubStream;
use crate::handlers::{ClientHandlers, ClientMethodResult};
use crate::hub::Arguments;
use crate::protocol::negotiate::TransportType;
use crate::protocol::{CompletionResult, HubProtocol, Payload};
use crate::{HubError, HubErrorKind};

/// A connection to a hub; cheap to clone (all clones drive the same
/// connection).
///
/// Made by [`HubConnectionBuilder`](super::HubConnectionBuilder). See the
/// [module documentation](super) for an example.
///
/// Dropping the last clone stops the connection (as `stop()` would, without
/// waiting). A handler that captures a clone keeps the connection alive
/// until `stop()` is called.
#[derive(Clone)]
pub struct HubConnection {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for HubConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnection")
            .field("url", &self.shared.config.url.to_string())
            .field("state", &self.state())
            .field("connection_id", &self.connection_id())
            .field("transport", &self.transport())
            .finish()
    }
}

/// Stops the connection when the last user handle goes away.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.request_stop();
    }
}

impl HubConnection {
    pub(crate) fn new(config: Config, handlers: ClientHandlers) -> Self {
        let shared = Arc::new(Shared::new(config, handlers));
        HubConnection {
            _owner: Arc::new(Owner {
                shared: shared.clone(),
            }),
            shared,
        }
    }

    /// Connects: negotiates (unless skipped), opens the WebSocket and
    /// completes the handshake. Resolves once the connection is
    /// [`Connected`](HubConnectionState::Connected).
    ///
    /// Fails when the connection is not `Disconnected`, or with the error
    /// that stopped the attempt. A failed `start()` is not retried by
    /// automatic reconnect, as in the official clients.
    pub async fn start(&self) -> Result<(), HubError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        self.shared.begin_session(stop_tx)?;
        let (started_tx, started_rx) = oneshot::channel();
        tokio::spawn(run_session(self.shared.clone(), stop_rx, started_tx));
        match started_rx.await {
            Ok(result) => result,
            Err(_) => Err(closed_error(
                "The connection was stopped before the hub handshake could complete.",
            )),
        }
    }

    /// Stops the connection: sends a Close message (`{"type":7}`) when
    /// connected, closes the socket, and waits until the state is
    /// `Disconnected`. Automatic reconnect does not run after `stop()`;
    /// pending invocations fail with [`HubErrorKind::ConnectionClosed`].
    /// Does nothing when already disconnected.
    pub async fn stop(&self) {
        let mut state = self.shared.state.subscribe();
        self.shared.request_stop();
        // The session ends at `Disconnected`; a closed channel cannot happen
        // while `self` holds `inner`, and would mean the same anyway.
        let _ = state
            .wait_for(|state| *state == HubConnectionState::Disconnected)
            .await;
    }

    /// Invokes the hub method `method` and waits for its result.
    ///
    /// `args` is a tuple of serializable values (`("hello",)`, `(1, 2)`),
    /// `()` for none, or a `Vec<Payload>`; see [`IntoArguments`]. The result
    /// is deserialized into `T`; a method without a result answers `null`,
    /// which `()` and `Option<_>` accept.
    ///
    /// Errors: [`HubErrorKind::Remote`] with the server's text when the hub
    /// method failed; [`HubErrorKind::ConnectionClosed`] when the connection
    /// is not `Connected` or closes before the result arrives;
    /// [`HubErrorKind::Serialization`] when an argument or the result does
    /// not (de)serialize.
    ///
    /// `args` may include upload streams ([`upload`](super::upload),
    /// [`try_upload`](super::try_upload)): they become the message's
    /// `streamIds` and are sent item by item; see
    /// [`Upload`](super::Upload).
    ///
    /// Dropping the returned future forgets the invocation (its result is
    /// ignored when it arrives) and ends its uploads with an error.
    pub async fn invoke<T>(&self, method: &str, args: impl IntoArguments) -> Result<T, HubError>
    where
        T: DeserializeOwned,
    {
        let arguments = args.into_call_arguments(self.shared.config.protocol)?;
        let result = self.invoke_arguments(method, arguments).await?;
        let payload = match result {
            CompletionResult::Value(payload) => payload,
            CompletionResult::Void => Payload::null(),
            CompletionResult::Error(error) => {
                return Err(HubError::with_kind(HubErrorKind::Remote, error));
            }
        };
        payload.deserialize().map_err(|e| {
            HubError::with_kind(
                HubErrorKind::Serialization,
                format!("Failed to deserialize the result of '{method}': {e}"),
            )
        })
    }

    /// Invokes `method` with encoded arguments; resolves with the raw
    /// outcome of its Completion.
    pub(super) async fn invoke_arguments(
        &self,
        method: &str,
        arguments: CallArguments,
    ) -> Result<CompletionResult, HubError> {
        let (tx, rx) = oneshot::channel();
        let id = self
            .shared
            .begin_call(method, arguments, CallKind::Invoke(tx), None)?
            .unwrap_or_default();
        let guard = ForgetOnDrop {
            shared: &self.shared,
            id,
        };
        let result = rx.await;
        drop(guard);
        match result {
            Ok(result) => result,
            Err(_) => Err(closed_error(
                "Invocation canceled due to the underlying connection being closed.",
            )),
        }
    }

    /// Calls the hub method `method` without waiting for it to run
    /// (fire-and-forget: the server sends nothing back). Resolves once the
    /// message has been written to the socket; upload streams among `args`
    /// go on in the background until they end or the connection closes.
    ///
    /// Fails with [`HubErrorKind::ConnectionClosed`] when not `Connected` or
    /// when the socket fails, and [`HubErrorKind::Serialization`] when an
    /// argument does not serialize.
    pub async fn send(&self, method: &str, args: impl IntoArguments) -> Result<(), HubError> {
        let arguments = args.into_call_arguments(self.shared.config.protocol)?;
        let (sent_tx, sent_rx) = oneshot::channel();
        self.shared
            .begin_call(method, arguments, CallKind::Send, Some(sent_tx))?;
        match sent_rx.await {
            Ok(result) => result,
            Err(_) => Err(closed_error(
                "Invocation canceled due to the underlying connection being closed.",
            )),
        }
    }

    /// Calls the streaming hub method `method` (a StreamInvocation, type 4)
    /// and returns its items as a [`HubStream`] of `T`.
    ///
    /// Returns at once: the items arrive as the server sends them. `args`
    /// work as for [`invoke`](Self::invoke), upload streams included.
    /// Dropping the stream (or [`HubStream::cancel`]) sends a
    /// CancelInvocation.
    ///
    /// Fails with [`HubErrorKind::ConnectionClosed`] when not `Connected`
    /// and [`HubErrorKind::Serialization`] when an argument does not
    /// serialize; the server's errors arrive as the stream's last item.
    pub fn stream<T>(
        &self,
        method: &str,
        args: impl IntoArguments,
    ) -> Result<HubStream<T>, HubError>
    where
        T: DeserializeOwned,
    {
        let arguments = args.into_call_arguments(self.shared.config.protocol)?;
        self.open_stream(method, arguments)
    }

    /// Starts a stream invocation whose items are deserialized by the
    /// caller (into `T` by `HubStream`'s `Stream` impl, or by a typed
    /// proxy).
    pub(super) fn open_stream<T>(
        &self,
        method: &str,
        arguments: CallArguments,
    ) -> Result<HubStream<T>, HubError> {
        let (items_tx, items_rx) = mpsc::channel(self.shared.config.stream_buffer_capacity);
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let kind = CallKind::Stream {
            items: items_tx,
            outcome: outcome_tx,
        };
        let id = self
            .shared
            .begin_call(method, arguments, kind, None)?
            .unwrap_or_default();
        Ok(HubStream::new(
            method,
            items_rx,
            outcome_rx,
            StreamRegistration {
                shared: self.shared.clone(),
                id,
            },
        ))
    }

    /// Adds client methods the server can call (what a `#[hub_client]`
    /// trait's `into_handlers()` returns). Names match case-insensitively;
    /// several handlers for one name all run. Takes effect for invocations
    /// that arrive afterwards.
    pub fn register(&self, handlers: ClientHandlers) {
        self.shared
            .update_handlers(|current| current.extend(handlers));
    }

    /// Adds one client method `name` taking `parameters` arguments, from a
    /// closure. Return `Ok(Some(payload))` to answer a client-result
    /// invocation, `Ok(None)` for a method without a result.
    ///
    /// ```
    /// # use hub_runtime::client::HubConnection;
    /// # fn wire(connection: &HubConnection) {
    /// connection.on("Receive", 1, |args| async move {
    ///     let message: String = args.bind(0)?;
    ///     println!("{message}");
    ///     Ok(None)
    /// });
    /// # }
    /// ```
    pub fn on<F, Fut>(&self, name: &'static str, parameters: usize, handler: F)
    where
        F: Fn(Arguments) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ClientMethodResult> + Send + 'static,
    {
        let mut handlers = ClientHandlers::new();
        handlers.insert(
            name,
            parameters,
            Arc::new(move |arguments| Box::pin(handler(arguments))),
        );
        self.register(handlers);
    }

    /// Removes every handler of the client method `name` (compared
    /// case-insensitively), as the official clients' `off(methodName)`:
    /// invocations of it that arrive afterwards find no handler (and a
    /// client-result invocation is answered with an error). Returns how
    /// many handlers were removed.
    ///
    /// ```
    /// # use hub_runtime::client::HubConnection;
    /// # fn wire(connection: &HubConnection) {
    /// connection.on("Receive", 1, |_| async { Ok(None) });
    /// assert_eq!(connection.off("receive"), 1);
    /// assert_eq!(connection.off("Receive"), 0);
    /// # }
    /// ```
    pub fn off(&self, name: &str) -> usize {
        let mut removed = 0;
        self.shared
            .update_handlers(|handlers| removed = handlers.remove(name));
        removed
    }

    /// The current state.
    pub fn state(&self) -> HubConnectionState {
        *self.shared.state.borrow()
    }

    /// A receiver of every state change (a `tokio::sync::watch`: it always
    /// holds the latest state).
    pub fn state_changes(&self) -> watch::Receiver<HubConnectionState> {
        self.shared.state.subscribe()
    }

    /// A receiver of the connection's events from now on: `Reconnecting`,
    /// `Reconnected` and `Closed` (a `tokio::sync::broadcast` of capacity
    /// 64; a receiver that falls further behind loses the oldest events).
    pub fn events(&self) -> broadcast::Receiver<HubConnectionEvent> {
        self.shared.events()
    }

    /// The connection id the server assigned at negotiate: the current
    /// connection's while connected (it changes on every reconnect), `None`
    /// before the first start or when negotiation is skipped.
    pub fn connection_id(&self) -> Option<String> {
        self.shared.connection_id()
    }

    /// The transport the current connection actually uses: the one the
    /// fallback among [`Transports`](super::Transports) settled on (always
    /// WebSockets with `skip_negotiation`).
    ///
    /// `Some` from the moment `start()` or a reconnect succeeds until that
    /// connection ends; `None` before, while reconnecting and after the
    /// connection closed. Each reconnect chooses again, so a reconnected
    /// connection may report a different transport than the lost one.
    ///
    /// ```no_run
    /// use hub_runtime::client::{HubConnection, TransportType, Transports};
    ///
    /// # async fn run() -> Result<(), hub_runtime::HubError> {
    /// let connection = HubConnection::builder("http://127.0.0.1:5000/hubs/clock")
    ///     .transports(Transports { web_sockets: false, ..Transports::ALL })
    ///     .build()?;
    /// assert_eq!(connection.transport(), None);
    /// connection.start().await?;
    /// // Server-Sent Events, unless the server does not offer them or
    /// // they failed to start: then Long Polling.
    /// assert_ne!(connection.transport(), Some(TransportType::WebSockets));
    /// # Ok(())
    /// # }
    /// ```
    pub fn transport(&self) -> Option<TransportType> {
        self.shared.transport()
    }

    /// The hub protocol in use.
    pub fn protocol(&self) -> HubProtocol {
        self.shared.config.protocol
    }
}

/// Forgets an invocation whose caller stopped waiting.
struct ForgetOnDrop<'a> {
    shared: &'a Shared,
    id: String,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.shared.forget(&self.id);
    }
}
