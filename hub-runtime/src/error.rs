//! [`HubError`]: what hub methods, proxies and connections fail with.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

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
///
/// An error caused by another keeps it: [`Error::source`] returns the
/// cause (a serde error, an I/O error…), while the message, which may
/// travel to the other side, stays a plain text.
///
/// ```
/// use std::error::Error as _;
/// use hub_runtime::{HubError, HubErrorKind};
///
/// let parse = "x".parse::<i32>().unwrap_err();
/// let error = HubError::with_kind(HubErrorKind::Serialization, "bad number")
///     .with_source(parse.clone());
/// assert_eq!(error.to_string(), "bad number");
/// assert_eq!(error.source().unwrap().to_string(), parse.to_string());
/// ```
///
/// Two errors are equal when their kinds and messages are: the cause is
/// not compared.
#[derive(Clone)]
pub struct HubError {
    kind: HubErrorKind,
    message: Cow<'static, str>,
    /// Shared so that `HubError` stays `Clone` (an error travels to every
    /// caller waiting on the same call).
    source: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

impl fmt::Debug for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("HubError");
        debug
            .field("kind", &self.kind)
            .field("message", &self.message);
        if let Some(source) = &self.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl PartialEq for HubError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for HubError {}

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
            source: None,
        }
    }

    /// The same error, caused by `source` (what [`Error::source`] returns).
    #[must_use]
    pub fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
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

impl Error for HubError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

impl From<crate::protocol::PayloadError> for HubError {
    fn from(error: crate::protocol::PayloadError) -> Self {
        HubError::with_kind(HubErrorKind::Serialization, error.to_string()).with_source(error)
    }
}
