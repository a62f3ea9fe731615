//! The writer task: the one owner of a live transport's sending half.
//!
//! It takes already-encoded messages from an unbounded queue, coalesces
//! queued messages into one frame (up to [`MAX_BATCH`] bytes) and sends a
//! Ping when nothing was sent for the keep-alive interval.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::transport::frame::{Frame, FrameSink};
use crate::{HubError, HubErrorKind};

/// How long a closing transport may take to close.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes the writer puts in one frame when it coalesces queued
/// messages.
const MAX_BATCH: usize = 64 * 1024;

/// What the writer sends.
pub(crate) enum Outbound {
    /// Encoded messages; `sent` learns whether the transport took them.
    Data {
        bytes: Bytes,
        sent: Option<oneshot::Sender<Result<(), HubError>>>,
    },
    /// Close the transport, first sending a Close message when `message`
    /// holds one.
    Close { message: Option<Bytes> },
}

/// What one frame carries: one record as it was queued (sent without a
/// copy: most frames hold one call), or several copied into one buffer.
#[derive(Default)]
enum Batch {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Batch {
    fn push(&mut self, record: Bytes) {
        *self = match std::mem::take(self) {
            Batch::Empty => Batch::One(record),
            Batch::One(first) => {
                let mut many = BytesMut::with_capacity(first.len() + record.len());
                many.extend_from_slice(&first);
                many.extend_from_slice(&record);
                Batch::Many(many)
            }
            Batch::Many(mut many) => {
                many.extend_from_slice(&record);
                Batch::Many(many)
            }
        };
    }

    fn len(&self) -> usize {
        match self {
            Batch::Empty => 0,
            Batch::One(record) => record.len(),
            Batch::Many(many) => many.len(),
        }
    }

    /// The frame's bytes; `None` when there is nothing to send.
    fn into_bytes(self) -> Option<Bytes> {
        let bytes = match self {
            Batch::Empty => return None,
            Batch::One(record) => record,
            Batch::Many(many) => many.freeze(),
        };
        (!bytes.is_empty()).then_some(bytes)
    }
}

/// Sends queued messages, coalescing them, and Pings when idle. A failed
/// send is reported on `failed` (the reader ends the connection with it).
pub(crate) async fn run_writer(
    mut sink: FrameSink,
    mut queue: mpsc::UnboundedReceiver<Outbound>,
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
        let mut batch = Batch::default();
        let mut acks = Vec::new();
        match first {
            None => close = Some(None),
            Some(Outbound::Close { message }) => close = Some(message),
            Some(Outbound::Data { bytes, sent }) => {
                batch.push(bytes);
                acks.extend(sent);
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(Outbound::Data { bytes, sent }) => {
                            batch.push(bytes);
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
        if let Some(message) = close.as_mut().and_then(Option::take) {
            batch.push(message);
        }
        if let Some(batch) = batch.into_bytes() {
            let result = sink.send(Frame::Data(batch)).await.map_err(|e| {
                HubError::with_kind(
                    HubErrorKind::ConnectionClosed,
                    format!("Failed to send to the server: {}", e.message()),
                )
            });
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
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                // The frame ends HTTP transports (Long Polling's DELETE);
                // `close` flushes and ends a WebSocket.
                let _ = sink.send(Frame::Close(None)).await;
                let _ = sink.close().await;
            })
            .await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_sends_one_record_as_it_came_and_several_joined() {
        assert!(
            Batch::default().into_bytes().is_none(),
            "nothing queued, nothing sent"
        );
        let call = Bytes::from_static(b"{\"type\":1}\x1e");
        let mut one = Batch::default();
        one.push(call.clone());
        let sent = one.into_bytes().expect("one record");
        assert_eq!(
            sent.as_ptr(),
            call.as_ptr(),
            "a single record is sent without a copy"
        );
        let mut many = Batch::default();
        for record in [&b"a\x1e"[..], b"", b"b\x1e"] {
            many.push(Bytes::copy_from_slice(record));
        }
        assert_eq!(many.len(), 4);
        assert_eq!(many.into_bytes().expect("two records"), &b"a\x1eb\x1e"[..]);
        let mut empty = Batch::default();
        empty.push(Bytes::new());
        assert!(empty.into_bytes().is_none(), "an empty record is not sent");
    }
}
