//! The hub messages of `HubProtocol.md`, one Rust type per message type.
//!
//! These types are protocol-neutral: the JSON and MessagePack codecs
//! ([`super::json`], [`super::messagepack`]) turn them into bytes and back.
//! Arguments, stream items and results are [`Payload`]s, which keep the
//! encoded bytes of a value as they arrived, so that dispatch deserializes
//! each argument exactly once, straight into the type the hub method wants.

use super::Payload;

/// Message headers (`headers`), a string-to-string map allowed on message
/// types 1–5. Kept in arrival order; an empty map costs no allocation.
pub type Headers = Vec<(String, String)>;

/// A message of the hub protocol, after the handshake.
///
/// The numeric `type` of each variant is given by [`HubMessage::type_id`].
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    /// Type 1: call a method on the other side.
    Invocation(Invocation),
    /// Type 2: one item of a stream (server-to-client result stream or
    /// client-to-server upload stream).
    StreamItem(StreamItem),
    /// Type 3: the end of an invocation or of a stream.
    Completion(Completion),
    /// Type 4: call a streaming method on the server.
    StreamInvocation(StreamInvocation),
    /// Type 5: stop a streaming invocation.
    CancelInvocation(CancelInvocation),
    /// Type 6: keep-alive; carries nothing.
    Ping,
    /// Type 7: the sender is closing the connection.
    Close(Close),
    /// Type 8: stateful reconnect acknowledgement.
    Ack(Ack),
    /// Type 9: stateful reconnect resume point.
    Sequence(Sequence),
}

/// The numeric `type` values of [`HubMessage`].
pub mod message_type {
    /// [`super::HubMessage::Invocation`]
    pub const INVOCATION: u8 = 1;
    /// [`super::HubMessage::StreamItem`]
    pub const STREAM_ITEM: u8 = 2;
    /// [`super::HubMessage::Completion`]
    pub const COMPLETION: u8 = 3;
    /// [`super::HubMessage::StreamInvocation`]
    pub const STREAM_INVOCATION: u8 = 4;
    /// [`super::HubMessage::CancelInvocation`]
    pub const CANCEL_INVOCATION: u8 = 5;
    /// [`super::HubMessage::Ping`]
    pub const PING: u8 = 6;
    /// [`super::HubMessage::Close`]
    pub const CLOSE: u8 = 7;
    /// [`super::HubMessage::Ack`]
    pub const ACK: u8 = 8;
    /// [`super::HubMessage::Sequence`]
    pub const SEQUENCE: u8 = 9;
}

impl HubMessage {
    /// The message's numeric `type` on the wire.
    pub fn type_id(&self) -> u8 {
        use message_type::*;
        match self {
            HubMessage::Invocation(_) => INVOCATION,
            HubMessage::StreamItem(_) => STREAM_ITEM,
            HubMessage::Completion(_) => COMPLETION,
            HubMessage::StreamInvocation(_) => STREAM_INVOCATION,
            HubMessage::CancelInvocation(_) => CANCEL_INVOCATION,
            HubMessage::Ping => PING,
            HubMessage::Close(_) => CLOSE,
            HubMessage::Ack(_) => ACK,
            HubMessage::Sequence(_) => SEQUENCE,
        }
    }

    /// Whether stateful reconnect numbers and buffers this message
    /// (types 1–5; Ping, Close, Ack and Sequence are never buffered).
    pub fn is_sequenced(&self) -> bool {
        self.type_id() <= message_type::CANCEL_INVOCATION
    }
}

/// Type 1. Without an `invocation_id` it is fire-and-forget: the callee
/// sends nothing back, not even an error.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Invocation {
    /// `headers`
    pub headers: Headers,
    /// `invocationId`; `None` for a fire-and-forget call. On the wire the key
    /// is left out entirely (the JS client rejects `null` and `""`).
    pub invocation_id: Option<String>,
    /// `target`: the method name, matched case-insensitively on receipt.
    pub target: String,
    /// `arguments`, without the stream arguments (those are in `stream_ids`).
    pub arguments: Vec<Payload>,
    /// `streamIds`: ids of the upload streams that follow, in parameter order.
    pub stream_ids: Vec<String>,
}

/// Type 4: like [`Invocation`], but the result is a stream of
/// [`StreamItem`]s ended by a [`Completion`]. Always has an id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamInvocation {
    /// `headers`
    pub headers: Headers,
    /// `invocationId`
    pub invocation_id: String,
    /// `target`
    pub target: String,
    /// `arguments`
    pub arguments: Vec<Payload>,
    /// `streamIds`
    pub stream_ids: Vec<String>,
}

/// Type 2: one item of the stream `invocation_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamItem {
    /// `headers`
    pub headers: Headers,
    /// `invocationId`: the stream invocation, or the upload stream id.
    pub invocation_id: String,
    /// `item`: always present on the wire, `null` allowed.
    pub item: Payload,
}

/// Type 3: ends an invocation, a result stream or an upload stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// `headers`
    pub headers: Headers,
    /// `invocationId`
    pub invocation_id: String,
    /// What the invocation produced.
    pub result: CompletionResult,
}

/// The outcome carried by a [`Completion`]: never both a result and an
/// error, as the spec requires.
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionResult {
    /// No `result` key (MessagePack result kind 2): the end of a stream or
    /// upload, or a void method answered by the JS client.
    Void,
    /// A `result` (MessagePack result kind 3), possibly `null`.
    Value(Payload),
    /// An `error` (MessagePack result kind 1), a non-empty string.
    Error(String),
}

/// Type 5: the caller no longer wants the invocation's results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CancelInvocation {
    /// `headers`
    pub headers: Headers,
    /// `invocationId`
    pub invocation_id: String,
}

/// Type 7: the sender is closing the connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Close {
    /// `error`: why, when the close is not a normal one.
    pub error: Option<String>,
    /// `allowReconnect`: whether a client with automatic reconnect should
    /// come back. Written only when `true`.
    pub allow_reconnect: bool,
}

/// Type 8: the highest sequenced message id the sender has processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ack {
    /// `sequenceId`
    pub sequence_id: u64,
}

/// Type 9: the id of the first sequenced message that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sequence {
    /// `sequenceId`
    pub sequence_id: u64,
}

macro_rules! into_hub_message {
    ($($variant:ident),*) => {$(
        impl From<$variant> for HubMessage {
            fn from(message: $variant) -> Self {
                HubMessage::$variant(message)
            }
        }
    )*};
}
into_hub_message!(
    Invocation,
    StreamItem,
    Completion,
    StreamInvocation,
    CancelInvocation,
    Close,
    Ack,
    Sequence
);
