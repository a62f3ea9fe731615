//! The one frame type every client transport speaks.
//!
//! The connection sees a transport as a sink and a stream of [`Frame`]s:
//! hub-protocol bytes one way and the other, and the transport's end. How
//! a transport carries them — WebSocket text or binary messages, POSTs and
//! an event stream, POSTs and polls — stays inside its module.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Sink, Stream};

use crate::{HubError, HubErrorKind};

/// What a client transport sends or receives.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    /// Hub-protocol bytes: one or more whole records (JSON text or
    /// MessagePack), or part of one.
    Data(Bytes),
    /// Sent: end the transport. Received: the server ended it, normally
    /// (`None`) or with a WebSocket close code and reason.
    Close(Option<CloseReason>),
}

/// Why the server closed a WebSocket.
#[derive(Debug, Clone)]
pub(crate) struct CloseReason {
    /// The WebSocket close code (1000 is a normal close).
    pub(crate) code: u16,
    /// The reason text, possibly empty.
    pub(crate) reason: String,
}

impl CloseReason {
    /// A normal close (code 1000).
    pub(crate) fn is_normal(&self) -> bool {
        self.code == 1000
    }

    /// `WebSocket closed with status code: 1011 (reason).`, the official
    /// clients' wording.
    pub(crate) fn describe(&self) -> String {
        format!(
            "WebSocket closed with status code: {} ({}).",
            self.code,
            if self.reason.is_empty() {
                "no reason given"
            } else {
                self.reason.as_str()
            }
        )
    }
}

/// The sending half of any transport.
pub(crate) type FrameSink = Pin<Box<dyn Sink<Frame, Error = HubError> + Send>>;

/// The receiving half of any transport.
pub(crate) type FrameSource = Pin<Box<dyn Stream<Item = Result<Frame, HubError>> + Send>>;

/// An error of kind [`HubErrorKind::Transport`].
pub(crate) fn transport_error(message: impl Into<String>) -> HubError {
    HubError::with_kind(HubErrorKind::Transport, message.into())
}

/// Opens a new WebSocket to the same connection (stateful reconnect's
/// resume).
pub(crate) type Reopen = Box<
    dyn Fn() -> crate::BoxFuture<'static, Result<(FrameSink, FrameSource), HubError>> + Send + Sync,
>;
