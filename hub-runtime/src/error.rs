//! [`HubError`]: what hub methods, proxies and connections fail with.

use std::borrow::Cow;
use std::fmt;

/// An error from a hub call, a typed proxy or a connection.
///
/// A `HubError` returned by a hub method is the Rust counterpart of ASP.NET
/// Core's `HubException`: its message always reaches the calling client,
/// whatever the detailed-errors setting. Errors of the other
/// [kinds](HubErrorKind) come from the runtime.
///
/// ```
/// use hub_runtime::{HubError, HubErrorKind};
///
/// let error = HubError::new("the room is full");
/// assert_eq!(error.kind(), HubErrorKind::Hub);
/// assert_eq!(error.to_string(), "the room is full");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError {
    kind: HubErrorKind,
    message: Cow<'static, str>,
}

/// What kind of failure a [`HubError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HubErrorKind {
    /// Raised by hub or client code on purpose; the message is meant for the
    /// other side.
    Hub,
    /// The addressed connection does not exist (any more).
    ConnectionNotFound,
    /// The connection closed before the call completed.
    ConnectionClosed,
    /// No answer within the allowed time.
    Timeout,
    /// The other side answered the call with an error (a Completion with
    /// `error`); the message is the other side's text.
    Remote,
    /// A value could not be serialized or deserialized.
    Serialization,
    /// The transport failed (I/O, HTTP, WebSocket).
    Transport,
    /// The peer broke the protocol.
    Protocol,
}

impl HubError {
    /// A hub error whose message is sent to the calling client.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        HubError::with_kind(HubErrorKind::Hub, message)
    }

    /// An error of the given kind.
    pub fn with_kind(kind: HubErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        HubError {
            kind,
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> HubErrorKind {
        self.kind
    }

    /// The message, without decoration.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HubError {}

impl From<crate::protocol::PayloadError> for HubError {
    fn from(error: crate::protocol::PayloadError) -> Self {
        HubError::with_kind(HubErrorKind::Serialization, error.to_string())
    }
}
