//! The SignalR wire formats, as pure codecs: no I/O, no runtime.
//!
//! The module layout follows the spec (`HubProtocol.md` and
//! `TransportProtocols.md` in `dotnet/aspnetcore/src/SignalR/docs/specs/`):
//!
//! | module | spec |
//! |---|---|
//! | [`messages`] | the nine hub message types ("Message Types") |
//! | [`json`] | "JSON Encoding": `0x1E`-terminated records |
//! | [`messagepack`] | "MessagePack (MsgPack) Encoding": VarInt length-prefixed arrays |
//! | [`handshake`] | "Overview": the handshake request and response |
//! | [`negotiate`] | `TransportProtocols.md`: the `/negotiate` request and response |
//!
//! Decoding is incremental: bytes are appended to a [`BytesMut`] as they are
//! read from a transport, and a [`MessageDecoder`] takes whole messages off
//! its front, whatever the split of the input into reads. Encoding appends to
//! a caller-supplied [`BytesMut`], so a broadcast is encoded once per protocol
//! and its frozen bytes shared by every recipient.
//!
//! ```
//! use bytes::BytesMut;
//! use hub_runtime::protocol::{HubMessage, HubProtocol, Invocation, Payload};
//!
//! let message = HubMessage::Invocation(Invocation {
//!     target: "ShowTime".into(),
//!     arguments: vec![Payload::from_value("12:00")],
//!     ..Invocation::default()
//! });
//! let mut wire = BytesMut::new();
//! HubProtocol::Json.encode(&message, &mut wire).unwrap();
//! assert_eq!(&wire[..], b"{\"type\":1,\"target\":\"ShowTime\",\"arguments\":[\"12:00\"]}\x1e");
//!
//! let mut decoder = HubProtocol::Json.decoder(None);
//! assert_eq!(decoder.decode(&mut wire).unwrap(), Some(message));
//! ```

pub mod handshake;
pub mod json;
mod json_scan;
pub mod messagepack;
pub mod messages;
pub mod negotiate;

mod error;
mod payload;

use bytes::BytesMut;

pub use error::{EncodeError, PayloadError, ProtocolError};
pub use messages::{
    Ack, CancelInvocation, Close, Completion, CompletionResult, Headers, HubMessage, Invocation,
    Sequence, StreamInvocation, StreamItem,
};
pub use payload::Payload;

/// The record separator (`0x1E`) that ends every JSON record and the
/// handshake messages.
pub const RECORD_SEPARATOR: u8 = 0x1E;

/// A transport's transfer format (`TransportProtocols.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// UTF-8 text: WebSocket text frames, Server-Sent Events.
    Text,
    /// Arbitrary bytes: WebSocket binary frames.
    Binary,
}

impl TransferFormat {
    /// The exact wire name, `Text` or `Binary` (case-sensitive for the JS client).
    pub fn name(self) -> &'static str {
        match self {
            TransferFormat::Text => "Text",
            TransferFormat::Binary => "Binary",
        }
    }
}

/// The room [`HubProtocol::encode_record`] starts with: a typical
/// Completion, Ping or call fits.
#[cfg(any(feature = "server", feature = "client"))]
const RECORD_CAPACITY: usize = 256;

/// A hub protocol, chosen by the client in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HubProtocol {
    /// `json`: text records ended by `0x1E`.
    Json,
    /// `messagepack`: binary, VarInt length-prefixed.
    MessagePack,
}

impl HubProtocol {
    /// Every protocol this crate speaks.
    pub const ALL: [HubProtocol; 2] = [HubProtocol::Json, HubProtocol::MessagePack];

    /// The protocol with this handshake name, matched case-insensitively as
    /// the .NET server does.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|protocol| protocol.name().eq_ignore_ascii_case(name))
    }

    /// The handshake name: `json` or `messagepack`.
    pub fn name(self) -> &'static str {
        match self {
            HubProtocol::Json => "json",
            HubProtocol::MessagePack => "messagepack",
        }
    }

    /// The highest handshake `version` this crate accepts (2 enables
    /// stateful reconnect; 1 is what clients send otherwise).
    pub fn version(self) -> i32 {
        2
    }

    /// The transfer format the protocol needs from its transport.
    pub fn transfer_format(self) -> TransferFormat {
        match self {
            HubProtocol::Json => TransferFormat::Text,
            HubProtocol::MessagePack => TransferFormat::Binary,
        }
    }

    /// Appends `message`, framed, to `out`.
    pub fn encode(self, message: &HubMessage, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            HubProtocol::Json => json::encode(message, out),
            HubProtocol::MessagePack => messagepack::encode(message, out),
        }
    }

    /// `message`, framed, as a record of its own in an allocation of its
    /// size: what one connection is sent (a Completion, a Ping, a call).
    ///
    /// Encoded into room for a typical message up front (growing from empty
    /// reallocated several times per message), then shrunk, which the
    /// allocator does in place. Frozen as it is, the roomy buffer would cost
    /// a second allocation (the `bytes` crate's shared header for a buffer
    /// with spare capacity) and pin the spare room while the record waits
    /// in a queue.
    #[cfg(any(feature = "server", feature = "client"))]
    pub(crate) fn encode_record(self, message: &HubMessage) -> Result<bytes::Bytes, EncodeError> {
        let mut buffer = BytesMut::with_capacity(RECORD_CAPACITY);
        self.encode(message, &mut buffer)?;
        let mut record = Vec::from(buffer);
        record.shrink_to_fit();
        Ok(bytes::Bytes::from(record))
    }

    /// A decoder for a stream of messages in this protocol, refusing any
    /// message larger than `max_message_size` bytes (no limit with `None`).
    pub fn decoder(self, max_message_size: Option<usize>) -> MessageDecoder {
        match self {
            HubProtocol::Json => MessageDecoder::Json(json::JsonDecoder::new(max_message_size)),
            HubProtocol::MessagePack => {
                MessageDecoder::MessagePack(messagepack::MessagePackDecoder::new(max_message_size))
            }
        }
    }
}

/// An incremental decoder for one connection's incoming messages.
///
/// Append the bytes of each read to a buffer and call [`decode`] until it
/// returns `Ok(None)`: every call takes at most one whole message off the
/// front of the buffer, so records split across reads and several records in
/// one read both work. Messages of unknown `type` are skipped, as the spec
/// says. After an error the connection must be closed: the decoder's state
/// is then unspecified.
///
/// [`decode`]: MessageDecoder::decode
#[derive(Debug)]
pub enum MessageDecoder {
    /// See [`json::JsonDecoder`].
    Json(json::JsonDecoder),
    /// See [`messagepack::MessagePackDecoder`].
    MessagePack(messagepack::MessagePackDecoder),
}

impl MessageDecoder {
    /// Takes the next whole message off the front of `buffer`, or returns
    /// `Ok(None)` when the buffer holds no whole message yet.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<HubMessage>, ProtocolError> {
        match self {
            MessageDecoder::Json(decoder) => decoder.decode(buffer),
            MessageDecoder::MessagePack(decoder) => decoder.decode(buffer),
        }
    }

    /// The protocol this decoder reads.
    pub fn protocol(&self) -> HubProtocol {
        match self {
            MessageDecoder::Json(_) => HubProtocol::Json,
            MessageDecoder::MessagePack(_) => HubProtocol::MessagePack,
        }
    }
}

#[cfg(all(test, any(feature = "server", feature = "client")))]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_the_message_as_encode_frames_it() {
        let small = Payload::from_value("12:00");
        let large = Payload::from_value("x".repeat(4 * RECORD_CAPACITY));
        for protocol in [HubProtocol::Json, HubProtocol::MessagePack] {
            for value in [&small, &large] {
                let message = HubMessage::Completion(Completion {
                    headers: Headers::default(),
                    invocation_id: "1".into(),
                    result: CompletionResult::Value(value.clone()),
                });
                let mut framed = BytesMut::new();
                protocol.encode(&message, &mut framed).expect("encodes");
                let record = protocol.encode_record(&message).expect("encodes");
                assert_eq!(record, framed, "{protocol:?}: one record, framed");
            }
        }
    }
}
