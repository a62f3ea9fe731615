//! One client's session, whatever its transport.
//!
//! [`session::run`] drives a connection from the handshake to the end:
//! handshake (with its timeout and the .NET error texts), the read loop
//! (decoding, client timeout, the per-connection invocation limit), and
//! the teardown (Close message, cleanup). [`writer`] owns the sending half
//! of the transport: it drains the bounded outbound queue ([`outbound`]),
//! coalescing whatever is queued into as few frames as possible, and sends
//! keep-alive Pings when the server has been silent. Reader and writer run
//! in one task per connection, each polled when its own waker fired.
//!
//! What the hub does with messages is behind the [`Dispatcher`] trait,
//! which the server implements.

pub(crate) mod outbound;
pub(crate) mod session;
pub(crate) mod stateful;
pub(crate) mod streams;
pub(crate) mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

pub(crate) use outbound::Outbound;
use outbound::{OutboundQueue, PushError};

use crate::hub::ConnectionContext;
use crate::protocol::{
    Close, Completion, CompletionResult, EncodeError, HubMessage, HubProtocol, Invocation, Payload,
    StreamInvocation,
};
use crate::server::transport::CloseCode;
use crate::targets::ConnectionId;
use crate::telemetry::hub_metrics::HubMetrics;
use crate::{BoxFuture, HubError, HubErrorKind};

/// The Close error text of the .NET server for any connection that ended
/// with an error.
pub(crate) const CLOSED_WITH_ERROR: &str = "Connection closed with an error.";

/// ASP.NET Core's `StreamBufferCapacity`.
pub(crate) const DEFAULT_STREAM_BUFFER_CAPACITY: usize = 10;

/// Why a connection ends. The first reason recorded wins.
#[derive(Debug, Clone)]
pub(crate) enum CloseReason {
    /// The client sent a Close message (with its error, if any).
    ClientClosed(Option<String>),
    /// The client closed the transport.
    TransportClosed,
    /// The transport failed.
    TransportError(String),
    /// The client sent something that is not the hub protocol.
    ProtocolError(String),
    /// The client sent a message larger than the receive limit (a
    /// protocol error that WebSockets name with their own close code).
    MessageTooLarge(String),
    /// The client was silent for longer than the client timeout.
    ClientTimeout,
    /// The outbound queue overflowed: the client does not read fast enough.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
    /// `on_connected` failed.
    ConnectedFailed(HubError),
    /// The server aborted the connection (`abort()` of a context, or
    /// `HubContext::abort_connection`).
    Aborted,
    /// The identity's expiry passed
    /// (`HubOptions::close_on_authentication_expiration`).
    AuthenticationExpired,
}

impl CloseReason {
    /// The Close message the server sends for this reason, if any.
    pub(crate) fn close_message(&self, detailed: bool) -> Option<Close> {
        let with_error = |detail: Option<String>, allow_reconnect: bool| Close {
            error: Some(match detail {
                Some(detail) if detailed => format!("{CLOSED_WITH_ERROR} {detail}"),
                _ => CLOSED_WITH_ERROR.to_owned(),
            }),
            allow_reconnect,
        };
        match self {
            CloseReason::ClientClosed(_) => Some(Close::default()),
            CloseReason::TransportClosed => None,
            CloseReason::TransportError(error) => {
                Some(with_error(Some(format!("IOException: {error}")), true))
            }
            CloseReason::ProtocolError(error) | CloseReason::MessageTooLarge(error) => Some(
                with_error(Some(format!("InvalidDataException: {error}")), true),
            ),
            CloseReason::ClientTimeout => Some(with_error(
                Some("OperationCanceledException: Client timeout elapsed.".into()),
                true,
            )),
            CloseReason::SlowConsumer => Some(with_error(
                Some("IOException: The client does not read its messages fast enough.".into()),
                true,
            )),
            CloseReason::Shutdown => Some(Close {
                error: None,
                allow_reconnect: true,
            }),
            CloseReason::Aborted => Some(with_error(
                Some(
                    "ConnectionAbortedException: The connection was aborted by the server.".into(),
                ),
                false,
            )),
            CloseReason::AuthenticationExpired => Some(with_error(
                Some("AuthenticationExpired: The user's authentication expired.".into()),
                false,
            )),
            CloseReason::ConnectedFailed(error) => {
                // A HubError of kind Hub is .NET's HubException, whose
                // message always reaches the client; reconnecting would
                // fail the same way.
                let detail = format!("HubException: {}", error.message());
                let error = if error.kind() == HubErrorKind::Hub || detailed {
                    format!("{CLOSED_WITH_ERROR} {detail}")
                } else {
                    CLOSED_WITH_ERROR.to_owned()
                };
                Some(Close {
                    error: Some(error),
                    allow_reconnect: false,
                })
            }
        }
    }

    /// How the transport is closed for this reason: violations get their
    /// WebSocket close code, everything else a normal close.
    pub(crate) fn close_code(&self) -> CloseCode {
        match self {
            CloseReason::ProtocolError(_) => CloseCode::ProtocolError,
            CloseReason::MessageTooLarge(_) => CloseCode::MessageTooBig,
            CloseReason::SlowConsumer => CloseCode::PolicyViolation,
            _ => CloseCode::Normal,
        }
    }

    /// The error `on_disconnected` sees.
    pub(crate) fn disconnect_error(&self) -> Option<HubError> {
        match self {
            CloseReason::ClientClosed(None)
            | CloseReason::TransportClosed
            | CloseReason::Shutdown => None,
            CloseReason::ClientClosed(Some(error)) => Some(HubError::new(error.clone())),
            CloseReason::TransportError(error) => {
                Some(HubError::with_kind(HubErrorKind::Transport, error.clone()))
            }
            CloseReason::ProtocolError(error) | CloseReason::MessageTooLarge(error) => {
                Some(HubError::with_kind(HubErrorKind::Protocol, error.clone()))
            }
            CloseReason::ClientTimeout => Some(HubError::with_kind(
                HubErrorKind::Timeout,
                "Client timeout elapsed.",
            )),
            CloseReason::SlowConsumer => Some(HubError::with_kind(
                HubErrorKind::Transport,
                "The outbound queue overflowed: the client does not read fast enough.",
            )),
            CloseReason::ConnectedFailed(error) => Some(error.clone()),
            CloseReason::Aborted => Some(HubError::with_kind(
                HubErrorKind::ConnectionClosed,
                "The connection was aborted by the server.",
            )),
            CloseReason::AuthenticationExpired => Some(HubError::with_kind(
                HubErrorKind::ConnectionClosed,
                "The user's authentication expired.",
            )),
        }
    }
}

/// Polls a long-lived wait for a rare signal (a close, a shutdown) from a
/// loop that runs once per frame: for real only on the first poll, which
/// registers the task's waker, and then only when `may_have_fired` (a
/// cheap check, an atomic load) says the signal may have come. The first
/// poll must really register: callers wrap `future` in
/// [`tokio::task::unconstrained`], since tokio's task budget could answer
/// it without polling. `registered` remembers that first poll.
pub(crate) fn poll_rare_signal<F: Future>(
    future: Pin<&mut F>,
    registered: &mut bool,
    may_have_fired: bool,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    if *registered && !may_have_fired {
        return Poll::Pending;
    }
    *registered = true;
    future.poll(cx)
}

/// Tunables of a session, derived from the server's options.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    pub(crate) handshake_timeout: Duration,
    pub(crate) keep_alive_interval: Duration,
    pub(crate) client_timeout: Duration,
    pub(crate) max_receive: Option<usize>,
    pub(crate) max_parallel_invocations: usize,
    pub(crate) max_queued_invocations: usize,
    pub(crate) outbound_capacity: usize,
    /// Queued bytes above which reading pauses (`ApplicationMaxBufferSize`).
    pub(crate) outbound_pause_bytes: usize,
    /// Queued bytes beyond which a push closes the connection.
    pub(crate) outbound_max_bytes: usize,
    pub(crate) send_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) detailed_errors: bool,
    pub(crate) protocols: Vec<HubProtocol>,
    /// Items buffered per stream, both directions (`StreamBufferCapacity`).
    pub(crate) stream_buffer_capacity: usize,
}

/// What the hub does with a connection's messages; implemented by the
/// server.
pub(crate) trait Dispatcher: Send + Sync + 'static {
    /// The handshake request was accepted: make the connection reachable
    /// (the registry, and the backplane's subscriptions once they hold),
    /// before the handshake is answered.
    fn register(&self, connection: &Arc<ConnectionHandle>) -> BoxFuture<'static, ()>;

    /// The handshake was answered: run `on_connected`. An error ends the
    /// connection.
    fn connected(
        &self,
        connection: &Arc<ConnectionHandle>,
    ) -> BoxFuture<'static, Result<(), HubError>>;

    /// An Invocation arrived. Either answers it at once (unknown method,
    /// wrong argument count: returns `None`) or returns the job that runs
    /// the hub method and sends its Completion, which the session runs
    /// under the per-connection parallelism limit.
    fn invocation(
        &self,
        connection: &Arc<ConnectionHandle>,
        invocation: Invocation,
    ) -> Option<BoxFuture<'static, ()>>;

    /// A StreamInvocation arrived. Either answers it at once (returns
    /// `None`) or returns the job that runs the streaming method and sends
    /// its items and Completion. Streams do not count towards the
    /// parallel-invocation limit (as in ASP.NET Core): the session spawns
    /// the job at once.
    fn stream_invocation(
        &self,
        connection: &Arc<ConnectionHandle>,
        invocation: StreamInvocation,
    ) -> Option<BoxFuture<'static, ()>>;

    /// The connection ended: unregister it and, if `connected` succeeded,
    /// run `on_disconnected`.
    fn disconnected(
        &self,
        connection: &Arc<ConnectionHandle>,
        error: Option<HubError>,
        was_connected: bool,
    ) -> BoxFuture<'static, ()>;
}

type PendingResult = oneshot::Sender<Result<Payload, HubError>>;

/// The shared side of one connection: its id, user and protocol, its
/// outbound queue, its close signal and its pending client results.
///
/// The registry holds one per connection; every push is a `try_send` that
/// never waits.
pub(crate) struct ConnectionHandle {
    id: ConnectionId,
    context: Arc<ConnectionContext>,
    protocol: HubProtocol,
    /// What the writer sends next: allocates only while something waits.
    outbound: OutboundQueue,
    close: watch::Sender<Option<CloseReason>>,
    /// Whether `close` holds a reason: read on every pass of the read loop,
    /// where the watch's lock would cost more.
    closing: AtomicBool,
    pending: Mutex<HashMap<u64, PendingResult>>,
    next_invocation_id: AtomicU64,
    finished: AtomicBool,
    streams: streams::ConnectionStreams,
    /// The id of the connection's span: events about it from other tasks
    /// (a broadcast that finds its queue full) go there. An id, not the
    /// span: a handle may outlive its session (the registry's snapshot of
    /// all connections), and the span must close when the session ends.
    span: Option<tracing::Id>,
    metrics: Arc<HubMetrics>,
    /// Set by a read loop that paused because the outbound queue is low
    /// on room; the writer then wakes it through `drained`.
    read_paused: AtomicBool,
    drained: tokio::sync::Notify,
    /// Bytes of records in the outbound queue (taken off by the writer).
    queued_bytes: AtomicUsize,
    /// Above this many queued bytes the read loop pauses
    /// (`application_max_buffer_size`).
    pause_bytes: usize,
    /// A push that would queue more than this many bytes closes the
    /// connection as a slow consumer (`maximum_outbound_buffer_size`).
    max_bytes: usize,
    /// Whether replies wait for room ([`ConnectionHandle::send_reply`]).
    /// Off under stateful reconnect: there the writer may be waiting for
    /// the client's Ack, which only a read loop that keeps reading sees.
    replies_wait: bool,
}

impl std::fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHandle")
            .field("id", &self.id)
            .field("user", &self.user())
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl ConnectionHandle {
    pub(crate) fn new(
        context: Arc<ConnectionContext>,
        protocol: HubProtocol,
        outbound_capacity: usize,
        metrics: Arc<HubMetrics>,
    ) -> Self {
        ConnectionHandle {
            span: tracing::Span::current().id(),
            metrics,
            id: context.connection_id().clone(),
            context,
            protocol,
            outbound: OutboundQueue::new(outbound_capacity),
            close: watch::Sender::new(None),
            closing: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            next_invocation_id: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            streams: streams::ConnectionStreams::new(DEFAULT_STREAM_BUFFER_CAPACITY),
            read_paused: AtomicBool::new(false),
            drained: tokio::sync::Notify::new(),
            replies_wait: true,
            queued_bytes: AtomicUsize::new(0),
            pause_bytes: usize::MAX,
            max_bytes: usize::MAX,
        }
    }

    /// Sets how many items each of the connection's streams buffers (both
    /// directions); before the handle is shared.
    pub(crate) fn with_stream_buffer_capacity(mut self, capacity: usize) -> Self {
        self.streams = streams::ConnectionStreams::new(capacity);
        self
    }

    /// Bounds the outbound queue in bytes: reading pauses above `pause`
    /// queued bytes, a push beyond `max` closes the connection as a slow
    /// consumer; before the handle is shared.
    pub(crate) fn with_buffer_limits(mut self, pause: usize, max: usize) -> Self {
        self.pause_bytes = pause.max(1);
        self.max_bytes = max.max(1);
        self
    }

    /// The writer took `records` off the queue.
    pub(crate) fn dequeued(&self, item: &Outbound) {
        if let Outbound::Records(records) = item {
            self.queued_bytes.fetch_sub(records.len(), Ordering::AcqRel);
        }
    }

    /// Keeps the slow-consumer policy for replies too (stateful
    /// reconnect, see `replies_wait`); before the handle is shared.
    pub(crate) fn without_reply_backpressure(mut self) -> Self {
        self.replies_wait = false;
        self
    }

    /// The connection id.
    pub(crate) fn id(&self) -> &ConnectionId {
        &self.id
    }

    /// The user id, `None` when anonymous.
    pub(crate) fn user(&self) -> Option<&Arc<str>> {
        self.context.identity().user_id_arc()
    }

    /// What hub methods and filters see of the connection.
    pub(crate) fn context(&self) -> &Arc<ConnectionContext> {
        &self.context
    }

    /// The id of the connection's span (the current one when the handle
    /// was made), while the session runs.
    pub(crate) fn span_id(&self) -> Option<tracing::Id> {
        self.span.clone()
    }

    /// The metric handles of the connection's hub.
    pub(crate) fn metrics(&self) -> &HubMetrics {
        &self.metrics
    }

    /// The hub protocol chosen in the handshake.
    pub(crate) fn protocol(&self) -> HubProtocol {
        self.protocol
    }

    /// Queues encoded records without waiting. A full queue means the
    /// client does not keep up: the connection is closed
    /// ([`CloseReason::SlowConsumer`]). Returns whether the records were
    /// queued.
    pub(crate) fn push(&self, records: Bytes) -> bool {
        let len = records.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        // One record always fits an empty queue, however large.
        if before > 0 && before.saturating_add(len) > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            if self.abort(CloseReason::SlowConsumer) {
                self.metrics.slow_consumer_closed();
                tracing::warn!(parent: self.span.clone(), connection = %self.id, queued_bytes = before,
                    "outbound buffer full (bytes); closing the slow connection");
            }
            return false;
        }
        match self.outbound.try_push(Outbound::Records(records)) {
            Ok(()) => {
                self.metrics.sent(self.protocol, len);
                true
            }
            Err(error) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                if let PushError::Full(_) = error {
                    if self.abort(CloseReason::SlowConsumer) {
                        self.metrics.slow_consumer_closed();
                        tracing::warn!(parent: self.span.clone(), connection = %self.id,
                            "outbound queue full; closing the slow connection");
                    }
                }
                false
            }
        }
    }

    /// Queues the answer to one of this connection's own invocations (a
    /// Completion), waiting for room in the outbound queue instead of
    /// closing the connection: a client that sends faster than it reads
    /// its answers is slowed down (its invocation slot stays taken, so its
    /// read loop stops reading), never closed while it reads. A client that
    /// does not read at all is closed by the transport send timeout, which
    /// ends the wait. Returns whether the answer was queued.
    pub(crate) async fn send_reply(&self, message: &HubMessage) -> Result<bool, EncodeError> {
        if !self.replies_wait {
            return self.send_message(message);
        }
        let record = self.protocol.encode_record(message)?;
        // Counted, not capped: the read pause bounds what replies queue.
        let len = record.len();
        self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        let queued = match self.outbound.try_push(Outbound::Records(record)) {
            Ok(()) => true,
            Err(PushError::Full(item)) => self.outbound.push(item).await,
            Err(PushError::Closed) => false,
        };
        if queued {
            self.metrics.sent(self.protocol, len);
        } else {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
        }
        Ok(queued)
    }

    /// How much room the read loop keeps in the outbound queue for what its
    /// reads produce (answers to invocations refused at once, pushes to the
    /// caller) and for broadcasts: a quarter of the queue.
    fn read_reserve(&self) -> usize {
        (self.outbound.max_capacity() / 4).max(1)
    }

    /// Whether the read loop should stop reading until the writer drains
    /// the outbound queue (see [`ConnectionHandle::outbound_drained`]).
    pub(crate) fn outbound_low(&self) -> bool {
        self.replies_wait
            && (self.outbound.free() < self.read_reserve()
                || self.queued_bytes.load(Ordering::Acquire) > self.pause_bytes)
    }

    /// Completes once the outbound queue has its read reserve free again
    /// (or at once if it has). The writer wakes it after every batch.
    pub(crate) async fn outbound_drained(&self) {
        loop {
            let drained = self.drained.notified();
            self.read_paused.store(true, Ordering::SeqCst);
            if !self.outbound_low() || self.outbound.is_closed() {
                self.read_paused.store(false, Ordering::SeqCst);
                return;
            }
            drained.await;
        }
    }

    /// The outbound queue, for the writer and the session's teardown.
    pub(crate) fn outbound(&self) -> &OutboundQueue {
        &self.outbound
    }

    /// Called by the writer after it took records from the queue: wakes a
    /// paused read loop and replies waiting for room (an atomic load each
    /// when none waits).
    pub(crate) fn notify_drained(&self) {
        self.outbound.room_made();
        if self.read_paused.load(Ordering::SeqCst) && self.read_paused.swap(false, Ordering::SeqCst)
        {
            self.drained.notify_waiters();
        }
    }

    /// Encodes `message` in the connection's protocol and queues it.
    pub(crate) fn send_message(&self, message: &HubMessage) -> Result<bool, EncodeError> {
        Ok(self.push(self.protocol.encode_record(message)?))
    }

    /// Records why the connection ends and wakes its tasks. Returns
    /// `false` when a reason was already recorded.
    pub(crate) fn abort(&self, reason: CloseReason) -> bool {
        self.close.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            self.closing.store(true, Ordering::Release);
            true
        })
    }

    /// Whether the connection has a close reason (cheaper than
    /// [`ConnectionHandle::close_reason`]: nothing is cloned).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Why the connection ends, once known.
    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.close.borrow().clone()
    }

    /// A receiver woken when a close reason is recorded.
    pub(crate) fn close_signal(&self) -> watch::Receiver<Option<CloseReason>> {
        self.close.subscribe()
    }

    /// Invokes a client method and waits for the client's Completion: a
    /// client result.
    ///
    /// While it waits, the calling hub method gives back its slot of the
    /// per-connection parallelism limit (as ASP.NET Core does), so that the
    /// caller's other invocations can run and no invocation limit can
    /// deadlock against the answer.
    pub(crate) async fn invoke(
        &self,
        mut invocation: Invocation,
        timeout: Option<Duration>,
    ) -> Result<Payload, HubError> {
        let closed = || {
            HubError::with_kind(
                HubErrorKind::ConnectionClosed,
                format!("Connection '{}' closed before it answered.", self.id),
            )
        };
        if self.finished.load(Ordering::Acquire) || self.close.borrow().is_some() {
            return Err(closed());
        }
        let id = self.next_invocation_id.fetch_add(1, Ordering::Relaxed);
        invocation.invocation_id = Some(id.to_string());
        let (sender, receiver) = oneshot::channel();
        self.lock_pending().insert(id, sender);
        let guard = PendingGuard { handle: self, id };

        let queued = self
            .send_message(&HubMessage::Invocation(invocation))
            .map_err(|e| {
                HubError::with_kind(HubErrorKind::Serialization, e.to_string()).with_source(e)
            })?;
        if !queued {
            return Err(closed());
        }

        let slot = INVOCATION_SLOT.try_with(Arc::clone).ok();
        if let Some(slot) = &slot {
            slot.release();
        }
        let answer = match timeout {
            Some(limit) => tokio::time::timeout(limit, receiver).await.map_err(|_| {
                HubError::with_kind(
                    HubErrorKind::Timeout,
                    format!(
                        "Connection '{}' did not answer within {} ms.",
                        self.id,
                        limit.as_millis()
                    ),
                )
            }),
            None => Ok(receiver.await),
        };
        drop(guard);
        if let Some(slot) = &slot {
            slot.reacquire().await;
        }
        match answer? {
            Ok(result) => result,
            Err(_) => Err(closed()),
        }
    }

    /// Delivers the client's Completion to the waiting [`invoke`].
    ///
    /// [`invoke`]: ConnectionHandle::invoke
    pub(crate) fn complete(&self, completion: Completion) {
        let sender = completion
            .invocation_id
            .parse::<u64>()
            .ok()
            .and_then(|id| self.lock_pending().remove(&id));
        let Some(sender) = sender else {
            tracing::debug!(connection = %self.id, invocation = %completion.invocation_id,
                "Completion for an unknown invocation; ignored");
            return;
        };
        let result = match completion.result {
            CompletionResult::Value(payload) => Ok(payload),
            CompletionResult::Void => Ok(Payload::null()),
            CompletionResult::Error(error) => Err(HubError::with_kind(HubErrorKind::Remote, error)),
        };
        let _ = sender.send(result);
    }

    /// Fails every pending client result with "connection closed"; later
    /// invokes fail at once.
    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.lock_pending().clear();
        self.close_streams();
    }

    /// Fails the pending client results without marking the connection
    /// finished.
    pub(crate) fn fail_pending(&self) {
        self.lock_pending().clear();
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, PendingResult>> {
        // The map stays consistent whatever panicked while holding it.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes a pending client result when its `invoke` ends, however it ends.
struct PendingGuard<'a> {
    handle: &'a ConnectionHandle,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.handle.lock_pending().remove(&self.id);
    }
}

/// The parallelism slot of one running invocation.
pub(crate) struct InvocationSlot {
    semaphore: Arc<Semaphore>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    released: AtomicUsize,
}

impl InvocationSlot {
    pub(crate) fn new(semaphore: Arc<Semaphore>, permit: OwnedSemaphorePermit) -> Arc<Self> {
        Arc::new(InvocationSlot {
            semaphore,
            permit: Mutex::new(Some(permit)),
            released: AtomicUsize::new(0),
        })
    }

    fn release(&self) {
        if self.released.fetch_add(1, Ordering::AcqRel) == 0 {
            drop(
                self.permit
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(),
            );
        }
    }

    async fn reacquire(&self) {
        if self.released.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The semaphore is never closed, so acquiring only waits.
            if let Ok(permit) = self.semaphore.clone().acquire_owned().await {
                *self.permit.lock().unwrap_or_else(PoisonError::into_inner) = Some(permit);
            }
        }
    }
}

tokio::task_local! {
    /// The slot of the invocation running in this task, if any.
    pub(crate) static INVOCATION_SLOT: Arc<InvocationSlot>;
}
