//! Server-side transports: how bytes reach one client.
//!
//! A transport is split in two halves that the connection layer
//! ([`crate::connection`]) drives without knowing which transport it is:
//!
//! - a [`FrameSource`] yields the frames the client sent, as bytes (the
//!   hub protocol parses them as a byte stream: a frame may hold several
//!   records, or part of one);
//! - a [`FrameSink`] writes frames, each one or more *whole* records, in the
//!   transfer format of the connection's protocol.
//!
//! Only WebSockets exist so far ([`websocket`]); Server-Sent Events and Long
//! Polling will implement the same two traits.

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

    /// Ends the transport normally (a WebSocket Close frame with 1000).
    fn close(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send;
}
