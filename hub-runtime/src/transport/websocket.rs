//! The WebSocket transport, over axum's [`WebSocket`].
//!
//! - Input: Text and Binary frames alike are hub protocol bytes (browsers
//!   send the handshake as text even for MessagePack); WebSocket pings and
//!   pongs are answered by the WebSocket layer; a Close frame ends input.
//! - Output: Text frames for the JSON protocol (a browser would hand a
//!   Binary frame to the JS client as a `Blob`, which its JSON protocol
//!   rejects), Binary frames for MessagePack.
//! - Memory: each connection gets a small read buffer and a message size
//!   limit a little above the hub's own, see [`configure`].

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};

use super::{CloseCode, FrameSink, FrameSource, TransportError};
use crate::protocol::TransferFormat;

/// The read buffer of each WebSocket (tungstenite's default of 128 KiB
/// would cost that much per idle connection).
pub(crate) const READ_BUFFER_SIZE: usize = 4 * 1024;

/// The smallest WebSocket message size limit, whatever the hub's own.
const MIN_MESSAGE_SIZE_LIMIT: usize = 64 * 1024;

/// The WebSocket message size limit for a hub whose records may be at most
/// `max_receive` bytes.
///
/// A client may pack several records into one WebSocket message (the JS
/// client concatenates everything queued while a send is in flight), so the
/// limit is four times the record limit (at least 64 KiB): a single
/// oversized record still reaches the hub decoder, which answers with a
/// proper Close message; only absurdly large messages are cut off by the
/// WebSocket layer itself.
pub(crate) fn message_size_limit(max_receive: Option<usize>) -> Option<usize> {
    max_receive.map(|max| max.saturating_mul(4).max(MIN_MESSAGE_SIZE_LIMIT))
}

/// Applies the per-connection buffer sizes and limits to an upgrade.
pub(crate) fn configure(upgrade: WebSocketUpgrade, max_receive: Option<usize>) -> WebSocketUpgrade {
    let upgrade = upgrade
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(READ_BUFFER_SIZE);
    match message_size_limit(max_receive) {
        Some(limit) => upgrade.max_message_size(limit).max_frame_size(limit),
        None => upgrade,
    }
}

/// Splits an upgraded socket into the two transport halves.
pub(crate) fn split(socket: WebSocket) -> (WebSocketSource, WebSocketSink) {
    let (sink, stream) = socket.split();
    (
        WebSocketSource {
            stream,
            close_frame_seen: false,
        },
        WebSocketSink(sink),
    )
}

/// The receiving half of a WebSocket.
pub(crate) struct WebSocketSource {
    stream: SplitStream<WebSocket>,
    close_frame_seen: bool,
}

impl FrameSource for WebSocketSource {
    async fn next_frame(&mut self) -> Option<Result<Bytes, TransportError>> {
        loop {
            return match self.stream.next().await? {
                Ok(Message::Text(text)) => Some(Ok(Bytes::from(text))),
                Ok(Message::Binary(data)) => Some(Ok(data)),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => {
                    self.close_frame_seen = true;
                    None
                }
                Err(error) => Some(Err(TransportError(error.to_string()))),
            };
        }
    }

    fn closed_gracefully(&self) -> bool {
        self.close_frame_seen
    }

    async fn linger(&mut self) {
        // Until the client's Close frame (the end of the stream) or an error.
        while let Some(Ok(_)) = self.stream.next().await {}
    }
}

/// The sending half of a WebSocket.
pub(crate) struct WebSocketSink(SplitSink<WebSocket, Message>);

impl FrameSink for WebSocketSink {
    fn supported_formats(&self) -> &'static [TransferFormat] {
        &[TransferFormat::Text, TransferFormat::Binary]
    }

    async fn feed(&mut self, frame: Bytes, format: TransferFormat) -> Result<(), TransportError> {
        let message = match format {
            TransferFormat::Text => Message::Text(
                Utf8Bytes::try_from(frame)
                    .map_err(|e| TransportError(format!("text frame is not UTF-8: {e}")))?,
            ),
            TransferFormat::Binary => Message::Binary(frame),
        };
        self.0
            .feed(message)
            .await
            .map_err(|e| TransportError(e.to_string()))
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.0
            .flush()
            .await
            .map_err(|e| TransportError(e.to_string()))
    }

    async fn close(&mut self, code: CloseCode) -> Result<(), TransportError> {
        let frame = CloseFrame {
            code: code.websocket(),
            reason: Utf8Bytes::from_static(""),
        };
        self.0
            .send(Message::Close(Some(frame)))
            .await
            .map_err(|e| TransportError(e.to_string()))
    }
}
