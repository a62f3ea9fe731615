//! The writer task: the only code that writes to a connection's transport
//! after the handshake.
//!
//! It drains the bounded outbound queue. Whatever is queued when it wakes
//! up is coalesced into as few frames as possible (whole records
//! concatenated, up to [`MAX_FRAME`] bytes each; a record is never split),
//! and the transport is flushed when the queue is empty: no timer, no
//! added latency. When the server has written nothing for the keep-alive
//! interval, it writes a Ping. Every write is bounded by the transport send
//! timeout; a failed or stuck write ends the connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};

use super::{CloseReason, ConnectionHandle, Outbound};
use crate::protocol::{HubMessage, TransferFormat};
use crate::transport::{FrameSink, TransportError};

/// Coalescing stops adding records to a frame once it is this large.
pub(crate) const MAX_FRAME: usize = 64 * 1024;

/// What the writer needs besides the queue and the sink.
pub(crate) struct WriterConfig {
    pub(crate) keep_alive_interval: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) detailed_errors: bool,
}

/// Runs until the queue delivers [`Outbound::Close`], the queue closes,
/// a write fails, or the connection is aborted as a slow consumer.
pub(crate) async fn run<S: FrameSink>(
    mut sink: S,
    mut queue: mpsc::Receiver<Outbound>,
    handle: Arc<ConnectionHandle>,
    config: WriterConfig,
) {
    let format = handle.protocol().transfer_format();
    let mut ping = BytesMut::new();
    // A Ping always encodes: it has no payload.
    let ping = match handle.protocol().encode(&HubMessage::Ping, &mut ping) {
        Ok(()) => ping.freeze(),
        Err(_) => Bytes::new(),
    };
    let mut close_signal = handle.close_signal();
    let mut last_write = Instant::now();

    loop {
        let keep_alive = last_write + config.keep_alive_interval;
        tokio::select! {
            biased;
            changed = close_signal.changed() => {
                let slow = matches!(&*close_signal.borrow(), Some(CloseReason::SlowConsumer));
                if changed.is_err() || slow {
                    // The queue is full and the client is not reading: skip
                    // the backlog, try to say why, and drop the socket.
                    if let Some(close) = CloseReason::SlowConsumer.close_message(config.detailed_errors) {
                        let mut record = BytesMut::new();
                        if handle.protocol().encode(&HubMessage::Close(close), &mut record).is_ok() {
                            let _ = timeout(config.close_timeout, async {
                                sink.feed(record.freeze(), format).await?;
                                sink.close().await
                            }).await;
                        }
                    }
                    return;
                }
            }
            item = queue.recv() => {
                let Some(item) = item else {
                    let _ = timeout(config.close_timeout, sink.close()).await;
                    return;
                };
                match write_batch(&mut sink, &mut queue, item, format, &config).await {
                    Ok(false) => last_write = Instant::now(),
                    Ok(true) => {
                        let _ = timeout(config.close_timeout, sink.close()).await;
                        return;
                    }
                    Err(error) => {
                        tracing::debug!(connection = %handle.id(), %error, "write failed");
                        handle.abort(CloseReason::TransportError(error.to_string()));
                        return;
                    }
                }
            }
            () = sleep_until(keep_alive) => {
                let result = timeout(config.send_timeout, async {
                    sink.feed(ping.clone(), format).await?;
                    sink.flush().await
                }).await;
                match result {
                    Ok(Ok(())) => last_write = Instant::now(),
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

/// Writes `first` and everything queued behind it, then flushes. Returns
/// whether a Close was written (the writer must stop).
async fn write_batch<S: FrameSink>(
    sink: &mut S,
    queue: &mut mpsc::Receiver<Outbound>,
    first: Outbound,
    format: TransferFormat,
    config: &WriterConfig,
) -> Result<bool, TransportError> {
    let mut closing = false;
    let mut frame = match first {
        Outbound::Records(records) => records,
        Outbound::Close(record) => {
            closing = true;
            record
        }
    };
    let mut batch: Option<BytesMut> = None;
    while !closing {
        let next = match queue.try_recv() {
            Ok(Outbound::Records(records)) => records,
            Ok(Outbound::Close(record)) => {
                closing = true;
                record
            }
            Err(_) => break,
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
    match timeout(config.send_timeout, sink.flush()).await {
        Ok(result) => result?,
        Err(_) => return Err(TransportError("send timed out".into())),
    }
    Ok(closing)
}

async fn send<S: FrameSink>(
    sink: &mut S,
    frame: Bytes,
    format: TransferFormat,
    config: &WriterConfig,
) -> Result<(), TransportError> {
    match timeout(config.send_timeout, sink.feed(frame, format)).await {
        Ok(result) => result,
        Err(_) => Err(TransportError("send timed out".into())),
    }
}
