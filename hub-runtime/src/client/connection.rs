//! [`HubConnection`]: the connection's life cycle, its tasks and its calls.
//!
//! One *session* task per `start()` owns everything that changes the state:
//! it connects, waits for the live connection to end, reconnects following
//! the policy, and finally reports `Closed`. Each live connection has three
//! tasks of its own:
//!
//! - the **writer** owns the socket's sending half and an unbounded queue of
//!   already-encoded messages; it coalesces queued messages into one frame
//!   and sends a Ping when nothing was sent for the keep-alive interval;
//! - the **reader** owns the receiving half, decodes with a
//!   [`MessageDecoder`], completes pending invocations, hands server
//!   invocations to the dispatcher, and enforces the server timeout;
//! - the **dispatcher** runs client-method handlers: each starts in arrival
//!   order, and they run concurrently (a handler may await an `invoke`
//!   whose server method calls back into this client).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info, warn};

use super::arguments::{CallArguments, IntoArguments};
use super::builder::Config;
use super::http_transports::{self, BoxSink, BoxSource};
use super::negotiate;
use super::reconnect::RetryContext;
use super::stream::{HubStream, UploadControl, start_uploads};
use super::transport::{self, transport_error};
use crate::handlers::{ClientHandlers, ClientMethodResult};
use crate::hub::{Arguments, InvocationError};
use crate::protocol::negotiate::TransportType;
use crate::protocol::{
    CancelInvocation, Close, Completion, CompletionResult, HubMessage, HubProtocol, Invocation,
    MessageDecoder, Payload, StreamInvocation,
};
use crate::{HubError, HubErrorKind};

/// The state of a [`HubConnection`], as the official clients name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HubConnectionState {
    /// Not connected; `start()` may be called.
    Disconnected,
    /// `start()` is negotiating, connecting or handshaking.
    Connecting,
    /// Connected: `invoke` and `send` work.
    Connected,
    /// The connection was lost and automatic reconnect is trying again.
    Reconnecting,
    /// `stop()` was called and the connection is closing.
    Disconnecting,
}

/// Something that happened to a [`HubConnection`], delivered to every
/// receiver of [`HubConnection::events`].
#[derive(Debug, Clone)]
pub enum HubConnectionEvent {
    /// The connection was lost and automatic reconnect starts; `error` is
    /// why it was lost (`None` for a clean close by the server).
    Reconnecting {
        /// Why the connection was lost.
        error: Option<HubError>,
    },
    /// Automatic reconnect succeeded with a brand-new connection.
    Reconnected {
        /// The new connection's id (`None` when negotiation is skipped).
        connection_id: Option<String>,
    },
    /// The connection is closed for good (after `stop()`, a server Close
    /// without `allowReconnect`, a loss without automatic reconnect, or
    /// once reconnect gave up). `error` is why, `None` for a clean stop.
    Closed {
        /// Why the connection closed.
        error: Option<HubError>,
    },
}

/// How long a stopping connection waits for the server to close the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes the writer puts in one WebSocket message when it
/// coalesces queued messages.
const MAX_BATCH: usize = 64 * 1024;

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
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for HubConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnection")
            .field("url", &self.inner.config.url.to_string())
            .field("state", &self.state())
            .field("connection_id", &self.connection_id())
            .field("transport", &self.transport())
            .finish()
    }
}

/// Stops the connection when the last user handle goes away.
struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.inner.request_stop();
    }
}

struct Inner {
    config: Config,
    handlers: Mutex<Arc<ClientHandlers>>,
    state: watch::Sender<HubConnectionState>,
    events: broadcast::Sender<HubConnectionEvent>,
    shared: Mutex<Shared>,
}

type PendingSender = oneshot::Sender<Result<CompletionResult, HubError>>;

/// A call awaiting the server's answer.
enum Pending {
    /// An `invoke`: one Completion.
    Invoke {
        result: PendingSender,
        uploads: UploadControl,
    },
    /// A `stream`: StreamItems into `items`, then a Completion into
    /// `outcome`. `outcome` is always decided before `items` is dropped, so
    /// the consumer reads it once the items run out.
    Stream {
        items: mpsc::Sender<Payload>,
        outcome: oneshot::Sender<Result<(), HubError>>,
        uploads: UploadControl,
    },
}

/// What kind of call [`Inner::begin_call`] starts, with where its answer goes.
enum CallKind {
    Send,
    Invoke(PendingSender),
    Stream {
        items: mpsc::Sender<Payload>,
        outcome: oneshot::Sender<Result<(), HubError>>,
    },
}

#[derive(Default)]
struct Shared {
    /// The next invocation or upload-stream id (one counter from 0, as
    /// the JS client).
    next_invocation_id: u64,
    /// The live connection's outbound queue, while Connected.
    outbound: Option<mpsc::UnboundedSender<Outbound>>,
    /// Invocations and streams awaiting their Completion, by id.
    pending: HashMap<String, Pending>,
    /// The live (or last) connection's id.
    connection_id: Option<String>,
    /// The live connection's transport, from `install` to `teardown`.
    transport: Option<TransportType>,
    /// The running session's stop signal.
    stop: Option<watch::Sender<bool>>,
}

/// What the writer sends.
pub(super) enum Outbound {
    /// Encoded messages; `sent` learns whether the socket took them.
    Data {
        bytes: Bytes,
        sent: Option<oneshot::Sender<Result<(), HubError>>>,
    },
    /// Close the socket, first sending a Close message when `message` holds one.
    Close { message: Option<Bytes> },
}

/// Why a live connection ended.
#[derive(Debug)]
struct ConnectionEnd {
    error: Option<HubError>,
    allow_reconnect: bool,
}

/// A live connection: handshake done, tasks running.
struct Live {
    connection_id: Option<String>,
    transport: TransportType,
    outbound: mpsc::UnboundedSender<Outbound>,
    reader: JoinHandle<ConnectionEnd>,
    writer: JoinHandle<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held cannot leave the maps inconsistent in
    // a way that matters more than losing the connection; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn closed_error(message: &str) -> HubError {
    HubError::with_kind(HubErrorKind::ConnectionClosed, message.to_owned())
}

impl HubConnection {
    pub(crate) fn new(config: Config, handlers: ClientHandlers) -> Self {
        let (state, _) = watch::channel(HubConnectionState::Disconnected);
        let (events, _) = broadcast::channel(64);
        let inner = Arc::new(Inner {
            config,
            handlers: Mutex::new(Arc::new(handlers)),
            state,
            events,
            shared: Mutex::new(Shared::default()),
        });
        HubConnection {
            _owner: Arc::new(Owner {
                inner: inner.clone(),
            }),
            inner,
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
        {
            // Under the lock, so that a concurrent `stop()` sees either no
            // session or this one with its stop signal.
            let mut shared = lock(&self.inner.shared);
            let moved = self.inner.state.send_if_modified(|state| {
                if *state == HubConnectionState::Disconnected {
                    *state = HubConnectionState::Connecting;
                    true
                } else {
                    false
                }
            });
            if !moved {
                return Err(HubError::with_kind(
                    HubErrorKind::Transport,
                    "Cannot start a HubConnection that is not in the 'Disconnected' state.",
                ));
            }
            shared.stop = Some(stop_tx);
        }
        let (started_tx, started_rx) = oneshot::channel();
        tokio::spawn(run_session(self.inner.clone(), stop_rx, started_tx));
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
        let mut state = self.inner.state.subscribe();
        self.inner.request_stop();
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
        let arguments = args.into_call_arguments(self.inner.config.protocol)?;
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
            .inner
            .begin_call(method, arguments, CallKind::Invoke(tx), None)?
            .unwrap_or_default();
        let guard = PendingGuard {
            inner: &self.inner,
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
        let arguments = args.into_call_arguments(self.inner.config.protocol)?;
        let (sent_tx, sent_rx) = oneshot::channel();
        self.inner
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
        let arguments = args.into_call_arguments(self.inner.config.protocol)?;
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
        let (items_tx, items_rx) = mpsc::channel(self.inner.config.stream_buffer_capacity);
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let kind = CallKind::Stream {
            items: items_tx,
            outcome: outcome_tx,
        };
        let id = self
            .inner
            .begin_call(method, arguments, kind, None)?
            .unwrap_or_default();
        Ok(HubStream::new(
            method,
            items_rx,
            outcome_rx,
            StreamRegistration {
                inner: self.inner.clone(),
                id,
            },
        ))
    }

    /// Adds client methods the server can call (what a `#[hub_client]`
    /// trait's `into_handlers()` returns). Names match case-insensitively;
    /// several handlers for one name all run. Takes effect for invocations
    /// that arrive afterwards.
    pub fn register(&self, handlers: ClientHandlers) {
        let mut current = lock(&self.inner.handlers);
        let mut merged = ClientHandlers::clone(&current);
        merged.extend(handlers);
        *current = Arc::new(merged);
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

    /// The current state.
    pub fn state(&self) -> HubConnectionState {
        *self.inner.state.borrow()
    }

    /// A receiver of every state change (a `tokio::sync::watch`: it always
    /// holds the latest state).
    pub fn state_changes(&self) -> watch::Receiver<HubConnectionState> {
        self.inner.state.subscribe()
    }

    /// A receiver of the connection's events from now on: `Reconnecting`,
    /// `Reconnected` and `Closed` (a `tokio::sync::broadcast` of capacity
    /// 64; a receiver that falls further behind loses the oldest events).
    pub fn events(&self) -> broadcast::Receiver<HubConnectionEvent> {
        self.inner.events.subscribe()
    }

    /// The connection id the server assigned at negotiate: the current
    /// connection's while connected (it changes on every reconnect), `None`
    /// before the first start or when negotiation is skipped.
    pub fn connection_id(&self) -> Option<String> {
        lock(&self.inner.shared).connection_id.clone()
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
        lock(&self.inner.shared).transport
    }

    /// The hub protocol in use.
    pub fn protocol(&self) -> HubProtocol {
        self.inner.config.protocol
    }
}

fn not_connected() -> HubError {
    closed_error("Cannot send data if the connection is not in the 'Connected' State.")
}

/// A running stream invocation, held by its [`HubStream`].
pub(super) struct StreamRegistration {
    inner: Arc<Inner>,
    id: String,
}

impl StreamRegistration {
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// Forgets the stream and, when the server may still be producing it
    /// on the live connection, sends a CancelInvocation.
    pub(super) fn cancel(self) {
        let mut shared = lock(&self.inner.shared);
        // Gone means already ended (Completion, overflow or connection
        // loss): nothing to cancel.
        let Some(entry) = shared.pending.remove(&self.id) else {
            return;
        };
        if let Some(outbound) = &shared.outbound {
            self.inner.send_cancel(outbound, &self.id);
        }
        // Dropped after the CancelInvocation is queued, so that the
        // uploads' error Completions follow it.
        drop(entry);
    }
}

/// Forgets an invocation whose caller stopped waiting.
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.shared).pending.remove(&self.id);
    }
}

impl Inner {
    fn encode(&self, message: &HubMessage) -> Result<Bytes, HubError> {
        let mut buffer = BytesMut::new();
        self.config
            .protocol
            .encode(message, &mut buffer)
            .map_err(|e| HubError::with_kind(HubErrorKind::Serialization, e.to_string()))?;
        Ok(buffer.freeze())
    }

    /// Queues a CancelInvocation for `id`.
    fn send_cancel(&self, outbound: &mpsc::UnboundedSender<Outbound>, id: &str) {
        let message = HubMessage::CancelInvocation(CancelInvocation {
            headers: Vec::new(),
            invocation_id: id.to_owned(),
        });
        if let Ok(bytes) = self.encode(&message) {
            let _ = outbound.send(Outbound::Data { bytes, sent: None });
        }
    }

    /// Starts a call under one lock: allocates the upload-stream ids and
    /// then the invocation id (as the JS client: `Sum` with one upload is
    /// `streamIds:["0"]`, `invocationId:"1"`), queues the message, registers
    /// where the answer goes — before the reader can see it — and launches
    /// the uploads, whose items are queued after the message. Returns the
    /// invocation id (`None` for a send).
    fn begin_call(
        &self,
        method: &str,
        arguments: CallArguments,
        kind: CallKind,
        sent: Option<oneshot::Sender<Result<(), HubError>>>,
    ) -> Result<Option<String>, HubError> {
        let protocol = self.config.protocol;
        let CallArguments { payloads, uploads } = arguments;
        let mut shared = lock(&self.shared);
        let outbound = self.connected_outbound(&shared)?;
        let first = shared.next_invocation_id;
        let after_streams = first + uploads.len() as u64;
        let stream_ids: Vec<String> = (first..after_streams).map(|id| id.to_string()).collect();
        let (invocation_id, next_id) = match kind {
            CallKind::Send => (None, after_streams),
            _ => (Some(after_streams.to_string()), after_streams + 1),
        };
        // With the `opentelemetry` feature: the current span's trace context.
        let headers = crate::telemetry::invocation_headers();
        let message = match &kind {
            CallKind::Stream { .. } => HubMessage::StreamInvocation(StreamInvocation {
                headers,
                invocation_id: invocation_id.clone().unwrap_or_default(),
                target: method.to_owned(),
                arguments: payloads,
                stream_ids: stream_ids.clone(),
            }),
            _ => HubMessage::Invocation(Invocation {
                headers,
                invocation_id: invocation_id.clone(),
                target: method.to_owned(),
                arguments: payloads,
                stream_ids: stream_ids.clone(),
            }),
        };
        let bytes = self.encode(&message)?;
        outbound
            .send(Outbound::Data { bytes, sent })
            .map_err(|_| not_connected())?;
        shared.next_invocation_id = next_id;
        let detached = matches!(kind, CallKind::Send);
        let uploads = start_uploads(&outbound, protocol, uploads, &stream_ids, detached);
        let id = invocation_id.clone().unwrap_or_default();
        match kind {
            CallKind::Send => {}
            CallKind::Invoke(result) => {
                shared
                    .pending
                    .insert(id, Pending::Invoke { result, uploads });
            }
            CallKind::Stream { items, outcome } => {
                shared.pending.insert(
                    id,
                    Pending::Stream {
                        items,
                        outcome,
                        uploads,
                    },
                );
            }
        }
        Ok(invocation_id)
    }

    /// Ends the stream `id` whose consumer took nothing for the whole
    /// `stream_buffer_timeout`: cancels it on the server and fails it.
    fn overflow(&self, id: &str) {
        let mut shared = lock(&self.shared);
        let Some(Pending::Stream { outcome, .. }) = shared.pending.remove(id) else {
            return;
        };
        warn!(
            invocation_id = id,
            "stream consumer too slow; canceling the stream"
        );
        let _ = outcome.send(Err(HubError::with_kind(
            HubErrorKind::Transport,
            format!(
                "The stream was canceled: its consumer left {} items unread for {:?}.",
                self.config.stream_buffer_capacity, self.config.stream_buffer_timeout
            ),
        )));
        if let Some(outbound) = &shared.outbound {
            self.send_cancel(outbound, id);
        }
    }

    fn connected_outbound(
        &self,
        shared: &Shared,
    ) -> Result<mpsc::UnboundedSender<Outbound>, HubError> {
        if *self.state.borrow() != HubConnectionState::Connected {
            return Err(not_connected());
        }
        shared.outbound.clone().ok_or_else(not_connected)
    }

    /// Signals the running session (if any) to stop.
    fn request_stop(&self) {
        let shared = lock(&self.shared);
        if let Some(stop) = &shared.stop {
            stop.send_replace(true);
            self.state.send_if_modified(|state| {
                if *state == HubConnectionState::Disconnected {
                    false
                } else {
                    *state = HubConnectionState::Disconnecting;
                    true
                }
            });
        }
    }

    fn handlers(&self) -> Arc<ClientHandlers> {
        lock(&self.handlers).clone()
    }

    fn emit(&self, event: HubConnectionEvent) {
        // No receiver is fine: nobody listens.
        let _ = self.events.send(event);
    }

    /// Makes `live` the current connection and the state `Connected`,
    /// unless a stop was requested meanwhile.
    fn install(&self, live: &Live) -> bool {
        let mut shared = lock(&self.shared);
        let connected = self.state.send_if_modified(|state| match state {
            HubConnectionState::Connecting | HubConnectionState::Reconnecting => {
                *state = HubConnectionState::Connected;
                true
            }
            _ => false,
        });
        if connected {
            shared.outbound = Some(live.outbound.clone());
            shared.connection_id = live.connection_id.clone();
            shared.transport = Some(live.transport);
        }
        connected
    }

    /// Detaches the ended connection and fails its pending invocations.
    fn teardown(&self, error: Option<&HubError>) {
        let pending = {
            let mut shared = lock(&self.shared);
            shared.outbound = None;
            shared.transport = None;
            std::mem::take(&mut shared.pending)
        };
        let error = error.cloned().unwrap_or_else(|| {
            closed_error("Invocation canceled due to the underlying connection being closed.")
        });
        let error = HubError::with_kind(HubErrorKind::ConnectionClosed, error.message().to_owned());
        for (_, entry) in pending {
            match entry {
                Pending::Invoke { result, .. } => {
                    let _ = result.send(Err(error.clone()));
                }
                Pending::Stream { outcome, .. } => {
                    let _ = outcome.send(Err(error.clone()));
                }
            }
        }
    }

    /// Ends the session: state `Disconnected`, then the `Closed` event when
    /// the connection had started.
    fn finish(&self, closed: Option<Option<HubError>>) {
        {
            let mut shared = lock(&self.shared);
            shared.stop = None;
            self.state.send_replace(HubConnectionState::Disconnected);
        }
        if let Some(error) = closed {
            self.emit(HubConnectionEvent::Closed { error });
        }
    }

    fn complete(&self, id: &str, result: CompletionResult) {
        let entry = lock(&self.shared).pending.remove(id);
        match entry {
            Some(Pending::Invoke {
                result: sender,
                uploads,
            }) => {
                uploads.finish();
                let _ = sender.send(Ok(result));
            }
            Some(Pending::Stream {
                outcome, uploads, ..
            }) => {
                uploads.finish();
                // A result after stream items is ignored, as the JS client does.
                let _ = outcome.send(match result {
                    CompletionResult::Error(error) => {
                        Err(HubError::with_kind(HubErrorKind::Remote, error))
                    }
                    CompletionResult::Void | CompletionResult::Value(_) => Ok(()),
                });
            }
            None => debug!(
                invocation_id = id,
                "completion for an unknown invocation ignored"
            ),
        }
    }
}

/// Waits until `stop` becomes true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The sender lives in `Shared` until the session finishes; if it is
    // gone, nobody can ask to stop any more: wait forever.
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs one `start()` to the final close.
async fn run_session(
    inner: Arc<Inner>,
    mut stop: watch::Receiver<bool>,
    started: oneshot::Sender<Result<(), HubError>>,
) {
    let first = tokio::select! {
        result = connect(&inner) => result,
        () = stopped(&mut stop) => Err(closed_error("The connection was stopped during negotiation.")),
    };
    let mut live = match first {
        Ok(live) => live,
        Err(error) => {
            inner.finish(None);
            let _ = started.send(Err(error));
            return;
        }
    };
    if !inner.install(&live) {
        shut_down(live, &inner).await;
        inner.finish(None);
        let _ = started.send(Err(closed_error(
            "The connection was stopped before the hub handshake could complete.",
        )));
        return;
    }
    let _ = started.send(Ok(()));

    loop {
        let end = run_live(&mut live, &inner, &mut stop).await;
        inner.teardown(end.error.as_ref());
        if *stop.borrow() {
            inner.finish(Some(None));
            return;
        }
        let Some(policy) = inner.config.reconnect.clone() else {
            inner.finish(Some(end.error));
            return;
        };
        if !end.allow_reconnect {
            inner.finish(Some(end.error));
            return;
        }

        let started_at = Instant::now();
        let mut context = RetryContext {
            previous_retry_count: 0,
            elapsed: Duration::ZERO,
            retry_reason: end.error.clone().unwrap_or_else(|| {
                HubError::with_kind(
                    HubErrorKind::ConnectionClosed,
                    "Attempting to reconnect due to a unknown error.",
                )
            }),
        };
        let Some(mut delay) = policy.next_retry_delay(&context) else {
            info!("not reconnecting: the reconnect policy gave up before the first attempt");
            inner.finish(Some(end.error));
            return;
        };
        let reconnecting = inner.state.send_if_modified(|state| {
            if *state == HubConnectionState::Connected {
                *state = HubConnectionState::Reconnecting;
                true
            } else {
                false
            }
        });
        if !reconnecting {
            inner.finish(Some(None));
            return;
        }
        info!(error = ?end.error, "connection lost; reconnecting");
        inner.emit(HubConnectionEvent::Reconnecting {
            error: end.error.clone(),
        });

        live = loop {
            info!(
                attempt = context.previous_retry_count + 1,
                ?delay,
                "reconnect attempt scheduled"
            );
            let attempt = tokio::select! {
                () = stopped(&mut stop) => None,
                result = async {
                    tokio::time::sleep(delay).await;
                    connect(&inner).await
                } => Some(result),
            };
            match attempt {
                None => {
                    inner.finish(Some(None));
                    return;
                }
                Some(Ok(new_live)) => break new_live,
                Some(Err(error)) => {
                    info!(%error, "reconnect attempt failed");
                    context.previous_retry_count += 1;
                    context.elapsed = started_at.elapsed();
                    context.retry_reason = error;
                    match policy.next_retry_delay(&context) {
                        Some(next) => delay = next,
                        None => {
                            info!(
                                attempts = context.previous_retry_count,
                                "reconnect retries exhausted"
                            );
                            inner.finish(Some(Some(context.retry_reason)));
                            return;
                        }
                    }
                }
            }
        };
        if !inner.install(&live) {
            shut_down(live, &inner).await;
            inner.finish(Some(None));
            return;
        }
        info!(connection_id = ?live.connection_id, "reconnected");
        inner.emit(HubConnectionEvent::Reconnected {
            connection_id: live.connection_id.clone(),
        });
    }
}

/// Waits for `live` to end, or stops it when asked to.
async fn run_live(
    live: &mut Live,
    inner: &Inner,
    stop: &mut watch::Receiver<bool>,
) -> ConnectionEnd {
    let lost = |e: tokio::task::JoinError| ConnectionEnd {
        error: Some(transport_error(format!(
            "The connection's reader failed: {e}"
        ))),
        allow_reconnect: true,
    };
    let end = tokio::select! {
        end = &mut live.reader => Some(end.unwrap_or_else(lost)),
        () = stopped(stop) => None,
    };
    match end {
        Some(end) => {
            // The server closed, timed out or broke the protocol: close our
            // side without a Close message.
            let _ = live.outbound.send(Outbound::Close { message: None });
            end
        }
        None => {
            let message = inner.encode(&HubMessage::Close(Close::default())).ok();
            let _ = live.outbound.send(Outbound::Close { message });
            // Give the server a moment to close its side, then cut.
            match tokio::time::timeout(CLOSE_TIMEOUT, &mut live.reader).await {
                Ok(end) => drop(end),
                Err(_) => live.reader.abort(),
            }
            ConnectionEnd {
                error: None,
                allow_reconnect: false,
            }
        }
    }
}

/// Closes a connection that will not be used (stop raced with connect).
async fn shut_down(mut live: Live, inner: &Inner) {
    let message = inner.encode(&HubMessage::Close(Close::default())).ok();
    let _ = live.outbound.send(Outbound::Close { message });
    if tokio::time::timeout(CLOSE_TIMEOUT, &mut live.reader)
        .await
        .is_err()
    {
        live.reader.abort();
    }
    live.writer.abort();
}

/// Negotiates, opens the WebSocket, handshakes and starts the tasks.
/// Opens a new WebSocket to the same connection, for stateful reconnect.
fn reopen_websocket(
    config: &super::builder::Config,
    url: &super::url::HubUrl,
    id: &str,
) -> super::stateful::Reopen {
    let config = config.clone();
    let url = url.clone();
    let id = id.to_owned();
    Box::new(move || {
        let config = config.clone();
        let url = url.clone();
        let id = id.clone();
        Box::pin(async move {
            let token = config.access_token().await;
            let ws_url = url.websocket_url(Some(&id), token.as_deref());
            transport::connect(
                &ws_url,
                token.as_deref(),
                &config.headers,
                config.max_message_size,
                config.http_timeout,
            )
            .await
            .map(http_transports::boxed_websocket)
        })
    })
}

/// A transport that started: its halves and what the negotiation that
/// led to it settled on.
struct Opened {
    sink: BoxSink,
    source: BoxSource,
    transport: TransportType,
    connection_id: Option<String>,
    resume: Option<super::stateful::Reopen>,
}

/// Negotiates and opens the first transport that works, in the server's
/// order among those the configuration allows; after a failed one, it
/// negotiates again (the failed attempt may have used the token up), as
/// the official clients do.
async fn open_transport(config: &super::builder::Config) -> Result<Opened, HubError> {
    let protocol = config.protocol;
    let format = protocol.transfer_format();
    if config.skip_negotiation {
        let token = config.access_token().await;
        let ws_url = config.url.websocket_url(None, token.as_deref());
        let stream = transport::connect(
            &ws_url,
            token.as_deref(),
            &config.headers,
            config.max_message_size,
            config.http_timeout,
        )
        .await?;
        let (sink, source) = http_transports::boxed_websocket(stream);
        return Ok(Opened {
            sink,
            source,
            transport: TransportType::WebSockets,
            connection_id: None,
            resume: None,
        });
    }
    let allowed = |transport: &TransportType| match transport {
        TransportType::WebSockets => config.transports.web_sockets,
        TransportType::ServerSentEvents => config.transports.server_sent_events,
        TransportType::LongPolling => config.transports.long_polling,
    };
    let mut tried: Vec<TransportType> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    loop {
        let token = config.access_token().await;
        let negotiated = negotiate::negotiate(
            &config.url,
            token,
            &config.headers,
            format,
            config.http_timeout,
            config.stateful_reconnect.is_some(),
        )
        .await?;
        let next = negotiated
            .transports
            .iter()
            .copied()
            .find(|t| allowed(t) && !tried.contains(t));
        let Some(transport) = next else {
            return Err(transport_error(if errors.is_empty() {
                "Unable to connect to the server with any of the available transports: \
                 none of them is enabled in this client."
                    .to_owned()
            } else {
                format!(
                    "Unable to connect to the server with any of the available transports. {}",
                    errors.join(" ")
                )
            }));
        };
        tried.push(transport);
        // The token is fetched again for the transport, as the official
        // clients do; a redirect's token replaces the provider.
        let token = match &negotiated.redirect_token {
            Some(token) => Some(token.clone()),
            None => config.access_token().await,
        };
        let id = negotiated.connection_token.as_deref().unwrap_or_default();
        let opened = match transport {
            TransportType::WebSockets => {
                let ws_url = negotiated.url.websocket_url(Some(id), token.as_deref());
                debug!(url = %ws_url, "opening WebSocket");
                transport::connect(
                    &ws_url,
                    token.as_deref(),
                    &config.headers,
                    config.max_message_size,
                    config.http_timeout,
                )
                .await
                .map(http_transports::boxed_websocket)
            }
            TransportType::ServerSentEvents => {
                debug!("opening a Server-Sent Events stream");
                http_transports::open_server_sent_events(
                    &negotiated.url,
                    id,
                    token.as_deref(),
                    &config.headers,
                    config.http_timeout,
                )
                .await
            }
            TransportType::LongPolling => {
                debug!("starting Long Polling");
                http_transports::open_long_polling(
                    &negotiated.url,
                    id,
                    token.as_deref(),
                    &config.headers,
                    config.http_timeout,
                    format,
                )
                .await
            }
        };
        // Stateful reconnect: WebSockets only, when the server agreed. A
        // resume opens the same URL with a fresh token.
        let resume = (negotiated.stateful_reconnect
            && transport == TransportType::WebSockets
            && config.stateful_reconnect.is_some())
        .then(|| reopen_websocket(config, &negotiated.url, id));
        match opened {
            Ok((sink, source)) => {
                return Ok(Opened {
                    sink,
                    source,
                    transport,
                    connection_id: negotiated.connection_id,
                    resume,
                });
            }
            Err(error) => {
                warn!(?transport, %error, "transport failed to start; trying the next one");
                errors.push(format!("{}: {}", transport.name(), error.message()));
            }
        }
    }
}

async fn connect(inner: &Arc<Inner>) -> Result<Live, HubError> {
    let config = &inner.config;
    let protocol = config.protocol;
    let Opened {
        mut sink,
        mut source,
        transport: transport_type,
        connection_id,
        resume,
    } = open_transport(config).await?;
    let version = if resume.is_some() { 2 } else { 1 };
    let leftover = match transport::handshake(
        &mut sink,
        &mut source,
        protocol,
        version,
        config.handshake_timeout,
    )
    .await
    {
        Ok(leftover) => leftover,
        Err(error) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
            return Err(error);
        }
    };
    debug!(
        ?connection_id,
        transport = transport_type.name(),
        "handshake complete"
    );
    let (sink, source, leftover) = match (resume, config.stateful_reconnect) {
        (Some(reopen), Some(buffer_size)) => {
            super::stateful::wrap(sink, source, leftover, protocol, buffer_size, reopen)
        }
        _ => (sink, source, leftover),
    };

    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let (failed_tx, failed_rx) = oneshot::channel();
    let (dispatch_tx, dispatch_rx) = mpsc::unbounded_channel();

    // A Ping right after the handshake, as the official clients do; it
    // also turns on the server's client timeout.
    let ping = inner.encode(&HubMessage::Ping)?;
    let _ = outbound_tx.send(Outbound::Data {
        bytes: ping,
        sent: None,
    });

    let writer = tokio::spawn(run_writer(
        sink,
        outbound_rx,
        protocol,
        config.keep_alive_interval,
        inner.encode(&HubMessage::Ping)?,
        failed_tx,
    ));
    tokio::spawn(run_dispatcher(
        inner.clone(),
        dispatch_rx,
        outbound_tx.clone(),
    ));
    let reader = tokio::spawn(run_reader(
        inner.clone(),
        source,
        leftover,
        protocol.decoder(config.max_message_size),
        config.server_timeout,
        dispatch_tx,
        failed_rx,
    ));
    Ok(Live {
        connection_id,
        transport: transport_type,
        outbound: outbound_tx,
        reader,
        writer,
    })
}

/// Sends queued messages, coalescing them, and Pings when idle.
async fn run_writer(
    mut sink: BoxSink,
    mut queue: mpsc::UnboundedReceiver<Outbound>,
    protocol: HubProtocol,
    keep_alive: Duration,
    ping: Bytes,
    failed: oneshot::Sender<HubError>,
) {
    let mut last_send = Instant::now();
    let mut failed = Some(failed);
    loop {
        let first = tokio::select! {
            item = queue.recv() => item,
            () = tokio::time::sleep_until(last_send + keep_alive) => Some(Outbound::Data { bytes: ping.clone(), sent: None }),
        };
        let mut close = None;
        let mut batch = BytesMut::new();
        let mut acks = Vec::new();
        match first {
            None => close = Some(None),
            Some(Outbound::Close { message }) => close = Some(message),
            Some(Outbound::Data { bytes, sent }) => {
                batch.extend_from_slice(&bytes);
                acks.extend(sent);
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(Outbound::Data { bytes, sent }) => {
                            batch.extend_from_slice(&bytes);
                            acks.extend(sent);
                        }
                        Ok(Outbound::Close { message }) => {
                            close = Some(message);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        if let Some(Some(message)) = &close {
            batch.extend_from_slice(message);
        }
        if !batch.is_empty() {
            let frame = match protocol.transfer_format() {
                crate::protocol::TransferFormat::Text => {
                    match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(batch.freeze()) {
                        Ok(text) => Message::Text(text),
                        Err(_) => {
                            // The JSON encoder only writes UTF-8; refuse rather than corrupt.
                            let error = transport_error("refusing to send invalid UTF-8 text");
                            for ack in acks {
                                let _ = ack.send(Err(error.clone()));
                            }
                            continue;
                        }
                    }
                }
                crate::protocol::TransferFormat::Binary => Message::Binary(batch.freeze()),
            };
            let result = sink
                .send(frame)
                .await
                .map_err(|e| closed_error(&format!("Failed to send to the server: {e}")));
            last_send = Instant::now();
            for ack in acks {
                let _ = ack.send(result.clone());
            }
            if let Err(error) = result {
                if let Some(failed) = failed.take() {
                    let _ = failed.send(error);
                }
                return;
            }
        }
        if close.is_some() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
            return;
        }
    }
}

/// Reads and decodes; returns why the connection ended.
async fn run_reader(
    inner: Arc<Inner>,
    mut source: BoxSource,
    mut buffer: BytesMut,
    mut decoder: MessageDecoder,
    server_timeout: Duration,
    dispatch: mpsc::UnboundedSender<Invocation>,
    mut writer_failed: oneshot::Receiver<HubError>,
) -> ConnectionEnd {
    let mut deadline = Instant::now() + server_timeout;
    let mut close_error: Option<HubError> = None;
    loop {
        if let Some(end) = drain(&inner, &mut decoder, &mut buffer, &dispatch).await {
            return end;
        }
        let frame = tokio::select! {
            error = &mut writer_failed => {
                return ConnectionEnd {
                    error: Some(error.unwrap_or_else(|_| transport_error("The connection's writer stopped."))),
                    allow_reconnect: true,
                };
            }
            frame = tokio::time::timeout_at(deadline, source.next()) => frame,
        };
        match frame {
            Err(_) => {
                warn!("server timeout elapsed");
                return ConnectionEnd {
                    error: Some(HubError::with_kind(
                        HubErrorKind::Timeout,
                        "Server timeout elapsed without receiving a message from the server.",
                    )),
                    allow_reconnect: true,
                };
            }
            Ok(None) => {
                return ConnectionEnd {
                    error: close_error.or_else(|| {
                        Some(transport_error(
                            "WebSocket closed with status code: 1006 (no reason given).",
                        ))
                    }),
                    allow_reconnect: true,
                };
            }
            Ok(Some(Err(error))) => {
                return ConnectionEnd {
                    error: close_error
                        .or_else(|| Some(transport_error(format!("WebSocket failed: {error}")))),
                    allow_reconnect: true,
                };
            }
            Ok(Some(Ok(message))) => match message {
                Message::Text(text) => {
                    deadline = Instant::now() + server_timeout;
                    buffer.extend_from_slice(text.as_bytes());
                }
                Message::Binary(bytes) => {
                    deadline = Instant::now() + server_timeout;
                    buffer.extend_from_slice(&bytes);
                }
                Message::Close(frame) => {
                    let normal = frame.as_ref().is_none_or(|f| f.code == CloseCode::Normal);
                    if normal {
                        return ConnectionEnd {
                            error: None,
                            allow_reconnect: true,
                        };
                    }
                    if let Some(frame) = frame {
                        close_error = Some(transport_error(format!(
                            "WebSocket closed with status code: {} ({}).",
                            u16::from(frame.code),
                            if frame.reason.is_empty() {
                                "no reason given"
                            } else {
                                frame.reason.as_str()
                            }
                        )));
                    }
                }
                _ => {}
            },
        }
    }
}

/// Handles every whole message in `buffer`; returns the end of the
/// connection when one of them ends it.
async fn drain(
    inner: &Inner,
    decoder: &mut MessageDecoder,
    buffer: &mut BytesMut,
    dispatch: &mpsc::UnboundedSender<Invocation>,
) -> Option<ConnectionEnd> {
    loop {
        let message = match decoder.decode(buffer) {
            Ok(Some(message)) => message,
            Ok(None) => return None,
            Err(error) => {
                warn!(%error, "invalid message from the server");
                return Some(ConnectionEnd {
                    error: Some(HubError::with_kind(
                        HubErrorKind::Protocol,
                        error.to_string(),
                    )),
                    allow_reconnect: true,
                });
            }
        };
        match message {
            HubMessage::Invocation(invocation) => {
                let _ = dispatch.send(invocation);
            }
            HubMessage::Completion(completion) => {
                inner.complete(&completion.invocation_id, completion.result);
            }
            HubMessage::StreamItem(item) => {
                stream_item(inner, item.invocation_id, item.item).await;
            }
            HubMessage::Close(close) => {
                let error = close.error.map(|error| {
                    HubError::with_kind(
                        HubErrorKind::Remote,
                        format!("Server returned an error on close: {error}"),
                    )
                });
                return Some(ConnectionEnd {
                    error,
                    allow_reconnect: close.allow_reconnect,
                });
            }
            HubMessage::Ping
            | HubMessage::Ack(_)
            | HubMessage::Sequence(_)
            | HubMessage::StreamInvocation(_)
            | HubMessage::CancelInvocation(_) => {}
        }
    }
}

/// Hands a stream item to its [`HubStream`]; see "A slow consumer" there
/// for what happens when the stream's buffer is full.
async fn stream_item(inner: &Inner, id: String, item: Payload) {
    let full = {
        let mut shared = lock(&inner.shared);
        match shared.pending.get(&id) {
            Some(Pending::Stream { items, .. }) => match items.try_send(item) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(item)) => Some((items.clone(), item)),
                // The consumer is being dropped and will cancel.
                Err(mpsc::error::TrySendError::Closed(_)) => None,
            },
            Some(Pending::Invoke { .. }) => {
                // A stream item for a plain invocation fails it, as in the
                // JS client.
                if let Some(Pending::Invoke { result, .. }) = shared.pending.remove(&id) {
                    let _ = result.send(Err(HubError::with_kind(
                        HubErrorKind::Protocol,
                        "Unexpected message type: 2",
                    )));
                }
                None
            }
            None => {
                debug!(
                    invocation_id = id,
                    "stream item for an unknown or canceled stream ignored"
                );
                None
            }
        }
    };
    let Some((items, item)) = full else {
        return;
    };
    match tokio::time::timeout(inner.config.stream_buffer_timeout, items.send(item)).await {
        // Taken, or the consumer went away meanwhile.
        Ok(_) => {}
        Err(_) => inner.overflow(&id),
    }
}

/// Runs client-method handlers for the server's invocations.
async fn run_dispatcher(
    inner: Arc<Inner>,
    mut invocations: mpsc::UnboundedReceiver<Invocation>,
    outbound: mpsc::UnboundedSender<Outbound>,
) {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            invocation = invocations.recv() => match invocation {
                Some(invocation) => running.push(invoke_handlers(inner.handlers(), invocation, inner.config.protocol, outbound.clone())),
                None => break,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
    // Let handlers already running finish (their replies go nowhere).
    while running.next().await.is_some() {}
}

/// Runs every handler registered for `invocation.target` and answers a
/// client-result invocation.
async fn invoke_handlers(
    handlers: Arc<ClientHandlers>,
    invocation: Invocation,
    protocol: HubProtocol,
    outbound: mpsc::UnboundedSender<Outbound>,
) {
    let methods: Vec<_> = handlers
        .find(&invocation.target)
        .map(|(_, method)| method.clone())
        .collect();
    if methods.is_empty() {
        warn!(
            "No client method with the name '{}' found.",
            invocation.target.to_lowercase()
        );
    }
    let mut result = None;
    let mut error = None;
    for method in methods {
        match method(Arguments::new(invocation.arguments.clone())).await {
            Ok(Some(payload)) => {
                if result.is_some() && invocation.invocation_id.is_some() {
                    error = Some("Client provided multiple results.".to_owned());
                }
                result = Some(payload);
            }
            Ok(None) => {}
            Err(failure) => {
                warn!(target = %invocation.target, error = %describe(&failure), "client method failed");
                error = Some(describe(&failure));
            }
        }
    }
    let Some(invocation_id) = invocation.invocation_id else {
        if result.is_some() {
            warn!(target = %invocation.target, "result given for a method the server does not expect a result from");
        }
        return;
    };
    let result = match (error, result) {
        (Some(error), _) => CompletionResult::Error(error),
        (None, Some(payload)) => CompletionResult::Value(payload),
        (None, None) => CompletionResult::Error("Client didn't provide a result.".to_owned()),
    };
    let message = HubMessage::Completion(Completion {
        headers: Vec::new(),
        invocation_id,
        result,
    });
    let mut buffer = BytesMut::new();
    let bytes = match protocol.encode(&message, &mut buffer) {
        Ok(()) => buffer.freeze(),
        Err(encode_error) => {
            warn!(%encode_error, "client result could not be serialized");
            let HubMessage::Completion(mut completion) = message else {
                return;
            };
            completion.result = CompletionResult::Error(format!(
                "Client result could not be serialized: {encode_error}"
            ));
            let mut buffer = BytesMut::new();
            if protocol
                .encode(&HubMessage::Completion(completion), &mut buffer)
                .is_err()
            {
                return;
            }
            buffer.freeze()
        }
    };
    let _ = outbound.send(Outbound::Data { bytes, sent: None });
}

/// The text of a failed client method, sent as the Completion's error.
fn describe(error: &InvocationError) -> String {
    match error {
        InvocationError::Hub(error) => error.message().to_owned(),
        InvocationError::ArgumentCount { provided, expected } => {
            format!("Invocation provides {provided} argument(s) but target expects {expected}.")
        }
        InvocationError::ArgumentBinding { index, message } => {
            format!("Error binding argument {index}: {message}")
        }
        InvocationError::Result(message) => message.clone(),
        InvocationError::UnknownMethod => "Client didn't provide a result.".to_owned(),
        // Stream-related failures of hub methods; client methods have no
        // streams, so the debug form is enough.
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}
