//! One connection from its first byte to its last.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use super::writer::{self, WriterConfig};
use super::{
    CloseReason, ConnectionHandle, Dispatcher, INVOCATION_SLOT, InvocationSlot, Outbound,
    SessionConfig,
};
use crate::BoxFuture;
use crate::clients::ConnectionId;
use crate::protocol::handshake::{HandshakeRejection, HandshakeRequest, HandshakeResponse};
use crate::protocol::{HubMessage, HubProtocol, TransferFormat};
use crate::transport::{FrameSink, FrameSource};

/// Read buffers that grew beyond this are replaced once empty, so one large
/// message does not pin memory for the rest of the connection.
const RETAINED_READ_BUFFER: usize = 16 * 1024;

/// Runs one connection over `source`/`sink` until it ends. `shutdown`
/// turns `true` when the server shuts down.
pub(crate) async fn run<Src: FrameSource, Snk: FrameSink>(
    mut source: Src,
    mut sink: Snk,
    id: ConnectionId,
    user: Option<Arc<str>>,
    config: Arc<SessionConfig>,
    dispatcher: Arc<dyn Dispatcher>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buffer = BytesMut::new();
    let protocol =
        match handshake(&mut source, &mut sink, &mut buffer, &config, &mut shutdown).await {
            Some(protocol) => protocol,
            None => {
                let _ = timeout(config.close_timeout, sink.close()).await;
                return;
            }
        };
    tracing::debug!(connection = %id, protocol = protocol.name(), "handshake complete");

    let (outbound, queue) = mpsc::channel(config.outbound_capacity.max(1));
    let handle = Arc::new(ConnectionHandle::new(id, user, protocol, outbound.clone()));
    let writer = tokio::spawn(writer::run(
        sink,
        queue,
        handle.clone(),
        WriterConfig {
            keep_alive_interval: config.keep_alive_interval,
            send_timeout: config.send_timeout,
            close_timeout: config.close_timeout,
            detailed_errors: config.detailed_errors,
        },
    ));

    let connected = tokio::select! {
        result = dispatcher.connected(&handle) => result,
        _ = shutdown.wait_for(|down| *down) => Err(crate::HubError::new("The server is shutting down.")),
    };
    let was_connected = match connected {
        Ok(()) => {
            let mut reader = Reader {
                handle: handle.clone(),
                dispatcher: dispatcher.clone(),
                config: config.clone(),
                decoder_buffer: buffer,
                decoder: protocol.decoder(config.max_receive),
                queue: VecDeque::new(),
                semaphore: Arc::new(Semaphore::new(config.max_parallel_invocations.max(1))),
                running: JoinSet::new(),
                client_deadline: None,
            };
            reader.read(&mut source, &mut shutdown).await;
            reader.drain(&mut source).await;
            true
        }
        Err(error) => {
            tracing::debug!(connection = %handle.id(), %error, "on_connected failed");
            if !*shutdown.borrow() {
                handle.abort(CloseReason::ConnectedFailed(error));
            } else {
                handle.abort(CloseReason::Shutdown);
            }
            false
        }
    };

    // Teardown: answer nothing more, say goodbye, clean up.
    handle.finish();
    let reason = handle
        .close_reason()
        .unwrap_or(CloseReason::TransportClosed);
    tracing::debug!(connection = %handle.id(), ?reason, "connection closing");
    let mut close = BytesMut::new();
    if let Some(message) = reason.close_message(config.detailed_errors) {
        if protocol
            .encode(&HubMessage::Close(message), &mut close)
            .is_err()
        {
            close.clear();
        }
    }
    let _ = timeout(
        config.close_timeout,
        outbound.send(Outbound::Close(close.freeze())),
    )
    .await;
    drop(outbound);
    dispatcher
        .disconnected(&handle, reason.disconnect_error(), was_connected)
        .await;
    let writer_budget = config.close_timeout + config.send_timeout;
    let _ = timeout(writer_budget, writer).await;
    drop(source);
}

/// Reads the handshake request and answers it. Returns the protocol on
/// success; on failure the error response has been written.
async fn handshake<Src: FrameSource, Snk: FrameSink>(
    source: &mut Src,
    sink: &mut Snk,
    buffer: &mut BytesMut,
    config: &SessionConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<HubProtocol> {
    let deadline = Instant::now() + config.handshake_timeout;
    let outcome: Result<HubProtocol, HandshakeRejection> = loop {
        match HandshakeRequest::decode(buffer, config.max_receive) {
            Ok(Some(request)) => {
                break request
                    .select_protocol(sink.supported_formats())
                    .and_then(|protocol| {
                        if config.protocols.contains(&protocol) {
                            Ok(protocol)
                        } else {
                            Err(HandshakeRejection::UnsupportedProtocol {
                                protocol: request.protocol.clone(),
                            })
                        }
                    });
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "invalid handshake request");
                break Err(error.rejection(config.detailed_errors));
            }
        }
        tokio::select! {
            frame = source.next_frame() => match frame {
                Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
                // The client went away; nobody to answer.
                Some(Err(_)) | None => return None,
            },
            () = sleep_until(deadline) => break Err(HandshakeRejection::Canceled),
            _ = shutdown.wait_for(|down| *down) => break Err(HandshakeRejection::Canceled),
        }
    };

    let (response, format) = match &outcome {
        Ok(protocol) => (HandshakeResponse::success(), protocol.transfer_format()),
        Err(rejection) => {
            tracing::debug!(%rejection, "handshake refused");
            (rejection.response(), TransferFormat::Text)
        }
    };
    let mut bytes = BytesMut::new();
    response.encode(&mut bytes);
    let written = timeout(config.send_timeout, async {
        sink.feed(bytes.freeze(), format).await?;
        sink.flush().await
    })
    .await;
    match (outcome, written) {
        (Ok(protocol), Ok(Ok(()))) => Some(protocol),
        _ => None,
    }
}

/// The read loop's state.
struct Reader {
    handle: Arc<ConnectionHandle>,
    dispatcher: Arc<dyn Dispatcher>,
    config: Arc<SessionConfig>,
    decoder_buffer: BytesMut,
    decoder: crate::protocol::MessageDecoder,
    /// Invocations waiting for a parallelism slot, in arrival order.
    queue: VecDeque<BoxFuture<'static, ()>>,
    semaphore: Arc<Semaphore>,
    running: JoinSet<()>,
    /// Armed by the first message after the handshake.
    client_deadline: Option<Instant>,
}

impl Reader {
    /// Reads and dispatches until the connection has a close reason.
    async fn read<Src: FrameSource>(
        &mut self,
        source: &mut Src,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let mut close_signal = self.handle.close_signal();
        loop {
            self.process_buffer();
            if self.handle.close_reason().is_some() {
                return;
            }
            // Backpressure: with the waiting queue full, stop reading until
            // a running invocation finishes.
            let can_read = self.queue.len() < self.config.max_queued_invocations.max(1);
            let deadline = self.client_deadline;
            tokio::select! {
                biased;
                _ = close_signal.changed() => return,
                _ = shutdown.wait_for(|down| *down) => {
                    self.handle.abort(CloseReason::Shutdown);
                }
                Some(_) = self.running.join_next(), if !self.running.is_empty() => {}
                permit = self.semaphore.clone().acquire_owned(), if !self.queue.is_empty() => {
                    if let (Ok(permit), Some(job)) = (permit, self.queue.pop_front()) {
                        let slot = InvocationSlot::new(self.semaphore.clone(), permit);
                        self.running.spawn(INVOCATION_SLOT.scope(slot, job));
                    }
                }
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if can_read && deadline.is_some() => {
                    tracing::debug!(connection = %self.handle.id(), "client timeout");
                    self.handle.abort(CloseReason::ClientTimeout);
                }
                frame = source.next_frame(), if can_read => match frame {
                    Some(Ok(bytes)) => {
                        if self.decoder_buffer.is_empty() && self.decoder_buffer.capacity() > RETAINED_READ_BUFFER {
                            self.decoder_buffer = BytesMut::new();
                        }
                        self.decoder_buffer.extend_from_slice(&bytes);
                        if self.client_deadline.is_some() {
                            self.reset_client_timeout();
                        }
                    }
                    Some(Err(error)) => {
                        self.handle.abort(CloseReason::TransportError(error.to_string()));
                    }
                    None => {
                        self.handle.abort(CloseReason::TransportClosed);
                    }
                },
            }
        }
    }

    fn reset_client_timeout(&mut self) {
        self.client_deadline = Some(Instant::now() + self.config.client_timeout);
    }

    /// Decodes and dispatches every whole message buffered, as long as the
    /// waiting queue has room.
    fn process_buffer(&mut self) {
        while self.queue.len() < self.config.max_queued_invocations.max(1) {
            if self.handle.close_reason().is_some() {
                return;
            }
            match self.decoder.decode(&mut self.decoder_buffer) {
                Ok(Some(message)) => {
                    self.reset_client_timeout();
                    self.dispatch(message);
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(connection = %self.handle.id(), %error, "protocol error");
                    self.handle
                        .abort(CloseReason::ProtocolError(error.to_string()));
                    return;
                }
            }
        }
    }

    fn dispatch(&mut self, message: HubMessage) {
        match message {
            HubMessage::Invocation(invocation) => {
                if let Some(job) = self.dispatcher.invocation(&self.handle, invocation) {
                    self.queue.push_back(job);
                }
            }
            HubMessage::StreamInvocation(invocation) => {
                self.dispatcher.stream_invocation(&self.handle, invocation);
            }
            HubMessage::Completion(completion) => self.handle.complete(completion),
            HubMessage::Close(close) => {
                self.handle.abort(CloseReason::ClientClosed(close.error));
            }
            HubMessage::Ping => {}
            other => {
                tracing::debug!(connection = %self.handle.id(), kind = other.type_id(),
                    "message not handled by this server; ignored");
            }
        }
    }

    /// After the read loop: drops the invocations that have not started and
    /// gives the running ones a bounded time to finish. During a server
    /// shutdown the client is still there, so its Completions (answers to
    /// client results) are still read.
    async fn drain<Src: FrameSource>(&mut self, source: &mut Src) {
        self.queue.clear();
        let reason = self.handle.close_reason();
        let keep_reading = matches!(reason, Some(CloseReason::Shutdown));
        if !keep_reading {
            self.handle.fail_pending();
        }
        let deadline = Instant::now() + self.config.drain_timeout;
        let mut reading = keep_reading;
        while !self.running.is_empty() {
            tokio::select! {
                _ = self.running.join_next() => {}
                () = sleep_until(deadline) => break,
                frame = source.next_frame(), if reading => match frame {
                    Some(Ok(bytes)) => {
                        self.decoder_buffer.extend_from_slice(&bytes);
                        loop {
                            match self.decoder.decode(&mut self.decoder_buffer) {
                                Ok(Some(HubMessage::Completion(completion))) => self.handle.complete(completion),
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                                Err(_) => { reading = false; self.handle.fail_pending(); break; }
                            }
                        }
                    }
                    Some(Err(_)) | None => { reading = false; self.handle.fail_pending(); }
                },
            }
        }
        if !self.running.is_empty() {
            tracing::debug!(connection = %self.handle.id(), running = self.running.len(),
                "invocations still running at close; cancelled");
        }
        self.running.abort_all();
    }
}
