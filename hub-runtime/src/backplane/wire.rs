//! What nodes say to each other over the backplane: a small binary
//! envelope around the already-encoded hub message.
//!
//! Every field is length-prefixed (big-endian `u32`), so that decoding a
//! received message takes slices of its buffer and never copies the hub
//! message bytes. Anything malformed decodes to `None` and is dropped by
//! the receiver with a log line: one bad publisher cannot harm a node.
//!
//! The origin numbers every envelope it publishes (`sequence`), so that a
//! receiver can drop a second copy of one (`super::duplicates`).
//!
//! ```text
//! envelope  = version:u8 kind:u8 origin:str sequence:u64 body
//! str       = len:u32 utf8[len]
//! bytes     = len:u32 byte[len]
//! target    = kind:u8 (str | count:u32 str* | str count:u32 str*)
//! frames    = count:u8 (protocol:u8 bytes)*
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::EncodedMessage;
use crate::protocol::{HubProtocol, Payload};
use crate::targets::{ConnectionId, Target};
use crate::{HubError, HubErrorKind};

/// 2: with the sequence number (a node of version 1 drops what a node of
/// version 2 publishes, and the other way round, as malformed).
const VERSION: u8 = 2;

/// One message between nodes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Envelope {
    /// A hub message for the local recipients of `target`.
    Send {
        origin: String,
        target: Target,
        message: EncodedMessage,
    },
    /// A client result asked of a connection; answer on the origin's channel.
    Invoke {
        origin: String,
        request: u64,
        connection: ConnectionId,
        invocation: EncodedMessage,
    },
    /// Add (`add: true`) or remove a connection to/from a group; ack on the
    /// origin's channel.
    Group {
        origin: String,
        request: u64,
        connection: ConnectionId,
        group: String,
        add: bool,
    },
    /// A group action is done.
    Ack { origin: String, request: u64 },
    /// The answer to an `Invoke`.
    Reply {
        origin: String,
        request: u64,
        result: Result<Payload, HubError>,
    },
    /// Abort the local connections of `target` (a connection or a user).
    Abort { origin: String, target: Target },
}

impl Envelope {
    /// The bytes to publish, as the origin's envelope number `sequence`.
    pub(crate) fn encode(&self, sequence: u64) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        match self {
            Envelope::Send {
                origin,
                target,
                message,
            } => return encode_send(origin, sequence, target, message),
            Envelope::Invoke {
                origin,
                request,
                connection,
                invocation,
            } => {
                put_header(&mut out, 2, origin, sequence);
                out.put_u64(*request);
                put_str(&mut out, connection.as_str());
                put_frames(&mut out, invocation);
            }
            Envelope::Group {
                origin,
                request,
                connection,
                group,
                add,
            } => {
                put_header(&mut out, 3, origin, sequence);
                out.put_u64(*request);
                put_str(&mut out, connection.as_str());
                put_str(&mut out, group);
                out.put_u8(u8::from(*add));
            }
            Envelope::Ack { origin, request } => {
                put_header(&mut out, 4, origin, sequence);
                out.put_u64(*request);
            }
            Envelope::Reply {
                origin,
                request,
                result,
            } => {
                put_header(&mut out, 5, origin, sequence);
                out.put_u64(*request);
                put_result(&mut out, result);
            }
            Envelope::Abort { origin, target } => {
                put_header(&mut out, 6, origin, sequence);
                put_target(&mut out, target);
            }
        }
        out.freeze()
    }

    /// Reads an envelope and its sequence number; `None` when the bytes
    /// are not one.
    pub(crate) fn decode(bytes: Bytes) -> Option<(u64, Envelope)> {
        let mut input = Reader(bytes);
        if input.u8()? != VERSION {
            return None;
        }
        let kind = input.u8()?;
        let origin = input.string()?;
        let sequence = input.u64()?;
        let envelope = match kind {
            1 => Envelope::Send {
                origin,
                target: input.target()?,
                message: input.frames()?,
            },
            2 => Envelope::Invoke {
                origin,
                request: input.u64()?,
                connection: ConnectionId::from(input.string()?),
                invocation: input.frames()?,
            },
            3 => Envelope::Group {
                origin,
                request: input.u64()?,
                connection: ConnectionId::from(input.string()?),
                group: input.string()?,
                add: input.u8()? != 0,
            },
            4 => Envelope::Ack {
                origin,
                request: input.u64()?,
            },
            5 => Envelope::Reply {
                origin,
                request: input.u64()?,
                result: input.result()?,
            },
            6 => Envelope::Abort {
                origin,
                target: input.target()?,
            },
            _ => return None,
        };
        input.0.is_empty().then_some((sequence, envelope))
    }

    /// The node that published the envelope.
    pub(crate) fn origin(&self) -> &str {
        match self {
            Envelope::Send { origin, .. }
            | Envelope::Invoke { origin, .. }
            | Envelope::Group { origin, .. }
            | Envelope::Ack { origin, .. }
            | Envelope::Reply { origin, .. }
            | Envelope::Abort { origin, .. } => origin,
        }
    }
}

/// The bytes of an [`Envelope::Send`], without building one.
pub(crate) fn encode_send(
    origin: &str,
    sequence: u64,
    target: &Target,
    message: &EncodedMessage,
) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + message.len());
    put_header(&mut out, 1, origin, sequence);
    put_target(&mut out, target);
    put_frames(&mut out, message);
    out.freeze()
}

/// What every envelope starts with: `version kind origin sequence`.
fn put_header(out: &mut BytesMut, kind: u8, origin: &str, sequence: u64) {
    out.put_u8(VERSION);
    out.put_u8(kind);
    put_str(out, origin);
    out.put_u64(sequence);
}

fn put_len(out: &mut BytesMut, len: usize) {
    // Hub messages are far below 4 GiB (the receive limits see to that);
    // saturate rather than wrap so a bigger one fails to decode cleanly.
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

fn put_str(out: &mut BytesMut, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.put_slice(bytes);
}

fn put_list<'a>(out: &mut BytesMut, items: impl ExactSizeIterator<Item = &'a str>) {
    put_len(out, items.len());
    for item in items {
        put_str(out, item);
    }
}

fn put_target(out: &mut BytesMut, target: &Target) {
    match target {
        Target::All => out.put_u8(0),
        Target::AllExcept(excluded) => {
            out.put_u8(1);
            put_list(out, excluded.iter().map(ConnectionId::as_str));
        }
        Target::Connection(id) => {
            out.put_u8(2);
            put_str(out, id.as_str());
        }
        Target::Connections(ids) => {
            out.put_u8(3);
            put_list(out, ids.iter().map(ConnectionId::as_str));
        }
        Target::Group(group) => {
            out.put_u8(4);
            put_str(out, group);
        }
        Target::Groups(groups) => {
            out.put_u8(5);
            put_list(out, groups.iter().map(String::as_str));
        }
        Target::GroupExcept(group, excluded) => {
            out.put_u8(6);
            put_str(out, group);
            put_list(out, excluded.iter().map(ConnectionId::as_str));
        }
        Target::User(user) => {
            out.put_u8(7);
            put_str(out, user);
        }
        Target::Users(users) => {
            out.put_u8(8);
            put_list(out, users.iter().map(String::as_str));
        }
        // A target kind added later than this node: nobody receives it.
        #[allow(unreachable_patterns)]
        _ => {
            out.put_u8(3);
            put_len(out, 0);
        }
    }
}

fn protocol_tag(protocol: HubProtocol) -> u8 {
    match protocol {
        HubProtocol::Json => 0,
        HubProtocol::MessagePack => 1,
    }
}

fn put_frames(out: &mut BytesMut, message: &EncodedMessage) {
    let frames: Vec<_> = message.iter().collect();
    out.put_u8(u8::try_from(frames.len()).unwrap_or(0));
    for (protocol, bytes) in frames {
        out.put_u8(protocol_tag(protocol));
        put_bytes(out, bytes);
    }
}

fn put_result(out: &mut BytesMut, result: &Result<Payload, HubError>) {
    match result {
        Ok(payload) => {
            // Kept in the encoding it arrived in, so that the asking node
            // reads exactly what the client sent.
            if let Some(bytes) = payload.as_msgpack_bytes() {
                out.put_u8(1);
                put_bytes(out, bytes);
            } else {
                let mut json = BytesMut::new();
                match (payload.as_json_bytes(), payload.write_json(&mut json)) {
                    (Some(bytes), _) => {
                        out.put_u8(0);
                        put_bytes(out, bytes);
                    }
                    (None, Ok(())) => {
                        out.put_u8(0);
                        put_bytes(out, &json);
                    }
                    (None, Err(error)) => put_error(
                        out,
                        &HubError::with_kind(HubErrorKind::Serialization, error.to_string()),
                    ),
                }
            }
        }
        Err(error) => put_error(out, error),
    }
}

fn put_error(out: &mut BytesMut, error: &HubError) {
    out.put_u8(2);
    out.put_u8(error_kind_tag(error.kind()));
    put_str(out, error.message());
}

const ERROR_KINDS: [HubErrorKind; 8] = [
    HubErrorKind::Hub,
    HubErrorKind::ConnectionNotFound,
    HubErrorKind::ConnectionClosed,
    HubErrorKind::Timeout,
    HubErrorKind::Remote,
    HubErrorKind::Serialization,
    HubErrorKind::Transport,
    HubErrorKind::Protocol,
];

fn error_kind_tag(kind: HubErrorKind) -> u8 {
    ERROR_KINDS
        .iter()
        .position(|k| *k == kind)
        .and_then(|index| u8::try_from(index).ok())
        .unwrap_or(0)
}

/// Reads fields off the front of a received message.
struct Reader(Bytes);

impl Reader {
    fn u8(&mut self) -> Option<u8> {
        (self.0.remaining() >= 1).then(|| self.0.get_u8())
    }

    fn u32(&mut self) -> Option<usize> {
        (self.0.remaining() >= 4).then(|| self.0.get_u32() as usize)
    }

    fn u64(&mut self) -> Option<u64> {
        (self.0.remaining() >= 8).then(|| self.0.get_u64())
    }

    fn bytes(&mut self) -> Option<Bytes> {
        let len = self.u32()?;
        (self.0.remaining() >= len).then(|| self.0.split_to(len))
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn list<T: From<String>>(&mut self) -> Option<Vec<T>> {
        let count = self.u32()?;
        // Each item takes at least its 4-byte length: a count larger than
        // that is a lie, refused before allocating for it.
        if count > self.0.remaining() / 4 {
            return None;
        }
        (0..count).map(|_| self.string().map(T::from)).collect()
    }

    fn target(&mut self) -> Option<Target> {
        Some(match self.u8()? {
            0 => Target::All,
            1 => Target::AllExcept(self.list()?),
            2 => Target::Connection(ConnectionId::from(self.string()?)),
            3 => Target::Connections(self.list()?),
            4 => Target::Group(self.string()?),
            5 => Target::Groups(self.list()?),
            6 => Target::GroupExcept(self.string()?, self.list()?),
            7 => Target::User(self.string()?),
            8 => Target::Users(self.list()?),
            _ => return None,
        })
    }

    fn frames(&mut self) -> Option<EncodedMessage> {
        let count = self.u8()?;
        let mut message = EncodedMessage::default();
        for _ in 0..count {
            let protocol = match self.u8()? {
                0 => HubProtocol::Json,
                1 => HubProtocol::MessagePack,
                _ => return None,
            };
            message.set(protocol, self.bytes()?);
        }
        Some(message)
    }

    fn result(&mut self) -> Option<Result<Payload, HubError>> {
        Some(match self.u8()? {
            0 => Ok(Payload::from_json_bytes(self.json()?)),
            1 => Ok(Payload::from_msgpack_bytes(self.bytes()?)),
            2 => {
                let kind = *ERROR_KINDS.get(usize::from(self.u8()?))?;
                Err(HubError::with_kind(kind, self.string()?))
            }
            _ => return None,
        })
    }

    /// JSON text, checked: a payload's bytes are copied verbatim into the
    /// record sent to a client, so they must be one valid JSON value.
    fn json(&mut self) -> Option<Bytes> {
        let bytes = self.bytes()?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).ok()?;
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::protocol::{HubMessage, Invocation};

    fn message() -> EncodedMessage {
        let invocation = HubMessage::Invocation(Invocation {
            target: "Receive".into(),
            arguments: vec![Payload::from_value("héllo")],
            ..Invocation::default()
        });
        EncodedMessage::encode(&invocation, &HubProtocol::ALL).unwrap()
    }

    fn round_trip(envelope: Envelope) {
        let sequence = 0x0102_0304_0506_0708;
        let bytes = envelope.encode(sequence);
        assert_eq!(Envelope::decode(bytes.clone()), Some((sequence, envelope)));
        // Every strict prefix is refused, never a panic.
        for len in 0..bytes.len() {
            assert_eq!(Envelope::decode(bytes.slice(..len)), None, "prefix {len}");
        }
        // Trailing garbage is refused too.
        let mut longer = BytesMut::from(&bytes[..]);
        longer.put_u8(0);
        assert_eq!(Envelope::decode(longer.freeze()), None);
    }

    #[test]
    fn every_target_round_trips() {
        let ids = || vec![ConnectionId::from("a"), ConnectionId::from("b")];
        let names = || vec!["g1".to_owned(), "g2".to_owned()];
        for target in [
            Target::All,
            Target::AllExcept(ids()),
            Target::Connection("c".into()),
            Target::Connections(ids()),
            Target::Group("g".into()),
            Target::Groups(names()),
            Target::GroupExcept("g".into(), ids()),
            Target::User("u".into()),
            Target::Users(names()),
        ] {
            round_trip(Envelope::Send {
                origin: "node".into(),
                target,
                message: message(),
            });
        }
    }

    #[test]
    fn requests_and_answers_round_trip() {
        round_trip(Envelope::Invoke {
            origin: "n".into(),
            request: 7,
            connection: "c".into(),
            invocation: message(),
        });
        for add in [true, false] {
            round_trip(Envelope::Group {
                origin: "n".into(),
                request: u64::MAX,
                connection: "c".into(),
                group: "grüppe".into(),
                add,
            });
        }
        round_trip(Envelope::Ack {
            origin: "n".into(),
            request: 1,
        });
        round_trip(Envelope::Reply {
            origin: "n".into(),
            request: 2,
            result: Ok(Payload::from_json_bytes(Bytes::from_static(b"\"yes\""))),
        });
        round_trip(Envelope::Reply {
            origin: "n".into(),
            request: 2,
            result: Ok(Payload::from_msgpack_bytes(Bytes::from_static(&[
                0xa1, b'x',
            ]))),
        });
        round_trip(Envelope::Reply {
            origin: "n".into(),
            request: 3,
            result: Err(HubError::with_kind(HubErrorKind::Timeout, "late")),
        });
        for target in [
            Target::Connection(ConnectionId::from("c1")),
            Target::User("ada".into()),
        ] {
            round_trip(Envelope::Abort {
                origin: "n".into(),
                target,
            });
        }
    }

    #[test]
    fn a_value_payload_travels_as_json() {
        let bytes = Envelope::Reply {
            origin: "n".into(),
            request: 2,
            result: Ok(Payload::from_value(vec![1, 2])),
        }
        .encode(1);
        let Some((
            1,
            Envelope::Reply {
                result: Ok(payload),
                ..
            },
        )) = Envelope::decode(bytes)
        else {
            panic!("not a reply");
        };
        assert_eq!(payload.as_json_bytes().unwrap().as_ref(), b"[1,2]");
    }

    #[test]
    fn garbage_is_refused() {
        for bytes in [
            &b""[..],
            &[9],
            &[VERSION, 99, 0, 0, 0, 0],
            // A list claiming 2^32-1 items.
            &[
                VERSION, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 255, 255, 255, 255,
            ],
            // Invalid JSON in a reply.
            &[
                VERSION, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
                1, b'{',
            ],
            // Version 1 (no sequence number).
            &[1, 4, 0, 0, 0, 1, b'n', 0, 0, 0, 0, 0, 0, 0, 1],
        ] {
            assert_eq!(Envelope::decode(Bytes::copy_from_slice(bytes)), None);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let _ = Envelope::decode(Bytes::from(bytes));
        }
    }
}
