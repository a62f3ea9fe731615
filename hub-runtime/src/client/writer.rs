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
            let result = sink.send(Frame::Data(batch.freeze())).await.map_err(|e| {
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
