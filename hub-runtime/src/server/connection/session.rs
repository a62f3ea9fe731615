//! One connection from its first byte to its last.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use futures_util::FutureExt as _;
use futures_util::future::{Fuse, FusedFuture as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use super::stateful::{Inbound, InboundSequence, ReplayBuffer, Sequencing};
use super::writer::{self, WriterConfig};
use super::{
    CloseReason, ConnectionHandle, Dispatcher, INVOCATION_SLOT, InvocationSlot, Outbound,
    SessionConfig, poll_rare_signal,
};
use crate::BoxFuture;
use crate::hub::ConnectionContext;
use crate::protocol::handshake::{HandshakeRejection, HandshakeRequest, HandshakeResponse};
use crate::protocol::{HubMessage, HubProtocol, ProtocolError, TransferFormat};
use crate::server::transport::{CloseCode, FrameSink, FrameSource};
use crate::telemetry::hub_metrics::HubMetrics;

/// Read buffers that grew beyond this are replaced once empty, so one large
/// message does not pin memory for the rest of the connection.
const RETAINED_READ_BUFFER: usize = 16 * 1024;

/// Stateful reconnect for one connection (negotiated with
/// `useStatefulReconnect`, over WebSockets): where replacement transports
/// come from, and the limits.
pub(crate) struct Resume<Src, Snk> {
    /// A client that resumes: the new transport's two halves.
    pub(crate) sockets: mpsc::Receiver<(Src, Snk)>,
    /// The replay buffer's bound, in bytes.
    pub(crate) buffer_limit: usize,
    /// How long a lost client may take to come back.
    pub(crate) disconnect_timeout: std::time::Duration,
}

/// The close reason of a stateful connection whose client did not come
/// back in time.
pub(crate) const DISCONNECT_TIMEOUT: &str =
    "the client did not reconnect within the disconnect timeout";

/// Runs one connection over `source`/`sink` until it ends. `shutdown`
/// turns `true` when the server shuts down. With `resume`, a handshake of
/// version 2 turns stateful reconnect on. Returns why the connection
/// ended (`None`: the handshake failed). Runs inside the connection's
/// span, which its handle keeps for events from other tasks.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<Src: FrameSource, Snk: FrameSink>(
    mut source: Src,
    mut sink: Snk,
    context: Arc<ConnectionContext>,
    config: Arc<SessionConfig>,
    dispatcher: Arc<dyn Dispatcher>,
    mut shutdown: watch::Receiver<bool>,
    resume: Option<Resume<Src, Snk>>,
    metrics: Arc<HubMetrics>,
) -> Option<CloseReason> {
    let id = context.connection_id().clone();
    // The phases before and after the read loop run boxed: a future is as
    // large as its largest phase, and this one lives as long as the
    // connection, idle or not.
    let mut buffer = BytesMut::new();
    let formats = sink.supported_formats();
    let Some((requested, version)) = Box::pin(read_handshake(
        &mut source,
        formats,
        &mut buffer,
        &config,
        &mut shutdown,
    ))
    .await
    else {
        // The client went away before its handshake: nobody to answer.
        refuse(source, sink, &config).await;
        return None;
    };
    let protocol = match requested {
        Ok(protocol) => protocol,
        Err(rejection) => {
            tracing::debug!(%rejection, "handshake refused");
            // A refused handshake is a protocol error (1002); the error
            // response is written first.
            let _ = answer_handshake(
                &mut sink,
                &rejection.response(),
                TransferFormat::Text,
                &config,
            )
            .await;
            refuse(source, sink, &config).await;
            return None;
        }
    };
    tracing::Span::current().record("signalr.protocol", protocol.name());
    tracing::debug!(connection = %id, protocol = protocol.name(), "handshake complete");
    // Stateful reconnect needs version 2; otherwise dropping `resume`
    // makes the server refuse resumes (404).
    let resume = resume.filter(|_| version >= 2);
    // Only stateful connections get the channel that hands the writer each
    // new sink: an idle channel still costs a block of slots.
    let (writer_stateful, reader_resume) = match resume {
        Some(resume) => {
            let sequencing = Arc::new(Sequencing::new());
            let (sink_sender, sinks) = mpsc::channel(1);
            (
                Some(writer::Stateful {
                    sinks,
                    sequencing: sequencing.clone(),
                    buffer: ReplayBuffer::new(resume.buffer_limit),
                }),
                Some(Box::new(ReaderResume {
                    sockets: resume.sockets,
                    sinks: sink_sender,
                    disconnect_timeout: resume.disconnect_timeout,
                    sequencing,
                    inbound: InboundSequence::new(),
                    lost_deadline: None,
                })),
            )
        }
        None => (None, None),
    };
    let inherent_keep_alive = source.has_inherent_keep_alive();

    let mut handle = ConnectionHandle::new(context, protocol, config.outbound_capacity, metrics)
        .with_stream_buffer_capacity(config.stream_buffer_capacity)
        .with_buffer_limits(config.outbound_pause_bytes, config.outbound_max_bytes);
    if writer_stateful.is_some() {
        handle = handle.without_reply_backpressure();
    }
    let handle = Arc::new(handle);
    let weak = Arc::downgrade(&handle);
    handle.context().set_aborter(Box::new(move || {
        if let Some(handle) = weak.upgrade() {
            handle.abort(CloseReason::Aborted);
        }
    }));
    // Registered before the handshake is answered: a client whose
    // `start()` has resolved is reached by any broadcast sent after it, on
    // this node and (once the backplane holds the subscription) on others.
    // What is sent meanwhile waits in the outbound queue behind the answer.
    let registered = Box::pin(async {
        tokio::select! {
            () = dispatcher.register(&handle) => true,
            _ = shutdown.wait_for(|down| *down) => false,
        }
    })
    .await;
    let answered = registered
        && answer_handshake(
            &mut sink,
            &HandshakeResponse::success(),
            protocol.transfer_format(),
            &config,
        )
        .await;
    if !answered {
        dispatcher.disconnected(&handle, None, false).await;
        refuse(source, sink, &config).await;
        return None;
    }
    // The writer runs beside the session in this same task, not as a task
    // of its own: one task per connection (a task's header, span and join
    // handle were a fixed cost of every idle connection). It is polled
    // only when its own waker fired (see `Beside`), so a frame read does
    // not poll the writer, nor a broadcast the read loop.
    // Each future is built where it stays pinned: a future moved into
    // another (a by-value argument, a `let` then `pin!`) can keep a slot
    // for each copy in the connection's state machine.
    let mut writer = pin!(
        writer::run(
            sink,
            handle.clone(),
            WriterConfig {
                keep_alive_interval: config.keep_alive_interval,
                send_timeout: config.send_timeout,
                close_timeout: config.close_timeout,
                detailed_errors: config.detailed_errors,
            },
            writer_stateful,
        )
        .fuse()
    );
    let beside = Beside::new();

    let ended = {
        let session = pin!(async {
            let connected = Box::pin(async {
                tokio::select! {
                    result = dispatcher.connected(&handle) => result,
                    _ = shutdown.wait_for(|down| *down) => Err(crate::HubError::new("The server is shutting down.")),
                }
            })
            .await;
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
                        inherent_keep_alive,
                        resume: reader_resume,
                        slot_wait: None,
                        drained_wait: None,
                    };
                    reader.read(&mut source, &mut shutdown).await;
                    Box::pin(reader.drain(&mut source)).await;
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
            let ended = reason.clone();
            let mut close = BytesMut::new();
            if let Some(message) = reason.close_message(config.detailed_errors) {
                if protocol
                    .encode(&HubMessage::Close(message), &mut close)
                    .is_err()
                {
                    close.clear();
                }
            }
            Box::pin(async {
                let _ = timeout(
                    config.close_timeout,
                    handle.outbound().push(Outbound::Close(close.freeze())),
                )
                .await;
                // Nothing more is queued: a writer that missed the Close
                // ends once the queue is empty.
                handle.outbound().finish();
                dispatcher
                    .disconnected(&handle, reason.disconnect_error(), was_connected)
                    .await;
            })
            .await;
            ended
        });
        beside.run(writer.as_mut(), session).await
    };
    if !writer.is_terminated() {
        let writer_budget = config.close_timeout + config.send_timeout;
        let _ = timeout(writer_budget, writer).await;
    }
    linger_detached(source, config.close_timeout);
    Some(ended)
}

/// Runs a connection's writer beside its session in the session's task,
/// each polled only when something it waits for woke it: the task's
/// waker is shared, and two small wakers record which side it was for.
/// What `FuturesUnordered` or a second task would give, for two futures
/// and without a task's allocation per connection.
struct Beside {
    wakers: Arc<SideWakers>,
}

#[derive(Default)]
struct SideWakers {
    task: futures_util::task::AtomicWaker,
    writer_woken: AtomicBool,
    session_woken: AtomicBool,
}

/// The waker of one side: marks the side, wakes the task.
struct SideWaker {
    wakers: Arc<SideWakers>,
    writer: bool,
}

impl std::task::Wake for SideWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let flag = if self.writer {
            &self.wakers.writer_woken
        } else {
            &self.wakers.session_woken
        };
        flag.store(true, Ordering::Release);
        self.wakers.task.wake();
    }
}

impl Beside {
    fn new() -> Self {
        Beside {
            wakers: Arc::new(SideWakers {
                // Both sides run at their first poll.
                writer_woken: AtomicBool::new(true),
                session_woken: AtomicBool::new(true),
                ..SideWakers::default()
            }),
        }
    }

    /// Polls `session` to its end and `writer` beside it (until it ends,
    /// which may be after `session`). Both stay where the caller pinned
    /// them: nothing is moved into this future.
    fn run<'a, W, S>(
        &'a self,
        mut writer: Pin<&'a mut Fuse<W>>,
        mut session: Pin<&'a mut S>,
    ) -> impl Future<Output = S::Output> + 'a
    where
        W: Future<Output = ()>,
        S: Future,
    {
        let writer_waker = Waker::from(Arc::new(SideWaker {
            wakers: self.wakers.clone(),
            writer: true,
        }));
        let session_waker = Waker::from(Arc::new(SideWaker {
            wakers: self.wakers.clone(),
            writer: false,
        }));
        poll_fn(move |cx| {
            self.wakers.task.register(cx.waker());
            // The writer first: what the session queued on its last poll
            // goes out on this one.
            if !writer.is_terminated() && self.wakers.writer_woken.swap(false, Ordering::AcqRel) {
                let _ = writer
                    .as_mut()
                    .poll(&mut Context::from_waker(&writer_waker));
            }
            if self.wakers.session_woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(output) = session
                    .as_mut()
                    .poll(&mut Context::from_waker(&session_waker))
                {
                    return Poll::Ready(output);
                }
                // What the session just queued wakes the writer: write it
                // now rather than on another turn of the scheduler.
                if !writer.is_terminated() && self.wakers.writer_woken.swap(false, Ordering::AcqRel)
                {
                    let _ = writer
                        .as_mut()
                        .poll(&mut Context::from_waker(&writer_waker));
                }
            }
            Poll::Pending
        })
    }
}

/// Reads what the client still sends until it closes too (at most
/// `limit`), so that the socket is not dropped with unread bytes: the TCP
/// reset that would cause can destroy the Close message and close frame
/// before the client reads them. Detached: the session (and a server
/// shutdown waiting for it) is over; only the socket lives on that long.
fn linger_detached<Src: FrameSource>(mut source: Src, limit: std::time::Duration) {
    tokio::spawn(async move {
        let _ = timeout(limit, source.linger()).await;
    });
}

/// Closes a connection that never got past its handshake: a protocol
/// error (1002), then the socket lingers so that the answer is read.
async fn refuse<Src: FrameSource, Snk: FrameSink>(
    source: Src,
    mut sink: Snk,
    config: &SessionConfig,
) {
    let _ = Box::pin(timeout(
        config.close_timeout,
        sink.close(CloseCode::ProtocolError),
    ))
    .await;
    linger_detached(source, config.close_timeout);
}

/// Reads the handshake request and picks the protocol among `formats`
/// and the server's. Returns `None` when the client went away first;
/// otherwise the choice (or why the handshake is refused) and the
/// requested version.
async fn read_handshake<Src: FrameSource>(
    source: &mut Src,
    formats: &[TransferFormat],
    buffer: &mut BytesMut,
    config: &SessionConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(Result<HubProtocol, HandshakeRejection>, i32)> {
    let deadline = Instant::now() + config.handshake_timeout;
    loop {
        match HandshakeRequest::decode(buffer, config.max_receive) {
            Ok(Some(request)) => {
                let chosen = request.select_protocol(formats).and_then(|protocol| {
                    if config.protocols.contains(&protocol) {
                        Ok(protocol)
                    } else {
                        Err(HandshakeRejection::UnsupportedProtocol {
                            protocol: request.protocol.clone(),
                        })
                    }
                });
                return Some((chosen, request.version));
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "invalid handshake request");
                return Some((Err(error.rejection(config.detailed_errors)), 1));
            }
        }
        tokio::select! {
            frame = source.next_frame() => match frame {
                Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
                Some(Err(_)) | None => return None,
            },
            () = sleep_until(deadline) => return Some((Err(HandshakeRejection::Canceled), 1)),
            _ = shutdown.wait_for(|down| *down) => return Some((Err(HandshakeRejection::Canceled), 1)),
        }
    }
}

/// Writes the handshake response; `false` when it could not be written in
/// time.
async fn answer_handshake<Snk: FrameSink>(
    sink: &mut Snk,
    response: &HandshakeResponse,
    format: TransferFormat,
    config: &SessionConfig,
) -> bool {
    let mut bytes = BytesMut::new();
    response.encode(&mut bytes);
    let written = timeout(config.send_timeout, async {
        sink.feed(bytes.freeze(), format).await?;
        sink.flush().await
    })
    .await;
    matches!(written, Ok(Ok(())))
}

/// Why the read loop's long-lived close watch fired.
enum Ending {
    /// The connection has a close reason.
    Closed,
    /// The server shuts down.
    Shutdown,
}

/// A deadline that never comes (a timer parked until it is first armed):
/// a year, well inside what `Instant` and tokio's timer can hold.
fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600)
}

/// The read loop's state.
struct Reader<Src, Snk> {
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
    /// The transport proves the client alive: no client timeout.
    inherent_keep_alive: bool,
    /// Stateful reconnect, when on (boxed: most connections are not
    /// stateful, and this struct lives in every connection's state).
    resume: Option<Box<ReaderResume<Src, Snk>>>,
    /// While invocations are queued: the wait for a slot.
    slot_wait: Option<SlotWait>,
    /// While the outbound queue is low on room: the wait for the writer
    /// to drain it.
    drained_wait: Option<BoxFuture<'static, ()>>,
}

/// The reader's part of stateful reconnect.
struct ReaderResume<Src, Snk> {
    sockets: mpsc::Receiver<(Src, Snk)>,
    /// Hands each new sink to the writer.
    sinks: mpsc::Sender<Snk>,
    disconnect_timeout: std::time::Duration,
    sequencing: Arc<Sequencing>,
    inbound: InboundSequence,
    /// Set while the transport is lost: the client must be back by then.
    lost_deadline: Option<Instant>,
}

/// What woke the read loop.
enum Woken<Src, Snk> {
    /// The connection is closing or the server shuts down.
    Ending(Ending),
    /// A running invocation ended, or room was made: look again.
    Again,
    /// A parallelism slot for the queued invocations.
    Slot(Option<OwnedSemaphorePermit>),
    /// The client timeout or the disconnect timeout (maybe early).
    Timer,
    /// A client resumed with a new transport.
    Resumed(Option<(Src, Snk)>),
    /// What the transport read.
    Frame(Option<Result<bytes::Bytes, crate::server::transport::TransportError>>),
}

/// A wait for a parallelism slot, while invocations are queued.
type SlotWait = Pin<
    Box<
        dyn Future<Output = Result<OwnedSemaphorePermit, tokio::sync::AcquireError>>
            + Send
            + 'static,
    >,
>;

impl<Src: FrameSource, Snk: FrameSink> Reader<Src, Snk> {
    /// Reads and dispatches until the connection has a close reason.
    ///
    /// The loop runs once per frame, so what waits for rare events lives
    /// across iterations: the close and shutdown signals stay registered,
    /// and the client timeout is one timer moved only when it fires early
    /// (a message that merely pushes the deadline back costs a clock read,
    /// not a timer-wheel update).
    async fn read(&mut self, source: &mut Src, shutdown: &mut watch::Receiver<bool>) {
        let mut close_signal = self.handle.close_signal();
        // Polled through `poll_rare_signal`, with cheap checks of the same
        // two signals (an atomic load each).
        let shutdown_seen = shutdown.clone();
        let mut ending_polled = false;
        let ending = tokio::task::unconstrained(async {
            tokio::select! {
                biased;
                _ = close_signal.changed() => Ending::Closed,
                _ = shutdown.wait_for(|down| *down) => Ending::Shutdown,
            }
        });
        let mut ending = pin!(ending);
        // One timer for the client timeout and, while a stateful
        // connection's transport is lost, the disconnect timeout: moved
        // only when it fires early.
        let mut timer = pin!(tokio::time::sleep_until(far_future()));
        loop {
            self.process_buffer();
            if self.handle.is_closing() {
                return;
            }
            // Backpressure: with the waiting queue full, stop reading until
            // a running invocation finishes.
            // Likewise while upload streams hold all the items they may
            // (see `super::streams`), until a hub method takes some.
            let uploads_blocked = self.handle.uploads_blocked();
            // And while the outbound queue is low on room, until the writer
            // drains it: a client that sends faster than it reads is slowed
            // down, not closed as a slow consumer.
            let outbound_low = self.handle.outbound_low();
            let can_read = self.queue.len() < self.config.max_queued_invocations.max(1)
                && !uploads_blocked
                && !outbound_low;
            let lost_deadline = self.resume.as_ref().and_then(|r| r.lost_deadline);
            let connected = lost_deadline.is_none();
            let deadline = if connected {
                self.client_deadline.filter(|_| can_read)
            } else {
                lost_deadline
            };
            if let Some(deadline) = deadline {
                if timer.deadline() > deadline {
                    timer.as_mut().reset(deadline);
                }
            }
            // The waits of the busy states are boxed, made when one starts
            // and dropped when it ends: an idle connection holds none.
            if !outbound_low {
                self.drained_wait = None;
            } else if self.drained_wait.is_none() {
                let handle = self.handle.clone();
                self.drained_wait = Some(Box::pin(async move { handle.outbound_drained().await }));
            }
            if self.queue.is_empty() {
                self.slot_wait = None;
            } else if self.slot_wait.is_none() {
                self.slot_wait = Some(Box::pin(self.semaphore.clone().acquire_owned()));
            }
            let upload_room = uploads_blocked.then(|| self.handle.upload_room());
            // One hand-written poll instead of a `select!`: a `select!`
            // keeps a future per branch in the connection's state, each as
            // large as what it waits on, whether the branch is on or not.
            // Here the socket's read and the rare signals are polled where
            // their wake-ups are registered; only the read's own small
            // future and the long-lived ones above stay.
            let woken = {
                let mut frame = pin!(source.next_frame());
                let handle = &self.handle;
                let running = &mut self.running;
                let drained_wait = &mut self.drained_wait;
                let slot_wait = &mut self.slot_wait;
                let resume = &mut self.resume;
                std::future::poll_fn(|cx| {
                    let moved = handle.is_closing() || shutdown_seen.has_changed().unwrap_or(true);
                    if let Poll::Ready(ending) =
                        poll_rare_signal(ending.as_mut(), &mut ending_polled, moved, cx)
                    {
                        return Poll::Ready(Woken::Ending(ending));
                    }
                    if !running.is_empty() && running.poll_join_next(cx).is_ready() {
                        return Poll::Ready(Woken::Again);
                    }
                    if let Some(room) = &upload_room {
                        if pin!(room.wait()).poll(cx).is_ready() {
                            return Poll::Ready(Woken::Again);
                        }
                    }
                    if let Some(wait) = drained_wait {
                        if wait.as_mut().poll(cx).is_ready() {
                            *drained_wait = None;
                            return Poll::Ready(Woken::Again);
                        }
                    }
                    if let Some(wait) = slot_wait {
                        if let Poll::Ready(permit) = wait.as_mut().poll(cx) {
                            *slot_wait = None;
                            return Poll::Ready(Woken::Slot(permit.ok()));
                        }
                    }
                    if deadline.is_some() && timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Woken::Timer);
                    }
                    if let Some(resume) = resume {
                        if let Poll::Ready(socket) = resume.sockets.poll_recv(cx) {
                            return Poll::Ready(Woken::Resumed(socket));
                        }
                    }
                    if can_read && connected {
                        if let Poll::Ready(frame) = frame.as_mut().poll(cx) {
                            return Poll::Ready(Woken::Frame(frame));
                        }
                    }
                    Poll::Pending
                })
                .await
            };
            let mut resumed_sink = None;
            match woken {
                Woken::Ending(ending) => {
                    if let Ending::Shutdown = ending {
                        self.handle.abort(CloseReason::Shutdown);
                    }
                    return;
                }
                Woken::Again => {}
                Woken::Slot(permit) => {
                    if let Some(permit) = permit {
                        self.start_invocations(permit);
                    }
                }
                Woken::Timer => {
                    let now = Instant::now();
                    let lost_deadline = self.resume.as_ref().and_then(|r| r.lost_deadline);
                    match (lost_deadline, self.client_deadline) {
                        // Fired early (messages came since it was set, or
                        // it was set for the other deadline): wait on.
                        (Some(lost), _) if lost > now => timer.as_mut().reset(lost),
                        (Some(_), _) => {
                            self.handle
                                .abort(CloseReason::TransportError(DISCONNECT_TIMEOUT.into()));
                        }
                        (None, Some(deadline)) if deadline > now => {
                            timer.as_mut().reset(deadline);
                        }
                        (None, Some(_)) => {
                            tracing::debug!(connection = %self.handle.id(), "client timeout");
                            self.handle.abort(CloseReason::ClientTimeout);
                        }
                        (None, None) => timer.as_mut().reset(far_future()),
                    }
                }
                Woken::Resumed(socket) => {
                    if let (Some((new_source, new_sink)), Some(resume)) = (socket, &mut self.resume)
                    {
                        tracing::debug!(connection = %self.handle.id(), "client resumed");
                        self.handle.metrics().resumed();
                        *source = new_source;
                        // A record cut off with the old socket is replayed
                        // whole by the client.
                        self.decoder_buffer.clear();
                        resume.lost_deadline = None;
                        resumed_sink = Some(new_sink);
                        if self.client_deadline.is_some() {
                            self.reset_client_timeout();
                        }
                    }
                }
                Woken::Frame(frame) => match frame {
                    Some(Ok(bytes)) => {
                        if self.decoder_buffer.is_empty()
                            && self.decoder_buffer.capacity() > RETAINED_READ_BUFFER
                        {
                            self.decoder_buffer = BytesMut::new();
                        }
                        self.decoder_buffer.extend_from_slice(&bytes);
                        if self.client_deadline.is_some() {
                            self.reset_client_timeout();
                        }
                    }
                    Some(Err(_)) | None if self.resume.is_some() && !source.closed_gracefully() => {
                        // Stateful reconnect: wait for the client to resume.
                        tracing::debug!(connection = %self.handle.id(), "transport lost; waiting for a resume");
                        if let Some(resume) = &mut self.resume {
                            resume.lost_deadline = Some(Instant::now() + resume.disconnect_timeout);
                        }
                    }
                    Some(Err(error)) => {
                        self.handle
                            .abort(CloseReason::TransportError(error.to_string()));
                    }
                    None => {
                        self.handle.abort(CloseReason::TransportClosed);
                    }
                },
            }
            if let (Some(sink), Some(resume)) = (resumed_sink, &self.resume) {
                // Boxed: a send's future is part of the state only while
                // it runs.
                if Box::pin(resume.sinks.send(sink)).await.is_err() {
                    self.handle.abort(CloseReason::TransportClosed);
                }
            }
        }
    }

    /// Starts queued invocations while slots are free, polling each job
    /// once right here first. Most hub methods finish without waiting (an
    /// echo, a broadcast): finishing them inline saves a task per
    /// invocation, and lets the invocations of one read fan out before the
    /// writers run, so that those coalesce several messages into one
    /// frame and one syscall. A job that has to wait becomes a task, as
    /// every job did before; it is polled again there with its real waker.
    fn start_invocations(&mut self, permit: OwnedSemaphorePermit) {
        let mut permit = Some(permit);
        while let Some(free) = permit.take() {
            let Some(job) = self.queue.pop_front() else {
                return;
            };
            let slot = InvocationSlot::new(self.semaphore.clone(), free);
            let mut job = job;
            // The first poll sees the slot through `sync_scope`: only a job
            // that has to wait is wrapped (and boxed by the spawn), not
            // every job.
            let done = INVOCATION_SLOT.sync_scope(slot.clone(), || (&mut job).now_or_never());
            if done.is_none() {
                self.running.spawn(INVOCATION_SLOT.scope(slot, job));
            }
            permit = self.semaphore.clone().try_acquire_owned().ok();
        }
    }

    fn reset_client_timeout(&mut self) {
        if !self.inherent_keep_alive {
            self.client_deadline = Some(Instant::now() + self.config.client_timeout);
        }
    }

    /// Decodes and dispatches every whole message buffered, as long as the
    /// waiting queue has room.
    fn process_buffer(&mut self) {
        let mut decoded = false;
        self.decode_buffered(&mut decoded);
        // The client timeout counts from the latest message (one clock read
        // per batch): messages read before a backpressure pause count when
        // they are processed.
        if decoded {
            self.reset_client_timeout();
        }
    }

    fn decode_buffered(&mut self, decoded: &mut bool) {
        while self.queue.len() < self.config.max_queued_invocations.max(1)
            && !self.handle.uploads_blocked()
            && !self.handle.outbound_low()
        {
            if self.handle.is_closing() {
                return;
            }
            match self.decoder.decode(&mut self.decoder_buffer) {
                Ok(Some(message)) => {
                    *decoded = true;
                    if let Some(resume) = &mut self.resume {
                        match resume.inbound.accept(&message, &resume.sequencing) {
                            Inbound::Process => {}
                            Inbound::Skip => continue,
                            Inbound::Broken => {
                                self.handle.abort(CloseReason::ProtocolError(
                                    "Sequence ID greater than amount of messages we've received."
                                        .into(),
                                ));
                                return;
                            }
                        }
                    }
                    self.dispatch(message);
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(connection = %self.handle.id(), %error, "protocol error");
                    let reason = match error {
                        ProtocolError::MessageTooLarge { .. } => {
                            CloseReason::MessageTooLarge(error.to_string())
                        }
                        _ => CloseReason::ProtocolError(error.to_string()),
                    };
                    self.handle.abort(reason);
                    return;
                }
            }
        }
    }

    fn dispatch(&mut self, message: HubMessage) {
        match message {
            HubMessage::Invocation(invocation) => {
                // As in ASP.NET Core, a call with upload streams takes no
                // slot: queued behind a running upload, its own full stream
                // buffer would stop the reads that the running one needs.
                let uploads = !invocation.stream_ids.is_empty();
                if let Some(job) = self.dispatcher.invocation(&self.handle, invocation) {
                    if uploads {
                        self.running.spawn(job);
                    } else {
                        self.queue.push_back(job);
                        // A free slot starts it now, not after another turn
                        // of the read loop (the queue keeps the order).
                        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
                            self.start_invocations(permit);
                        }
                    }
                }
            }
            HubMessage::StreamInvocation(invocation) => {
                // Streams do not wait for an invocation slot.
                if let Some(job) = self.dispatcher.stream_invocation(&self.handle, invocation) {
                    self.running.spawn(job);
                }
            }
            HubMessage::StreamItem(item) => self.handle.upload_item(item),
            HubMessage::CancelInvocation(cancel) => {
                self.handle.cancel_stream(&cancel.invocation_id);
            }
            // Upload streams first, as ASP.NET Core: then client results.
            HubMessage::Completion(completion) => {
                if !self.handle.complete_upload(&completion) {
                    self.handle.complete(completion);
                }
            }
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
    async fn drain(&mut self, source: &mut Src) {
        self.queue.clear();
        let reason = self.handle.close_reason();
        let keep_reading = matches!(reason, Some(CloseReason::Shutdown));
        if !keep_reading {
            self.handle.fail_pending();
            // Nothing more will be read: upload streams end now, with an
            // error, so the methods reading them finish.
            self.handle.close_streams();
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
                                Ok(Some(HubMessage::Completion(completion))) => {
                                    if !self.handle.complete_upload(&completion) {
                                        self.handle.complete(completion);
                                    }
                                }
                                Ok(Some(HubMessage::StreamItem(item))) => self.handle.upload_item(item),
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                                Err(_) => { reading = false; self.handle.fail_pending(); self.handle.close_streams(); break; }
                            }
                        }
                    }
                    Some(Err(_)) | None => { reading = false; self.handle.fail_pending(); self.handle.close_streams(); }
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
