//! The MessagePack hub protocol (`"messagepack"`, transfer format Binary).
//!
//! Each message is a VarInt length prefix followed by a MessagePack array
//! whose first element is the message type (`HubProtocol.md`, "MessagePack
//! (MsgPack) encoding"):
//!
//! | type | array |
//! |---|---|
//! | 1 Invocation | `[1, headers, invocationId \| nil, target, [arguments], [streamIds]]` |
//! | 2 StreamItem | `[2, headers, invocationId, item]` |
//! | 3 Completion | `[3, headers, invocationId, resultKind, result?]` |
//! | 4 StreamInvocation | `[4, headers, invocationId, target, [arguments], [streamIds]]` |
//! | 5 CancelInvocation | `[5, headers, invocationId]` |
//! | 6 Ping | `[6]` |
//! | 7 Close | `[7, error \| nil, allowReconnect?]` |
//! | 8 Ack, 9 Sequence | `[8 \| 9, sequenceId]` |
//!
//! Reading follows the .NET server: the optional tails (`streamIds`, the
//! `allowReconnect` flag) may be missing, elements past the layout are
//! ignored, and messages of unknown type are skipped. Writing produces
//! exactly what the .NET server writes.
//!
//! Arguments, stream items and results are not decoded here: each becomes a
//! [`Payload`] holding a zero-copy slice of the received message, delimited
//! by a non-recursive skipper, so huge claimed lengths cannot exhaust
//! memory. A value nested more than 128 arrays or maps deep is refused (as
//! `serde_json` refuses JSON nested that deep), so that deserializing a
//! payload later cannot exhaust the stack either.
//!
//! ```
//! use bytes::BytesMut;
//! use hub_runtime::protocol::HubMessage;
//! use hub_runtime::protocol::messagepack::{MessagePackDecoder, encode};
//!
//! let mut wire = BytesMut::new();
//! encode(&HubMessage::Ping, &mut wire).unwrap();
//! assert_eq!(&wire[..], [0x02, 0x91, 0x06]);
//!
//! let mut decoder = MessagePackDecoder::new(None);
//! assert_eq!(decoder.decode(&mut wire).unwrap(), Some(HubMessage::Ping));
//! assert!(wire.is_empty());
//! ```

mod reader;
mod varint;

use bytes::{BufMut, Bytes, BytesMut};

use super::messages::message_type;
use super::{
    Ack, CancelInvocation, Close, Completion, CompletionResult, EncodeError, Headers, HubMessage,
    Invocation, Payload, ProtocolError, Sequence, StreamInvocation, StreamItem,
};
use reader::{Int, ReadError, Reader};

/// `resultKind` of a Completion carrying an error string.
const RESULT_ERROR: Int = 1;
/// `resultKind` of a Completion carrying nothing.
const RESULT_VOID: Int = 2;
/// `resultKind` of a Completion carrying a value.
const RESULT_VALUE: Int = 3;

/// An incremental decoder for a stream of MessagePack hub messages.
///
/// See [`super::MessageDecoder`] for how it is driven. The decoder itself
/// holds no partial state between calls: everything not yet decoded stays
/// in the caller's buffer.
#[derive(Debug)]
pub struct MessagePackDecoder {
    max_message_size: Option<usize>,
}

impl MessagePackDecoder {
    /// A decoder refusing any message whose body is larger than
    /// `max_message_size` bytes (no limit with `None`, beyond the protocol's
    /// own 2 GB).
    pub fn new(max_message_size: Option<usize>) -> Self {
        MessagePackDecoder { max_message_size }
    }

    /// Takes the next whole message off the front of `buffer`, or returns
    /// `Ok(None)` when the buffer holds no whole message yet.
    ///
    /// A length prefix announcing more than the maximum message size is an
    /// error as soon as the prefix has arrived, without waiting for the body.
    /// The buffer is never grown to fit an announced length.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<HubMessage>, ProtocolError> {
        loop {
            let Some((prefix_len, body_len)) = varint::read(buffer)? else {
                return Ok(None);
            };
            if let Some(limit) = self.max_message_size {
                if body_len > limit {
                    return Err(ProtocolError::MessageTooLarge { limit });
                }
            }
            // Cannot overflow: the prefix is at most 5 bytes and the body
            // length at most 2^31 - 1.
            let frame_len = prefix_len + body_len;
            if buffer.len() < frame_len {
                return Ok(None);
            }
            let body = buffer.split_to(frame_len).freeze().slice(prefix_len..);
            if let Some(message) = parse_message(&body)? {
                return Ok(Some(message));
            }
            // An unknown message type: skip it, as the spec asks.
        }
    }
}

/// Reads the elements of a message's top-level array in order, turning
/// reader errors into protocol errors that name the field.
struct Fields<'a> {
    body: &'a Bytes,
    reader: Reader<'a>,
    /// Elements of the top-level array not read yet.
    left: usize,
}

fn field_error(error: ReadError, field: &'static str, expected: &'static str) -> ProtocolError {
    match error {
        ReadError::WrongType => ProtocolError::WrongFieldType { field, expected },
        ReadError::Truncated => {
            ProtocolError::InvalidMessagePack(format!("unexpected end of message in '{field}'"))
        }
        ReadError::InvalidUtf8 => {
            ProtocolError::InvalidMessagePack(format!("invalid UTF-8 in '{field}'"))
        }
        ReadError::ReservedMarker => ProtocolError::InvalidMessagePack(format!(
            "the reserved marker 0xc1 appears in '{field}'"
        )),
        ReadError::TooDeep => ProtocolError::InvalidMessagePack(format!(
            "'{field}' is nested more than {} levels deep",
            reader::MAX_DEPTH
        )),
    }
}

impl<'a> Fields<'a> {
    /// Claims the next element of the array, which must exist.
    fn next(&mut self, field: &'static str) -> Result<&mut Reader<'a>, ProtocolError> {
        if self.left == 0 {
            return Err(ProtocolError::MissingField(field));
        }
        self.left -= 1;
        Ok(&mut self.reader)
    }

    fn has_next(&self) -> bool {
        self.left > 0
    }

    fn int(&mut self, field: &'static str, expected: &'static str) -> Result<Int, ProtocolError> {
        self.next(field)?
            .int()
            .map_err(|e| field_error(e, field, expected))
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        self.next(field)?
            .bool()
            .map_err(|e| field_error(e, field, "Boolean"))
    }

    fn string(&mut self, field: &'static str) -> Result<String, ProtocolError> {
        self.next(field)?
            .str()
            .map(str::to_owned)
            .map_err(|e| field_error(e, field, "String"))
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, ProtocolError> {
        self.next(field)?
            .nullable_str()
            .map(|s| s.map(str::to_owned))
            .map_err(|e| field_error(e, field, "String or nil"))
    }

    /// An invocation id that must be a non-empty string, as the .NET server
    /// requires for every message type but Invocation.
    fn required_id(&mut self, message: &'static str) -> Result<String, ProtocolError> {
        match self.nullable_string("invocationId")? {
            Some(id) if !id.is_empty() => Ok(id),
            _ => Err(ProtocolError::InvalidMessage(message)),
        }
    }

    fn headers(&mut self) -> Result<Headers, ProtocolError> {
        const FIELD: &str = "headers";
        const EXPECTED: &str = "Map of String to String";
        let reader = self.next(FIELD)?;
        let count = reader
            .map_len()
            .map_err(|e| field_error(e, FIELD, EXPECTED))?;
        // No capacity from `count`: it is the peer's claim; each pair read
        // below proves its bytes exist before it is stored.
        let mut headers = Headers::new();
        for _ in 0..count {
            let key = reader.str().map_err(|e| field_error(e, FIELD, EXPECTED))?;
            let value = reader.str().map_err(|e| field_error(e, FIELD, EXPECTED))?;
            if key.is_empty() || value.is_empty() {
                return Err(ProtocolError::InvalidMessage(
                    "Null or empty key or value in header.",
                ));
            }
            headers.push((key.to_owned(), value.to_owned()));
        }
        Ok(headers)
    }

    /// One value of any type, as a zero-copy payload.
    fn payload(&mut self, field: &'static str) -> Result<Payload, ProtocolError> {
        let body = self.body;
        let range = self
            .next(field)?
            .skip_value()
            .map_err(|e| field_error(e, field, "a MessagePack value"))?;
        Ok(Payload::from_msgpack_bytes(body.slice(range)))
    }

    fn arguments(&mut self) -> Result<Vec<Payload>, ProtocolError> {
        const FIELD: &str = "arguments";
        let body = self.body;
        let reader = self.next(FIELD)?;
        let count = reader
            .array_len()
            .map_err(|e| field_error(e, FIELD, "Array"))?;
        let mut arguments = Vec::new();
        for _ in 0..count {
            let range = reader
                .skip_value()
                .map_err(|e| field_error(e, FIELD, "Array"))?;
            arguments.push(Payload::from_msgpack_bytes(body.slice(range)));
        }
        Ok(arguments)
    }

    /// `streamIds`, which clients that have no upload streams leave out.
    fn stream_ids(&mut self) -> Result<Vec<String>, ProtocolError> {
        const FIELD: &str = "streamIds";
        const EXPECTED: &str = "Array of String";
        if !self.has_next() {
            return Ok(Vec::new());
        }
        let reader = self.next(FIELD)?;
        let count = reader
            .array_len()
            .map_err(|e| field_error(e, FIELD, EXPECTED))?;
        let mut ids = Vec::new();
        for _ in 0..count {
            let id = reader.str().map_err(|e| field_error(e, FIELD, EXPECTED))?;
            if id.is_empty() {
                return Err(ProtocolError::InvalidMessage(
                    "Null or empty value in streamIds received.",
                ));
            }
            ids.push(id.to_owned());
        }
        Ok(ids)
    }

    fn sequence_id(&mut self) -> Result<u64, ProtocolError> {
        const FIELD: &str = "sequenceId";
        const EXPECTED: &str = "UInt64";
        let value = self.int(FIELD, EXPECTED)?;
        u64::try_from(value).map_err(|_| ProtocolError::WrongFieldType {
            field: FIELD,
            expected: EXPECTED,
        })
    }
}

/// Parses one message body; `Ok(None)` for a message of unknown type.
fn parse_message(body: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    let mut reader = Reader::new(body);
    let left = reader.array_len().map_err(|error| match error {
        ReadError::Truncated => ProtocolError::InvalidMessagePack("empty message".to_owned()),
        _ => ProtocolError::InvalidMessagePack("a message must be an array".to_owned()),
    })?;
    let mut fields = Fields { body, reader, left };
    let kind = fields.int("type", "Int32")?;
    let Ok(kind) = u8::try_from(kind) else {
        return Ok(None);
    };
    let message = match kind {
        message_type::INVOCATION => {
            let headers = fields.headers()?;
            // nil and "" both mean fire-and-forget to the .NET server.
            let invocation_id = fields
                .nullable_string("invocationId")?
                .filter(|id| !id.is_empty());
            let target = fields.string("target")?;
            if target.is_empty() {
                return Err(ProtocolError::InvalidMessage(
                    "Null or empty target for Invocation message.",
                ));
            }
            HubMessage::Invocation(Invocation {
                headers,
                invocation_id,
                target,
                arguments: fields.arguments()?,
                stream_ids: fields.stream_ids()?,
            })
        }
        message_type::STREAM_INVOCATION => {
            let headers = fields.headers()?;
            let invocation_id =
                fields.required_id("Null or empty invocation ID for StreamInvocation message.")?;
            let target = fields.string("target")?;
            if target.is_empty() {
                return Err(ProtocolError::InvalidMessage(
                    "Null or empty target for StreamInvocation message.",
                ));
            }
            HubMessage::StreamInvocation(StreamInvocation {
                headers,
                invocation_id,
                target,
                arguments: fields.arguments()?,
                stream_ids: fields.stream_ids()?,
            })
        }
        message_type::STREAM_ITEM => HubMessage::StreamItem(StreamItem {
            headers: fields.headers()?,
            invocation_id: fields
                .required_id("Null or empty invocation ID for StreamItem message.")?,
            item: fields.payload("item")?,
        }),
        message_type::COMPLETION => {
            let headers = fields.headers()?;
            let invocation_id =
                fields.required_id("Null or empty invocation ID for Completion message.")?;
            let result = match fields.int("resultKind", "Int32")? {
                RESULT_ERROR => CompletionResult::Error(fields.string("error")?),
                RESULT_VOID => CompletionResult::Void,
                RESULT_VALUE => CompletionResult::Value(fields.payload("result")?),
                _ => {
                    return Err(ProtocolError::InvalidMessage(
                        "Invalid invocation result kind.",
                    ));
                }
            };
            HubMessage::Completion(Completion {
                headers,
                invocation_id,
                result,
            })
        }
        message_type::CANCEL_INVOCATION => HubMessage::CancelInvocation(CancelInvocation {
            headers: fields.headers()?,
            invocation_id: fields
                .required_id("Null or empty invocation ID for CancelInvocation message.")?,
        }),
        message_type::PING => HubMessage::Ping,
        message_type::CLOSE => {
            let error = fields.nullable_string("error")?;
            let allow_reconnect = if fields.has_next() {
                fields.bool("allowReconnect")?
            } else {
                false
            };
            HubMessage::Close(Close {
                error,
                allow_reconnect,
            })
        }
        message_type::ACK => HubMessage::Ack(Ack {
            sequence_id: fields.sequence_id()?,
        }),
        message_type::SEQUENCE => HubMessage::Sequence(Sequence {
            sequence_id: fields.sequence_id()?,
        }),
        _ => return Ok(None),
    };
    Ok(Some(message))
}

/// Appends `message` to `out`: its VarInt length prefix, then its body,
/// laid out exactly as the .NET server writes it.
///
/// Invocations and stream invocations always have 6 elements (an empty
/// `streamIds` is `0x90`) and nil for a missing invocation id; Close always
/// has 3; Ping is exactly `91 06`. On error nothing is appended.
pub fn encode(message: &HubMessage, out: &mut BytesMut) -> Result<(), EncodeError> {
    let start = out.len();
    // Room for the longest prefix; the body is written after it and moved
    // left once its length (hence the prefix's) is known. That is one
    // memmove of the body instead of a second buffer.
    out.put_bytes(0, varint::MAX_PREFIX_LEN);
    let body_start = out.len();
    if let Err(error) = write_body(message, out) {
        out.truncate(start);
        return Err(error);
    }
    let body_len = out.len() - body_start;
    if body_len > varint::MAX_BODY_LEN {
        out.truncate(start);
        return Err(EncodeError::InvalidMessage(
            "messages bigger than 2GB are not supported",
        ));
    }
    let mut prefix = [0; varint::MAX_PREFIX_LEN];
    let prefix_len = varint::write(body_len, &mut prefix);
    let buf: &mut [u8] = out.as_mut();
    buf.copy_within(body_start.., start + prefix_len);
    buf[start..start + prefix_len].copy_from_slice(&prefix[..prefix_len]);
    out.truncate(start + prefix_len + body_len);
    Ok(())
}

fn write_body(message: &HubMessage, out: &mut BytesMut) -> Result<(), EncodeError> {
    match message {
        HubMessage::Invocation(m) => {
            write_array_len(out, 6);
            write_uint(out, message_type::INVOCATION.into());
            write_headers(out, &m.headers)?;
            match m.invocation_id.as_deref() {
                Some(id) if !id.is_empty() => write_str(out, id),
                _ => write_nil(out),
            }
            write_target(out, &m.target)?;
            write_payloads(out, &m.arguments)?;
            write_stream_ids(out, &m.stream_ids)?;
        }
        HubMessage::StreamInvocation(m) => {
            write_array_len(out, 6);
            write_uint(out, message_type::STREAM_INVOCATION.into());
            write_headers(out, &m.headers)?;
            write_id(out, &m.invocation_id)?;
            write_target(out, &m.target)?;
            write_payloads(out, &m.arguments)?;
            write_stream_ids(out, &m.stream_ids)?;
        }
        HubMessage::StreamItem(m) => {
            write_array_len(out, 4);
            write_uint(out, message_type::STREAM_ITEM.into());
            write_headers(out, &m.headers)?;
            write_id(out, &m.invocation_id)?;
            m.item.write_msgpack(out)?;
        }
        HubMessage::Completion(m) => {
            let len = if matches!(m.result, CompletionResult::Void) {
                4
            } else {
                5
            };
            write_array_len(out, len);
            write_uint(out, message_type::COMPLETION.into());
            write_headers(out, &m.headers)?;
            write_id(out, &m.invocation_id)?;
            match &m.result {
                CompletionResult::Error(error) => {
                    if error.is_empty() {
                        return Err(EncodeError::InvalidMessage(
                            "the error of a Completion must not be empty",
                        ));
                    }
                    write_uint(out, RESULT_ERROR as u64);
                    write_str(out, error);
                }
                CompletionResult::Void => write_uint(out, RESULT_VOID as u64),
                CompletionResult::Value(value) => {
                    write_uint(out, RESULT_VALUE as u64);
                    value.write_msgpack(out)?;
                }
            }
        }
        HubMessage::CancelInvocation(m) => {
            write_array_len(out, 3);
            write_uint(out, message_type::CANCEL_INVOCATION.into());
            write_headers(out, &m.headers)?;
            write_id(out, &m.invocation_id)?;
        }
        HubMessage::Ping => {
            write_array_len(out, 1);
            write_uint(out, message_type::PING.into());
        }
        HubMessage::Close(m) => {
            write_array_len(out, 3);
            write_uint(out, message_type::CLOSE.into());
            // The .NET server writes an empty error as nil.
            match m.error.as_deref() {
                Some(error) if !error.is_empty() => write_str(out, error),
                _ => write_nil(out),
            }
            out.put_u8(if m.allow_reconnect { 0xc3 } else { 0xc2 });
        }
        HubMessage::Ack(m) => {
            write_array_len(out, 2);
            write_uint(out, message_type::ACK.into());
            write_uint(out, m.sequence_id);
        }
        HubMessage::Sequence(m) => {
            write_array_len(out, 2);
            write_uint(out, message_type::SEQUENCE.into());
            write_uint(out, m.sequence_id);
        }
    }
    Ok(())
}

/// A length that no MessagePack header can carry.
const TOO_LONG: EncodeError = EncodeError::InvalidMessage("a string or array longer than 2^32-1");

fn len_u32(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| TOO_LONG)
}

fn write_nil(out: &mut BytesMut) {
    out.put_u8(0xc0);
}

fn write_uint(out: &mut BytesMut, value: u64) {
    if value < 0x80 {
        out.put_u8(value as u8);
    } else if let Ok(v) = u8::try_from(value) {
        out.put_u8(0xcc);
        out.put_u8(v);
    } else if let Ok(v) = u16::try_from(value) {
        out.put_u8(0xcd);
        out.put_u16(v);
    } else if let Ok(v) = u32::try_from(value) {
        out.put_u8(0xce);
        out.put_u32(v);
    } else {
        out.put_u8(0xcf);
        out.put_u64(value);
    }
}

fn write_str(out: &mut BytesMut, value: &str) {
    let len = value.len();
    if len < 32 {
        out.put_u8(0xa0 | len as u8);
    } else if let Ok(len) = u8::try_from(len) {
        out.put_u8(0xd9);
        out.put_u8(len);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(0xda);
        out.put_u16(len);
    } else {
        // Strings over 4 GB cannot exist in a message capped at 2 GB; the
        // final length check in `encode` rejects the message anyway.
        out.put_u8(0xdb);
        out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    }
    out.put_slice(value.as_bytes());
}

fn write_array_len(out: &mut BytesMut, len: u32) {
    if len < 16 {
        out.put_u8(0x90 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(0xdc);
        out.put_u16(len);
    } else {
        out.put_u8(0xdd);
        out.put_u32(len);
    }
}

fn write_map_len(out: &mut BytesMut, len: u32) {
    if len < 16 {
        out.put_u8(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(0xde);
        out.put_u16(len);
    } else {
        out.put_u8(0xdf);
        out.put_u32(len);
    }
}

/// Writes an invocation id that readers require to be non-empty.
fn write_id(out: &mut BytesMut, id: &str) -> Result<(), EncodeError> {
    if id.is_empty() {
        return Err(EncodeError::InvalidMessage(
            "the invocation id must not be empty",
        ));
    }
    write_str(out, id);
    Ok(())
}

fn write_target(out: &mut BytesMut, target: &str) -> Result<(), EncodeError> {
    if target.is_empty() {
        return Err(EncodeError::InvalidMessage("the target must not be empty"));
    }
    write_str(out, target);
    Ok(())
}

fn write_headers(out: &mut BytesMut, headers: &Headers) -> Result<(), EncodeError> {
    write_map_len(out, len_u32(headers.len())?);
    for (key, value) in headers {
        if key.is_empty() || value.is_empty() {
            return Err(EncodeError::InvalidMessage(
                "header names and values must not be empty",
            ));
        }
        write_str(out, key);
        write_str(out, value);
    }
    Ok(())
}

fn write_payloads(out: &mut BytesMut, payloads: &[Payload]) -> Result<(), EncodeError> {
    write_array_len(out, len_u32(payloads.len())?);
    payloads
        .iter()
        .try_for_each(|payload| payload.write_msgpack(out))
}

fn write_stream_ids(out: &mut BytesMut, ids: &[String]) -> Result<(), EncodeError> {
    write_array_len(out, len_u32(ids.len())?);
    for id in ids {
        if id.is_empty() {
            return Err(EncodeError::InvalidMessage("stream ids must not be empty"));
        }
        write_str(out, id);
    }
    Ok(())
}

/// The fuzzing entry point (used by `hub-runtime/fuzz` and the corpus replay
/// test): decodes `data`, delivered in up to three chunks, with a 32 KiB
/// message limit; re-encodes every decoded message and deserializes every
/// payload as JSON values. It must never panic, whatever `data` holds.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    // Split points derived from the input itself, so the fuzzer explores
    // messages cut at every position without a separate parameter.
    let first = data.first().map_or(0, |&b| usize::from(b));
    let last = data.last().map_or(0, |&b| usize::from(b));
    let len = data.len();
    let mut cuts = [first % (len + 1), last % (len + 1)];
    cuts.sort_unstable();
    let chunks = [&data[..cuts[0]], &data[cuts[0]..cuts[1]], &data[cuts[1]..]];

    let mut decoder = MessagePackDecoder::new(Some(32 * 1024));
    let mut buffer = BytesMut::new();
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(message)) => exercise(&message),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

fn exercise(message: &HubMessage) {
    let mut out = BytesMut::new();
    if encode(message, &mut out).is_ok() {
        let mut decoder = MessagePackDecoder::new(None);
        // A message we wrote must read back; only a malformed payload copied
        // verbatim could make it fail, and the skipper rules that out.
        let _ = decoder.decode(&mut out);
    }
    let payloads: Vec<&Payload> = match message {
        HubMessage::Invocation(m) => m.arguments.iter().collect(),
        HubMessage::StreamInvocation(m) => m.arguments.iter().collect(),
        HubMessage::StreamItem(m) => vec![&m.item],
        HubMessage::Completion(Completion {
            result: CompletionResult::Value(value),
            ..
        }) => vec![value],
        _ => Vec::new(),
    };
    for payload in payloads {
        let _ = payload.deserialize::<serde_json::Value>();
        let _ = payload.to_json_value();
    }
}
