//! [`Shared`]: what every part of one client connection shares — its
//! options, handlers, state, events, calls in flight and the live
//! transport's queue — and the operations on them that must hold together
//! under one lock.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::warn;

use super::arguments::CallArguments;
use super::config::Config;
use super::events::{ClosedReason, HubConnectionEvent, HubConnectionState};
use super::in_flight::{CallIds, InFlightCalls, ItemDelivery, ResultSender};
use super::upload::start_uploads;
use super::writer::Outbound;
use crate::handlers::ClientHandlers;
use crate::protocol::negotiate::TransportType;
use crate::protocol::{
    CancelInvocation, CompletionResult, HubMessage, Invocation, Payload, StreamInvocation,
};
use crate::{HubError, HubErrorKind};

/// What kind of call [`Shared::begin_call`] starts, with where its answer goes.
pub(crate) enum CallKind {
    Send,
    Invoke(ResultSender),
    Stream {
        items: mpsc::Sender<Payload>,
        outcome: oneshot::Sender<Result<(), HubError>>,
    },
}

/// What changes with each live connection, under [`Shared`]'s lock.
#[derive(Default)]
struct Current {
    /// Invocations and streams awaiting their Completion, by id.
    calls: InFlightCalls,
    /// The live connection's outbound queue, while Connected.
    outbound: Option<mpsc::UnboundedSender<Outbound>>,
    /// The live (or last) connection's id.
    connection_id: Option<String>,
    /// The live connection's transport, from `install` to `teardown`.
    transport: Option<TransportType>,
    /// The running session's stop signal.
    stop: Option<watch::Sender<bool>>,
}

/// See the module documentation.
pub(crate) struct Shared {
    pub(crate) config: Config,
    handlers: Mutex<Arc<ClientHandlers>>,
    pub(crate) state: watch::Sender<HubConnectionState>,
    events: broadcast::Sender<HubConnectionEvent>,
    current: Mutex<Current>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held cannot leave the maps inconsistent in
    // a way that matters more than losing the connection; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An error of kind [`HubErrorKind::ConnectionClosed`].
pub(crate) fn closed_error(message: &str) -> HubError {
    HubError::with_kind(HubErrorKind::ConnectionClosed, message.to_owned())
}

fn not_connected() -> HubError {
    closed_error("Cannot send data if the connection is not in the 'Connected' State.")
}

impl Shared {
    pub(crate) fn new(config: Config, handlers: ClientHandlers) -> Self {
        let (state, _) = watch::channel(HubConnectionState::Disconnected);
        let (events, _) = broadcast::channel(64);
        Shared {
            config,
            handlers: Mutex::new(Arc::new(handlers)),
            state,
            events,
            current: Mutex::new(Current::default()),
        }
    }

    pub(crate) fn encode(&self, message: &HubMessage) -> Result<Bytes, HubError> {
        self.config
            .protocol
            .encode_record(message)
            .map_err(|e| HubError::with_kind(HubErrorKind::Serialization, e.to_string()))
    }

    /// Moves `Disconnected` to `Connecting` and keeps the new session's
    /// stop signal; fails when the connection is not `Disconnected`.
    pub(crate) fn begin_session(&self, stop: watch::Sender<bool>) -> Result<(), HubError> {
        // Under the lock, so that a concurrent `stop()` sees either no
        // session or this one with its stop signal.
        let mut current = lock(&self.current);
        let moved = self.state.send_if_modified(|state| {
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
        current.stop = Some(stop);
        Ok(())
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

    /// Starts a call under one lock: takes the upload-stream ids and then
    /// the invocation id, queues the message, registers where the answer
    /// goes — before the reader can see it — and launches the uploads,
    /// whose items are queued after the message. Returns the invocation id
    /// (`None` for a send).
    pub(crate) fn begin_call(
        &self,
        method: &str,
        arguments: CallArguments,
        kind: CallKind,
        sent: Option<oneshot::Sender<Result<(), HubError>>>,
    ) -> Result<Option<String>, HubError> {
        let protocol = self.config.protocol;
        let CallArguments { payloads, uploads } = arguments;
        let mut current = lock(&self.current);
        let outbound = self.connected_outbound(&current)?;
        let ids = current
            .calls
            .ids(uploads.len(), !matches!(kind, CallKind::Send));
        let CallIds {
            stream_ids,
            invocation_id,
        } = &ids;
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
        current.calls.commit(&ids);
        let detached = matches!(kind, CallKind::Send);
        let uploads = start_uploads(&outbound, protocol, uploads, stream_ids, detached);
        let id = invocation_id.clone().unwrap_or_default();
        match kind {
            CallKind::Send => {}
            CallKind::Invoke(result) => current.calls.insert_invoke(id, result, uploads),
            CallKind::Stream { items, outcome } => {
                current.calls.insert_stream(id, items, outcome, uploads);
            }
        }
        Ok(ids.invocation_id)
    }

    /// Forgets an invocation whose caller stopped waiting.
    pub(crate) fn forget(&self, id: &str) {
        let forgotten = lock(&self.current).calls.forget(id);
        drop(forgotten);
    }

    /// Ends the stream `id` whose consumer took nothing for the whole
    /// `stream_buffer_timeout`: cancels it on the server and fails it.
    fn overflow(&self, id: &str) {
        let mut current = lock(&self.current);
        let error = HubError::with_kind(
            HubErrorKind::Transport,
            format!(
                "The stream was canceled: its consumer left {} items unread for {:?}.",
                self.config.stream_buffer_capacity, self.config.stream_buffer_timeout
            ),
        );
        if !current.calls.fail_stream(id, error) {
            return;
        }
        warn!(
            invocation_id = id,
            "stream consumer too slow; canceling the stream"
        );
        if let Some(outbound) = &current.outbound {
            self.send_cancel(outbound, id);
        }
    }

    fn connected_outbound(
        &self,
        current: &Current,
    ) -> Result<mpsc::UnboundedSender<Outbound>, HubError> {
        if *self.state.borrow() != HubConnectionState::Connected {
            return Err(not_connected());
        }
        current.outbound.clone().ok_or_else(not_connected)
    }

    /// Signals the running session (if any) to stop.
    pub(crate) fn request_stop(&self) {
        let current = lock(&self.current);
        if let Some(stop) = &current.stop {
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

    pub(crate) fn handlers(&self) -> Arc<ClientHandlers> {
        lock(&self.handlers).clone()
    }

    /// Replaces the handlers with `change` applied to a copy of them.
    pub(crate) fn update_handlers(&self, change: impl FnOnce(&mut ClientHandlers)) {
        let mut handlers = lock(&self.handlers);
        let mut updated = ClientHandlers::clone(&handlers);
        change(&mut updated);
        *handlers = Arc::new(updated);
    }

    pub(crate) fn events(&self) -> broadcast::Receiver<HubConnectionEvent> {
        self.events.subscribe()
    }

    pub(crate) fn emit(&self, event: HubConnectionEvent) {
        // No receiver is fine: nobody listens.
        let _ = self.events.send(event);
    }

    pub(crate) fn connection_id(&self) -> Option<String> {
        lock(&self.current).connection_id.clone()
    }

    pub(crate) fn transport(&self) -> Option<TransportType> {
        lock(&self.current).transport
    }

    /// Makes a live connection the current one and the state `Connected`,
    /// unless a stop was requested meanwhile.
    pub(crate) fn install(
        &self,
        outbound: &mpsc::UnboundedSender<Outbound>,
        connection_id: Option<String>,
        transport: TransportType,
    ) -> bool {
        let mut current = lock(&self.current);
        let connected = self.state.send_if_modified(|state| match state {
            HubConnectionState::Connecting | HubConnectionState::Reconnecting => {
                *state = HubConnectionState::Connected;
                true
            }
            _ => false,
        });
        if connected {
            current.outbound = Some(outbound.clone());
            current.connection_id = connection_id;
            current.transport = Some(transport);
        }
        connected
    }

    /// Detaches the ended connection and fails its calls in flight.
    pub(crate) fn teardown(&self, error: Option<&HubError>) {
        let error = error.cloned().unwrap_or_else(|| {
            closed_error("Invocation canceled due to the underlying connection being closed.")
        });
        let error = HubError::with_kind(HubErrorKind::ConnectionClosed, error.message().to_owned());
        let mut current = lock(&self.current);
        current.outbound = None;
        current.transport = None;
        current.calls.fail_all(&error);
    }

    /// Ends the session: state `Disconnected`, then the `Closed` event when
    /// the connection had started.
    pub(crate) fn finish(&self, closed: Option<(ClosedReason, Option<HubError>)>) {
        {
            let mut current = lock(&self.current);
            current.stop = None;
            self.state.send_replace(HubConnectionState::Disconnected);
        }
        if let Some((reason, error)) = closed {
            self.emit(HubConnectionEvent::Closed { reason, error });
        }
    }

    /// Resolves `id` with the server's Completion.
    pub(crate) fn complete(&self, id: &str, result: CompletionResult) {
        lock(&self.current).calls.complete(id, result);
    }

    /// Hands a stream item to its [`HubStream`](super::HubStream); see "A
    /// slow consumer" there for what happens when the stream's buffer is
    /// full.
    pub(crate) async fn stream_item(&self, id: String, item: Payload) {
        let delivery = lock(&self.current).calls.stream_item(&id, item);
        let ItemDelivery::Full { items, item } = delivery else {
            return;
        };
        match tokio::time::timeout(self.config.stream_buffer_timeout, items.send(item)).await {
            // Taken, or the consumer went away meanwhile.
            Ok(_) => {}
            Err(_) => self.overflow(&id),
        }
    }
}

/// A running stream invocation, held by its [`HubStream`](super::HubStream).
pub(crate) struct StreamRegistration {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: String,
}

impl StreamRegistration {
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Forgets the stream and, when the server may still be producing it
    /// on the live connection, sends a CancelInvocation.
    pub(crate) fn cancel(self) {
        let mut current = lock(&self.shared.current);
        // Gone means already ended (Completion, overflow or connection
        // loss): nothing to cancel.
        let Some(call) = current.calls.forget(&self.id) else {
            return;
        };
        if let Some(outbound) = &current.outbound {
            self.shared.send_cancel(outbound, &self.id);
        }
        // Dropped after the CancelInvocation is queued, so that the
        // uploads' error Completions follow it.
        drop(call);
    }
}
