//! Errors of the protocol layer.

use thiserror::Error;

/// Why bytes from a peer could not be read as hub protocol messages.
///
/// Every variant is a protocol error: the connection that sent the bytes is
/// closed (with a Close message carrying the error when possible). None of
/// them is ever a panic, and none is preceded by an allocation sized by a
/// length field the peer wrote.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A message is larger than the configured maximum.
    #[error(
        "The maximum message size of {limit}B was exceeded. The message size can be configured in AddHubOptions."
    )]
    MessageTooLarge {
        /// The configured maximum, in bytes.
        limit: usize,
    },
    /// A record is not valid UTF-8 (JSON protocol, handshake).
    #[error("Invalid UTF-8 in message.")]
    InvalidUtf8,
    /// A record is not valid JSON.
    #[error("Error reading JSON: {0}")]
    InvalidJson(String),
    /// The body of a MessagePack message is not what the spec's layout says.
    #[error("Error reading MessagePack: {0}")]
    InvalidMessagePack(String),
    /// A MessagePack length prefix is malformed (more than 5 bytes, or over 2 GB).
    #[error("Messages bigger than 2GB are not supported.")]
    InvalidLengthPrefix,
    /// A required field is missing.
    #[error("Missing required property '{0}'.")]
    MissingField(&'static str),
    /// A field has the wrong type.
    #[error("Expected '{field}' to be of type {expected}.")]
    WrongFieldType {
        /// The wire name of the field.
        field: &'static str,
        /// What the spec wants there.
        expected: &'static str,
    },
    /// A message breaks one of the spec's rules about its fields.
    #[error("{0}")]
    InvalidMessage(&'static str),
}

/// Why a message could not be written.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A payload value failed to serialize (a `Serialize` impl returned an
    /// error, or a map with non-string keys was written as JSON).
    #[error("failed to serialize a value: {0}")]
    Value(String),
    /// The message cannot be represented on this protocol (for example an
    /// empty error string in a Completion).
    #[error("invalid message: {0}")]
    InvalidMessage(&'static str),
}

/// Why a [`super::Payload`] could not be deserialized into the requested type.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{message}")]
pub struct PayloadError {
    message: String,
}

impl PayloadError {
    pub(crate) fn new(message: String) -> Self {
        PayloadError { message }
    }
}
