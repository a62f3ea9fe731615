//! Server-side transports: how bytes reach one client.
//!
//! A transport is split in two halves that the connection layer
//! ([`crate::server::connection`]) drives without knowing which transport it is:
//!
//! - a [`FrameSource`] yields the frames the client sent, as bytes (the
//!   hub protocol parses them as a byte stream: a frame may hold several
//!   records, or part of one);
//! - a [`FrameSink`] writes frames, each one or more *whole* records, in the
//!   transfer format of the connection's protocol.
//!
//! Three transports implement them: [`websocket`] (full duplex),
//! [`sse`] (Server-Sent Events down, HTTP POSTs up) and [`long_polling`]
//! (polls down, HTTP POSTs up); [`in_memory`] carries a test client's
//! frames over channels (no socket). The two HTTP transports receive through a
//! [`PostInput`]: the server's POST handler pushes each request body into
//! it.

#[cfg(feature = "client")]
pub(crate) mod in_memory;
pub(crate) mod long_polling;
pub(crate) mod sse;
pub(crate) mod websocket;

use std::fmt;
use std::future::Future;

use bytes::Bytes;

use crate::protocol::TransferFormat;

/// A transport failure: the connection cannot continue.
#[derive(Debug, Clone)]
pub(crate) struct TransportError(pub(crate) String);

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The receiving half of a transport.
pub(crate) trait FrameSource: Send + 'static {
    /// The next frame's bytes; `None` once the client closed the transport.
    ///
    /// Cancel-safe: dropping the future loses no frame.
    fn next_frame(&mut self) -> impl Future<Output = Option<Result<Bytes, TransportError>>> + Send;

    /// Whether the transport proves the client alive by itself, so that
    /// the server runs no client timeout (Long Polling: the client sends no
    /// Pings, its polls are the keep-alive).
    fn has_inherent_keep_alive(&self) -> bool {
        false
    }

    /// After the source ended: whether the client ended it on purpose (a
    /// WebSocket Close frame) rather than the connection being lost. Only a
    /// lost connection may be resumed by stateful reconnect.
    fn closed_gracefully(&self) -> bool {
        true
    }

    /// After the server closed the transport: reads and discards what the
    /// client still sends until it closes its side (a WebSocket's Close
    /// frame). Dropping a socket with unread bytes makes the kernel send a
    /// TCP reset, which can destroy the Close message and close frame just
    /// sent before the client reads them. The caller bounds the wait.
    /// Transports whose input is not a socket of their own do nothing.
    fn linger(&mut self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// Why the server closes a transport, for transports that can say it:
/// WebSocket close codes (RFC 6455 §7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCode {
    /// 1000: a normal end (also shutdown, client close, timeouts).
    Normal,
    /// 1002: the client broke the protocol (handshake or hub messages).
    ProtocolError,
    /// 1008: the client broke a policy (did not read its messages).
    PolicyViolation,
    /// 1009: the client sent a message larger than the limit.
    MessageTooBig,
}

impl CloseCode {
    /// The WebSocket close code.
    pub(crate) fn websocket(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::ProtocolError => 1002,
            CloseCode::PolicyViolation => 1008,
            CloseCode::MessageTooBig => 1009,
        }
    }
}

/// How many POST bodies may wait for the session to read them before a
/// new POST waits: backpressure reaches the client through its pending
/// POST.
const POST_QUEUE: usize = 4;

/// The sending end of an HTTP transport's input: the POST handler pushes
/// each request body here.
pub(crate) type PostSender = tokio::sync::mpsc::Sender<Bytes>;

/// The receiving end of an HTTP transport's input.
pub(crate) type PostInput = tokio::sync::mpsc::Receiver<Bytes>;

/// A new input channel for an HTTP transport.
pub(crate) fn post_channel() -> (PostSender, PostInput) {
    tokio::sync::mpsc::channel(POST_QUEUE)
}

/// The sending half of a transport.
pub(crate) trait FrameSink: Send + 'static {
    /// The transfer formats this transport carries.
    fn supported_formats(&self) -> &'static [TransferFormat];

    /// Queues one frame (whole records only) in `format`, writing it out
    /// when the transport's buffer fills up; [`FrameSink::flush`] writes
    /// everything.
    fn feed(
        &mut self,
        frame: Bytes,
        format: TransferFormat,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Writes out every queued frame.
    fn flush(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Ends the transport (a WebSocket Close frame with `code`).
    fn close(&mut self, code: CloseCode)
    -> impl Future<Output = Result<(), TransportError>> + Send;
}
