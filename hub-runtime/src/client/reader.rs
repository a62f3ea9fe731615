//! The reader task: the one owner of a live transport's receiving half.
//!
//! It decodes with a [`MessageDecoder`], resolves calls in flight, hands
//! the server's invocations to the dispatcher, enforces the server
//! timeout, and returns why the connection ended.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::warn;

use super::events::ClosedReason;
use super::shared::Shared;
use super::transport::frame::{Frame, FrameSource, transport_error};
use crate::protocol::{HubMessage, Invocation, MessageDecoder};
use crate::{HubError, HubErrorKind};

/// Why a live connection ended.
#[derive(Debug)]
pub(crate) struct ConnectionEnd {
    /// `None` for a clean close.
    pub(crate) error: Option<HubError>,
    /// `false` after a server Close without `allowReconnect` or a `stop()`.
    pub(crate) allow_reconnect: bool,
    /// The server ended it: a Close message or a normal transport close.
    pub(crate) server_close: bool,
}

impl ConnectionEnd {
    fn lost(error: HubError) -> Self {
        ConnectionEnd {
            error: Some(error),
            allow_reconnect: true,
            server_close: false,
        }
    }

    /// Why the connection closed for good when nothing follows this end.
    pub(crate) fn closed_reason(&self) -> ClosedReason {
        if self.server_close {
            ClosedReason::ServerClosed
        } else {
            ClosedReason::Lost
        }
    }
}

/// What the reader starts from.
pub(crate) struct ReaderStart {
    pub(crate) source: FrameSource,
    /// What followed the handshake response.
    pub(crate) buffer: BytesMut,
    pub(crate) decoder: MessageDecoder,
    pub(crate) server_timeout: Duration,
    pub(crate) dispatch: mpsc::UnboundedSender<Invocation>,
    /// The writer's send failure.
    pub(crate) writer_failed: oneshot::Receiver<HubError>,
}

/// Reads and decodes; returns why the connection ended.
pub(crate) async fn run_reader(shared: Arc<Shared>, start: ReaderStart) -> ConnectionEnd {
    let ReaderStart {
        mut source,
        mut buffer,
        mut decoder,
        server_timeout,
        dispatch,
        mut writer_failed,
    } = start;
    let mut deadline = Instant::now() + server_timeout;
    let mut close_error: Option<HubError> = None;
    loop {
        if let Some(end) = drain(&shared, &mut decoder, &mut buffer, &dispatch).await {
            return end;
        }
        let frame = tokio::select! {
            error = &mut writer_failed => {
                return ConnectionEnd::lost(
                    error.unwrap_or_else(|_| transport_error("The connection's writer stopped.")),
                );
            }
            frame = tokio::time::timeout_at(deadline, source.next()) => frame,
        };
        match frame {
            Err(_) => {
                warn!("server timeout elapsed");
                return ConnectionEnd::lost(HubError::with_kind(
                    HubErrorKind::Timeout,
                    "Server timeout elapsed without receiving a message from the server.",
                ));
            }
            Ok(None) => {
                return ConnectionEnd::lost(close_error.unwrap_or_else(|| {
                    transport_error("WebSocket closed with status code: 1006 (no reason given).")
                }));
            }
            Ok(Some(Err(error))) => return ConnectionEnd::lost(close_error.unwrap_or(error)),
            Ok(Some(Ok(Frame::Data(bytes)))) => {
                deadline = Instant::now() + server_timeout;
                buffer.extend_from_slice(&bytes);
            }
            Ok(Some(Ok(Frame::Close(reason)))) => match reason {
                Some(reason) if !reason.is_normal() => {
                    close_error = Some(transport_error(reason.describe()));
                }
                _ => {
                    return ConnectionEnd {
                        error: None,
                        allow_reconnect: true,
                        server_close: true,
                    };
                }
            },
        }
    }
}

/// Handles every whole message in `buffer`; returns the end of the
/// connection when one of them ends it.
async fn drain(
    shared: &Shared,
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
                return Some(ConnectionEnd::lost(HubError::with_kind(
                    HubErrorKind::Protocol,
                    error.to_string(),
                )));
            }
        };
        match message {
            HubMessage::Invocation(invocation) => {
                let _ = dispatch.send(invocation);
            }
            HubMessage::Completion(completion) => {
                shared.complete(&completion.invocation_id, completion.result);
            }
            HubMessage::StreamItem(item) => {
                shared.stream_item(item.invocation_id, item.item).await;
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
                    server_close: true,
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
