//! The writer: the only code that writes to a connection's transport
//! after the handshake.
//!
//! It drains the bounded outbound queue. Whatever is queued when it wakes
//! up is coalesced into as few frames as possible (whole records
//! concatenated, up to [`MAX_FRAME`] bytes each; a record is never split),
//! and the transport is flushed when the queue is empty: no timer, no
//! added latency. When the server has written nothing for the keep-alive
//! interval, it writes a Ping. Every write is bounded by the transport send
//! timeout; a failed or stuck write ends the connection — except under
//! stateful reconnect ([`Stateful`]), where the writer keeps every record
//! until the client acknowledges it, waits for the next WebSocket and
//! replays.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};

use super::stateful::{ReplayBuffer, Sequencing};
use super::{CloseReason, ConnectionHandle, Outbound, poll_rare_signal};
use crate::protocol::{Ack, HubMessage, HubProtocol, Sequence, TransferFormat};
use crate::server::transport::{CloseCode, FrameSink, TransportError};

/// Coalescing stops adding records to a frame once it is this large.
pub(crate) const MAX_FRAME: usize = 64 * 1024;

/// What the writer needs besides the queue and the sink.
pub(crate) struct WriterConfig {
    pub(crate) keep_alive_interval: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) detailed_errors: bool,
}

/// How often a stateful connection acknowledges what it received (as the
/// .NET server: once a second, when something new arrived).
const ACK_INTERVAL: Duration = Duration::from_secs(1);

/// The writer's part of stateful reconnect.
pub(crate) struct Stateful<S> {
    /// Replacement sinks, from the reader when a client resumes.
    pub(crate) sinks: mpsc::Receiver<S>,
    pub(crate) sequencing: Arc<Sequencing>,
    pub(crate) buffer: ReplayBuffer,
}

/// Runs until the queue delivers [`Outbound::Close`], the queue closes,
/// a write fails, or the connection is aborted as a slow consumer; then
/// records the deepest the queue got.
pub(crate) async fn run<S: FrameSink>(
    sink: S,
    handle: Arc<ConnectionHandle>,
    config: WriterConfig,
    stateful: Option<Stateful<S>>,
) {
    /// Closes the queue however the writer ends (a panic, an abort): the
    /// pushes that wait for room fail instead of waiting forever.
    struct CloseQueue<'a>(&'a ConnectionHandle);
    impl Drop for CloseQueue<'_> {
        fn drop(&mut self) {
            self.0.outbound().close();
            self.0.notify_drained();
        }
    }
    let _close = CloseQueue(&handle);
    let mut high_water = 0;
    drive(sink, &handle, config, stateful, &mut high_water).await;
    handle.metrics().queue_high_water(high_water);
}

async fn drive<S: FrameSink>(
    mut sink: S,
    handle: &Arc<ConnectionHandle>,
    config: WriterConfig,
    mut stateful: Option<Stateful<S>>,
    high_water: &mut usize,
) {
    let format = handle.protocol().transfer_format();
    let queue = handle.outbound();
    let mut ping = BytesMut::new();
    // A Ping always encodes: it has no payload.
    let ping = match handle.protocol().encode(&HubMessage::Ping, &mut ping) {
        Ok(()) => ping.freeze(),
        Err(_) => Bytes::new(),
    };
    let mut close_signal = handle.close_signal();
    // Long-lived, so that a batch does not register them anew: the close
    // watch, and the keep-alive timer, moved only when it fires early.
    // The watch is polled through `poll_rare_signal`, with the close flag
    // as the cheap check.
    let mut close_changed = pin!(tokio::task::unconstrained(close_signal.changed()));
    let mut close_watched = true;
    let mut close_registered = false;
    let mut last_write = Instant::now();
    let mut keep_alive = pin!(sleep_until(last_write + config.keep_alive_interval));
    // Under stateful reconnect: whether the sink works, what the client
    // acknowledged, what we last acknowledged.
    let mut connected = true;
    let mut ack_wait = stateful.as_ref().map(|s| wait_ack(s.sequencing.acked()));
    let mut last_ack_sent = 0;
    // Only stateful connections acknowledge (an interval is a heap timer).
    let mut ack_tick = stateful.as_ref().map(|_| {
        let mut tick = tokio::time::interval(ACK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });

    loop {
        let has_room = stateful
            .as_ref()
            .is_none_or(|s| s.buffer.has_room(connected));
        // One hand-written poll instead of a `select!`, which would keep a
        // future per branch in the connection's state: each source is
        // polled where its wake-up is registered.
        let woken = std::future::poll_fn(|cx| {
            if close_watched {
                if let Poll::Ready(changed) = poll_rare_signal(
                    close_changed.as_mut(),
                    &mut close_registered,
                    handle.is_closing(),
                    cx,
                ) {
                    return Poll::Ready(Woken::Close {
                        sender_gone: changed.is_err(),
                    });
                }
            }
            if let Some(state) = &mut stateful {
                if let Poll::Ready(Some(sink)) = state.sinks.poll_recv(cx) {
                    return Poll::Ready(Woken::Sink(sink));
                }
            }
            if let Some(wait) = &mut ack_wait {
                if let Poll::Ready((acked, changed)) = wait.as_mut().poll(cx) {
                    return Poll::Ready(Woken::Acked(acked, changed.is_ok()));
                }
            }
            if connected {
                if let Some(tick) = &mut ack_tick {
                    if tick.poll_tick(cx).is_ready() {
                        return Poll::Ready(Woken::AckTick);
                    }
                }
            }
            if has_room {
                if let Poll::Ready(item) = queue.poll_pop(cx) {
                    return Poll::Ready(Woken::Item(item));
                }
            }
            if connected && keep_alive.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Woken::KeepAlive);
            }
            Poll::Pending
        })
        .await;
        match woken {
            Woken::Close { sender_gone } => {
                // A close reason is set once: nothing more to watch.
                close_watched = false;
                let slow = matches!(handle.close_reason(), Some(CloseReason::SlowConsumer));
                if sender_gone || slow {
                    // The queue is full and the client is not reading: skip
                    // the backlog, try to say why, and drop the socket.
                    if let Some(close) =
                        CloseReason::SlowConsumer.close_message(config.detailed_errors)
                    {
                        let mut record = BytesMut::new();
                        if handle
                            .protocol()
                            .encode(&HubMessage::Close(close), &mut record)
                            .is_ok()
                        {
                            let _ = Box::pin(timeout(config.close_timeout, async {
                                sink.feed(record.freeze(), format).await?;
                                sink.close(CloseCode::PolicyViolation).await
                            }))
                            .await;
                        }
                    }
                    return;
                }
            }
            Woken::Sink(new_sink) => {
                // The client resumed: the old socket goes, the new one
                // starts with a Sequence and the replay.
                sink = new_sink;
                connected = false;
                if let Some(state) = &mut stateful {
                    state.buffer.start_replay();
                    // Our last Ack may have died with the old socket: say
                    // again what we have, or a client whose buffer is full
                    // would wait for it forever.
                    let received = state.sequencing.received();
                    match Box::pin(replay(
                        &mut sink,
                        &state.buffer,
                        received,
                        handle.protocol(),
                        format,
                        &config,
                    ))
                    .await
                    {
                        Ok(()) => {
                            handle.metrics().replayed(state.buffer.records().count());
                            connected = true;
                            last_write = Instant::now();
                            last_ack_sent = received;
                        }
                        Err(error) => {
                            tracing::debug!(connection = %handle.id(), %error, "replay failed");
                        }
                    }
                }
            }
            Woken::Acked(acked, true) => {
                if let Some(state) = &mut stateful {
                    state.buffer.acknowledge(*acked.borrow());
                }
                ack_wait = Some(wait_ack(acked));
            }
            // The sequencing is gone: no more acknowledgements.
            Woken::Acked(_, false) => ack_wait = None,
            Woken::AckTick => {
                let received = stateful.as_ref().map_or(0, |s| s.sequencing.received());
                if received > last_ack_sent {
                    let mut record = BytesMut::new();
                    let ack = HubMessage::Ack(Ack {
                        sequence_id: received,
                    });
                    if handle.protocol().encode(&ack, &mut record).is_ok() {
                        match Box::pin(write_one(&mut sink, record.freeze(), format, &config)).await
                        {
                            Ok(()) => {
                                last_ack_sent = received;
                                last_write = Instant::now();
                            }
                            Err(_) => connected = false,
                        }
                    }
                }
            }
            Woken::Item(item) => {
                let Some(item) = item else {
                    // Boxed, as every rare await here: the state of a
                    // connection's task is as large as its largest await.
                    let _ = Box::pin(timeout(
                        config.close_timeout,
                        sink.close(close_code(handle)),
                    ))
                    .await;
                    return;
                };
                // What waited behind this item: one atomic load per batch.
                *high_water = (*high_water).max(queue.len() + 1);
                handle.dequeued(&item);
                if let Some(state) = &mut stateful {
                    if !connected {
                        // Keep it for the replay; the reader ends the
                        // connection if the client does not come back.
                        match item {
                            Outbound::Records(records) => state.buffer.push(records),
                            Outbound::Close(_) => return,
                        }
                        handle.notify_drained();
                        continue;
                    }
                }
                let buffer = stateful.as_mut().map(|s| &mut s.buffer);
                let written = write_batch(&mut sink, handle, item, format, &config, buffer).await;
                // The batch emptied the queue: a read loop paused for room
                // may go on.
                handle.notify_drained();
                match written {
                    Ok(false) => last_write = Instant::now(),
                    Ok(true) => {
                        let _ = Box::pin(timeout(
                            config.close_timeout,
                            sink.close(close_code(handle)),
                        ))
                        .await;
                        return;
                    }
                    Err(error) if stateful.is_some() => {
                        tracing::debug!(connection = %handle.id(), %error, "write failed; waiting for the client to resume");
                        connected = false;
                    }
                    Err(error) => {
                        tracing::debug!(connection = %handle.id(), %error, "write failed");
                        handle.abort(CloseReason::TransportError(error.to_string()));
                        return;
                    }
                }
            }
            Woken::KeepAlive => {
                let due = last_write + config.keep_alive_interval;
                if due > Instant::now() {
                    // Written since the timer was set: wait on.
                    keep_alive.as_mut().reset(due);
                    continue;
                }
                let result = Box::pin(timeout(config.send_timeout, async {
                    sink.feed(ping.clone(), format).await?;
                    sink.flush().await
                }))
                .await;
                match result {
                    Ok(Ok(())) => {
                        last_write = Instant::now();
                        keep_alive
                            .as_mut()
                            .reset(last_write + config.keep_alive_interval);
                    }
                    Ok(Err(_)) | Err(_) if stateful.is_some() => connected = false,
                    Ok(Err(error)) => {
                        handle.abort(CloseReason::TransportError(error.to_string()));
                        return;
                    }
                    Err(_) => {
                        handle.abort(CloseReason::TransportError("send timed out".into()));
                        return;
                    }
                }
            }
        }
    }
}

/// The close code for the connection's close reason.
fn close_code(handle: &ConnectionHandle) -> CloseCode {
    handle
        .close_reason()
        .map_or(CloseCode::Normal, |reason| reason.close_code())
}

/// What woke the writer.
enum Woken<S> {
    /// The connection has a close reason (or its watch is gone).
    Close { sender_gone: bool },
    /// The client resumed: its new sink.
    Sink(S),
    /// The client acknowledged more (`false`: nothing more will come).
    Acked(watch::Receiver<u64>, bool),
    /// Time to acknowledge what we received.
    AckTick,
    /// The next queued item, or the end of the queue.
    Item(Option<Outbound>),
    /// The keep-alive timer fired (maybe early).
    KeepAlive,
}

/// A stateful connection's wait for the client's next acknowledgement:
/// boxed, since only stateful connections have one.
type AckWait = Pin<
    Box<dyn Future<Output = (watch::Receiver<u64>, Result<(), watch::error::RecvError>)> + Send>,
>;

fn wait_ack(mut acked: watch::Receiver<u64>) -> AckWait {
    Box::pin(async move {
        let changed = acked.changed().await;
        (acked, changed)
    })
}

/// Writes one record and flushes.
async fn write_one<S: FrameSink>(
    sink: &mut S,
    record: Bytes,
    format: TransferFormat,
    config: &WriterConfig,
) -> Result<(), TransportError> {
    send(sink, record, format, config).await?;
    match timeout(config.send_timeout, sink.flush()).await {
        Ok(result) => result,
        Err(_) => Err(TransportError("send timed out".into())),
    }
}

/// Starts a resumed WebSocket: a Sequence with the oldest unacknowledged
/// id, then every unacknowledged record in order (coalesced into frames),
/// then an Ack of what we `received`.
async fn replay<S: FrameSink>(
    sink: &mut S,
    buffer: &ReplayBuffer,
    received: u64,
    protocol: HubProtocol,
    format: TransferFormat,
    config: &WriterConfig,
) -> Result<(), TransportError> {
    let mut frame = BytesMut::new();
    let sequence = HubMessage::Sequence(Sequence {
        sequence_id: buffer.first_id(),
    });
    protocol
        .encode(&sequence, &mut frame)
        .map_err(|e| TransportError(e.to_string()))?;
    for record in buffer.records() {
        if !frame.is_empty() && frame.len() + record.len() > MAX_FRAME {
            send(sink, frame.split().freeze(), format, config).await?;
        }
        frame.extend_from_slice(record);
    }
    if received > 0 {
        let ack = HubMessage::Ack(Ack {
            sequence_id: received,
        });
        protocol
            .encode(&ack, &mut frame)
            .map_err(|e| TransportError(e.to_string()))?;
    }
    write_one(sink, frame.freeze(), format, config).await
}

/// Writes `first` and everything queued behind it, then flushes. Returns
/// whether a Close was written (the writer must stop). Under stateful
/// reconnect every record taken is kept in `replay` first.
async fn write_batch<S: FrameSink>(
    sink: &mut S,
    handle: &ConnectionHandle,
    first: Outbound,
    format: TransferFormat,
    config: &WriterConfig,
    mut replay: Option<&mut ReplayBuffer>,
) -> Result<bool, TransportError> {
    let mut closing = false;
    let mut frame = match first {
        Outbound::Records(records) => {
            if let Some(replay) = replay.as_deref_mut() {
                replay.push(records.clone());
            }
            records
        }
        Outbound::Close(record) => {
            closing = true;
            record
        }
    };
    let mut batch: Option<BytesMut> = None;
    while !closing && replay.as_ref().is_none_or(|r| r.has_room(true)) {
        let taken = handle.outbound().try_pop();
        if let Some(item) = &taken {
            handle.dequeued(item);
        }
        let next = match taken {
            Some(Outbound::Records(records)) => {
                if let Some(replay) = replay.as_deref_mut() {
                    replay.push(records.clone());
                }
                records
            }
            Some(Outbound::Close(record)) => {
                closing = true;
                record
            }
            None => break,
        };
        let current_len = batch.as_ref().map_or(frame.len(), BytesMut::len);
        if current_len + next.len() > MAX_FRAME {
            // Send what we have; start a new frame with `next`.
            let full = match batch.take() {
                Some(buffer) => buffer.freeze(),
                None => std::mem::replace(&mut frame, Bytes::new()),
            };
            send(sink, full, format, config).await?;
            frame = next;
        } else {
            let buffer = batch.get_or_insert_with(|| {
                let mut buffer =
                    BytesMut::with_capacity(MAX_FRAME.min(frame.len() + next.len() * 4));
                buffer.extend_from_slice(&frame);
                buffer
            });
            buffer.extend_from_slice(&next);
        }
    }
    let last = match batch {
        Some(buffer) => buffer.freeze(),
        None => frame,
    };
    if !last.is_empty() {
        send(sink, last, format, config).await?;
    }
    within_send_timeout(pin!(sink.flush()), config).await?;
    Ok(closing)
}

async fn send<S: FrameSink>(
    sink: &mut S,
    frame: Bytes,
    format: TransferFormat,
    config: &WriterConfig,
) -> Result<(), TransportError> {
    within_send_timeout(pin!(sink.feed(frame, format)), config).await
}

/// Runs a write under the send timeout. Most writes finish at their first
/// poll; only a write that has to wait arms a timer, boxed: the write path
/// is part of every connection's state, and a timer inline would be too.
/// The write is pinned by the caller, so that it is not copied in here.
async fn within_send_timeout<W: Future<Output = Result<(), TransportError>>>(
    mut write: Pin<&mut W>,
    config: &WriterConfig,
) -> Result<(), TransportError> {
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = write.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(config.send_timeout)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(TransportError("send timed out".into())));
        }
        Poll::Pending
    })
    .await
}
