//! The JSON hub protocol (`HubProtocol.md`, "JSON Encoding").
//!
//! Every message is one UTF-8 JSON object followed by the record separator
//! `0x1E`. Keys may come in any order (the JS client writes `type` last),
//! unknown keys are ignored and records with an unknown `type` are skipped,
//! as the .NET server does.
//!
//! Decoding is zero-copy for payloads: a record is split off the input
//! buffer as [`Bytes`], and each argument, stream item and result becomes a
//! [`Payload`] that is a slice of that record, deserialized later, exactly
//! once, into the type its receiver wants.
//!
//! ```
//! use bytes::BytesMut;
//! use hub_runtime::protocol::json::JsonDecoder;
//! use hub_runtime::protocol::HubMessage;
//!
//! let mut buffer = BytesMut::from(&b"{\"type\":6}\x1e{\"type\":7}"[..]);
//! let mut decoder = JsonDecoder::new(Some(32 * 1024));
//! assert_eq!(decoder.decode(&mut buffer).unwrap(), Some(HubMessage::Ping));
//! // The second record has no separator yet.
//! assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
//! buffer.extend_from_slice(b"\x1e");
//! assert!(matches!(decoder.decode(&mut buffer).unwrap(), Some(HubMessage::Close(_))));
//! ```

use std::fmt;
use std::marker::PhantomData;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

pub use super::json_scan::JsonRecordView;
use super::json_scan::Scalar;
use super::messages::message_type;
use super::{
    Ack, CancelInvocation, Close, Completion, CompletionResult, EncodeError, Headers, HubMessage,
    Invocation, Payload, ProtocolError, RECORD_SEPARATOR, Sequence, StreamInvocation, StreamItem,
};

pub use super::json_scan::MAX_DEPTH;

/// An incremental decoder for the JSON hub protocol.
///
/// Append each read to a [`BytesMut`] and call [`JsonDecoder::decode`] until
/// it returns `Ok(None)`. The decoder remembers how far it has already
/// searched the buffer for a separator, so a large record arriving in many
/// small reads costs linear time in total. It assumes that it is the only
/// one taking bytes off the front of the buffer between calls.
#[derive(Debug)]
pub struct JsonDecoder {
    max_message_size: Option<usize>,
    /// How many bytes at the front of the buffer are known to hold no
    /// separator.
    scanned: usize,
}

impl JsonDecoder {
    /// A decoder refusing records larger than `max_message_size` bytes, the
    /// separator included (as the .NET server counts); no limit with `None`.
    pub fn new(max_message_size: Option<usize>) -> Self {
        JsonDecoder {
            max_message_size,
            scanned: 0,
        }
    }

    /// Takes the next message off the front of `buffer`.
    ///
    /// Returns `Ok(None)` when no whole record is there yet. Records with a
    /// `type` this crate does not know are consumed and skipped. On error
    /// the connection must be closed: the record that failed is consumed,
    /// except for [`ProtocolError::MessageTooLarge`], which leaves the
    /// buffer untouched.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<HubMessage>, ProtocolError> {
        loop {
            let Some(end) = self.find_separator(buffer)? else {
                return Ok(None);
            };
            let mut record = buffer.split_to(end + 1).freeze();
            record.truncate(end);
            self.scanned = 0;
            if let Some(message) = decode_record(&record)? {
                return Ok(Some(message));
            }
        }
    }

    /// The index of the first separator in `buffer`, searching only bytes
    /// not searched before and never more than the size limit allows.
    fn find_separator(&mut self, buffer: &BytesMut) -> Result<Option<usize>, ProtocolError> {
        // The caller may have cleared the buffer after an error.
        if self.scanned > buffer.len() {
            self.scanned = 0;
        }
        let window = match self.max_message_size {
            Some(limit) => buffer.len().min(limit),
            None => buffer.len(),
        };
        let start = self.scanned.min(window);
        if let Some(offset) = memchr::memchr(RECORD_SEPARATOR, &buffer[start..window]) {
            return Ok(Some(start + offset));
        }
        if let Some(limit) = self.max_message_size
            && buffer.len() > limit
        {
            return Err(ProtocolError::MessageTooLarge { limit });
        }
        self.scanned = window;
        Ok(None)
    }
}

/// One record, without its separator, as a message; `None` for an unknown
/// `type`.
///
/// The one-pass reader ([`JsonRecordView`]) reads every ordinary record;
/// the serde path reads what it leaves (escapes in string fields, and
/// every malformed record, whose error text the serde path words).
#[doc(hidden)]
pub fn decode_record(record: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    match JsonRecordView::scan(record) {
        Some(view) => view.fields().into_message(record),
        None => decode_record_with_serde(record),
    }
}

/// [`decode_record`] through serde_json alone: what every record went
/// through before the one-pass reader, kept as its fallback and as the
/// reference of the differential tests and benchmarks.
#[doc(hidden)]
pub fn decode_record_with_serde(record: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    let text = std::str::from_utf8(record).map_err(|_| ProtocolError::InvalidUtf8)?;
    check_depth(text.as_bytes())?;
    // serde's derived struct visitor also accepts a JSON array (fields by
    // position), which no SignalR peer sends.
    match text.bytes().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => {
            return Err(ProtocolError::InvalidJson(
                "a hub message must be a JSON object".into(),
            ));
        }
        None => return Err(ProtocolError::InvalidJson("empty record".into())),
    }
    let envelope: Envelope<'_> =
        serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson(e.to_string()))?;
    envelope.into_fields().into_message(record)
}

/// Refuses records nested deeper than [`MAX_DEPTH`].
///
/// Brackets inside strings do not count; malformed input is left for the
/// parser to reject.
fn check_depth(bytes: &[u8]) -> Result<(), ProtocolError> {
    // Fewer openers than the limit cannot nest deeper than it: a count that
    // vectorizes spares almost every record the byte-by-byte walk below.
    if bytes.iter().filter(|&&b| b == b'{' || b == b'[').count() <= MAX_DEPTH {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ProtocolError::InvalidJson(format!(
                        "the maximum nesting depth of {MAX_DEPTH} was exceeded"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The keys of every message type, each checked for its JSON type while it
/// is parsed, so that validation needs no second pass over the record.
///
/// Every field is `Some` exactly when its key is present, even with a
/// `null` value: the spec distinguishes `"result":null` from no `result`.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", default, deserialize_with = "present")]
    kind: Option<Field<i32>>,
    #[serde(rename = "invocationId", default, deserialize_with = "present")]
    invocation_id: Option<Field<String>>,
    #[serde(default, deserialize_with = "present")]
    target: Option<Field<String>>,
    #[serde(borrow, default, deserialize_with = "present")]
    arguments: Option<Field<Vec<&'a RawValue>>>,
    #[serde(rename = "streamIds", default, deserialize_with = "present")]
    stream_ids: Option<Field<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    headers: Option<Field<Headers>>,
    #[serde(borrow, default, deserialize_with = "present")]
    item: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Field<String>>,
    #[serde(rename = "allowReconnect", default, deserialize_with = "present")]
    allow_reconnect: Option<Field<bool>>,
    #[serde(rename = "sequenceId", default, deserialize_with = "present")]
    sequence_id: Option<Field<u64>>,
}

/// Deserializes a present key as `Some`, even when its value is `null`
/// (plain `Option` would turn `null` into `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A field's value, or what was there instead of the expected type.
enum Field<T> {
    Value(T),
    Null,
    WrongType,
}

impl<T> Field<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        match self {
            Field::Value(value) => Field::Value(f(value)),
            Field::Null => Field::Null,
            Field::WrongType => Field::WrongType,
        }
    }
}

impl<T> From<Scalar<T>> for Field<T> {
    fn from(scalar: Scalar<T>) -> Self {
        match scalar {
            Scalar::Value(value) => Field::Value(value),
            Scalar::Null => Field::Null,
        }
    }
}

/// The envelope's fields however they were read (serde's [`Envelope`] or
/// the one-pass [`JsonRecordView`]), turned into a message by one shared
/// set of rules: both readers give the same messages and errors.
/// `arguments` iterates over the raw text of each argument.
struct Fields<'a, A> {
    kind: Option<Field<i32>>,
    invocation_id: Option<Field<String>>,
    target: Option<Field<String>>,
    arguments: Option<Field<A>>,
    stream_ids: Option<Field<Vec<String>>>,
    headers: Option<Field<Headers>>,
    item: Option<&'a str>,
    result: Option<&'a str>,
    error: Option<Field<String>>,
    allow_reconnect: Option<Field<bool>>,
    sequence_id: Option<Field<u64>>,
}

impl<'a> Envelope<'a> {
    fn into_fields(self) -> Fields<'a, impl ExactSizeIterator<Item = &'a str>> {
        Fields {
            kind: self.kind,
            invocation_id: self.invocation_id,
            target: self.target,
            arguments: self
                .arguments
                .map(|field| field.map(|raw| raw.into_iter().map(RawValue::get))),
            stream_ids: self.stream_ids,
            headers: self.headers,
            item: self.item.map(RawValue::get),
            result: self.result.map(RawValue::get),
            error: self.error,
            allow_reconnect: self.allow_reconnect,
            sequence_id: self.sequence_id,
        }
    }
}

fn owned(field: Option<Scalar<&str>>) -> Option<Field<String>> {
    field.map(|scalar| Field::from(scalar).map(str::to_owned))
}

impl<'a> JsonRecordView<'a> {
    fn fields(&self) -> Fields<'a, impl ExactSizeIterator<Item = &'a str> + '_> {
        Fields {
            kind: self.kind.map(Field::from),
            invocation_id: owned(self.invocation_id),
            target: owned(self.target),
            arguments: self.has_arguments.map(|present| {
                if present {
                    Field::Value(self.arguments())
                } else {
                    Field::Null
                }
            }),
            stream_ids: self.stream_ids.as_ref().map(|ids| match ids {
                Scalar::Value(ids) => Field::Value(ids.iter().map(|&id| id.to_owned()).collect()),
                Scalar::Null => Field::Null,
            }),
            headers: self.headers.as_ref().map(|headers| match headers {
                Scalar::Value(headers) => Field::Value(
                    headers
                        .iter()
                        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
                        .collect(),
                ),
                Scalar::Null => Field::Null,
            }),
            item: self.item,
            result: self.result,
            error: owned(self.error),
            allow_reconnect: self.allow_reconnect.map(Field::from),
            sequence_id: self.sequence_id.map(Field::from),
        }
    }
}

/// Builds a value of the expected JSON type from whatever the parser saw;
/// `None` for any other type. The defaults consume and reject everything.
trait Expect<'de>: Sized {
    fn from_bool(_value: bool) -> Option<Self> {
        None
    }
    fn from_i64(_value: i64) -> Option<Self> {
        None
    }
    fn from_u64(_value: u64) -> Option<Self> {
        None
    }
    fn from_str(_value: &str) -> Option<Self> {
        None
    }
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl Expect<'_> for i32 {
    fn from_i64(value: i64) -> Option<Self> {
        i32::try_from(value).ok()
    }
    fn from_u64(value: u64) -> Option<Self> {
        i32::try_from(value).ok()
    }
}

impl Expect<'_> for u64 {
    fn from_i64(value: i64) -> Option<Self> {
        u64::try_from(value).ok()
    }
    fn from_u64(value: u64) -> Option<Self> {
        Some(value)
    }
}

impl Expect<'_> for bool {
    fn from_bool(value: bool) -> Option<Self> {
        Some(value)
    }
}

impl Expect<'_> for String {
    fn from_str(value: &str) -> Option<Self> {
        Some(value.to_owned())
    }
}

/// `arguments`: the raw text of each element, borrowed from the record.
impl<'de: 'a, 'a> Expect<'de> for Vec<&'a RawValue> {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(value) = seq.next_element::<&'a RawValue>()? {
            values.push(value);
        }
        Ok(Some(values))
    }
}

/// `streamIds`: an array of strings.
impl<'de> Expect<'de> for Vec<String> {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut ids = Vec::new();
        let mut valid = true;
        while let Some(id) = seq.next_element::<Field<String>>()? {
            match id {
                Field::Value(id) => ids.push(id),
                _ => valid = false,
            }
        }
        Ok(valid.then_some(ids))
    }
}

/// `headers`: an object of strings.
impl<'de> Expect<'de> for Headers {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut headers = Vec::new();
        let mut valid = true;
        while let Some((name, value)) = map.next_entry::<String, Field<String>>()? {
            match value {
                Field::Value(value) => headers.push((name, value)),
                _ => valid = false,
            }
        }
        Ok(valid.then_some(headers))
    }
}

impl<'de, T: Expect<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<T>(PhantomData<T>);

fn checked<T>(value: Option<T>) -> Field<T> {
    match value {
        Some(value) => Field::Value(value),
        None => Field::WrongType,
    }
}

impl<'de, T: Expect<'de>> Visitor<'de> for FieldVisitor<T> {
    type Value = Field<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(checked(T::from_bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(checked(T::from_i64(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(checked(T::from_u64(v)))
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Self::Value, E> {
        // No field of the envelope is a fractional number; integers too big
        // for u64 also arrive here.
        Ok(Field::WrongType)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(checked(T::from_str(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::from_seq(seq).map(checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::from_map(map).map(checked)
    }
}

fn wrong(field: &'static str, expected: &'static str) -> ProtocolError {
    ProtocolError::WrongFieldType { field, expected }
}

/// `invocationId` where the message type requires it: a non-empty string
/// (the .NET server treats `null` and `""` as missing).
fn required_id(field: Option<Field<String>>) -> Result<String, ProtocolError> {
    match field {
        Some(Field::Value(id)) if !id.is_empty() => Ok(id),
        Some(Field::WrongType) => Err(wrong("invocationId", "String")),
        _ => Err(ProtocolError::MissingField("invocationId")),
    }
}

/// An optional string field; `null` counts as absent.
fn optional_string(
    field: Option<Field<String>>,
    name: &'static str,
) -> Result<Option<String>, ProtocolError> {
    match field {
        Some(Field::Value(value)) => Ok(Some(value)),
        Some(Field::WrongType) => Err(wrong(name, "String")),
        Some(Field::Null) | None => Ok(None),
    }
}

fn headers(field: Option<Field<Headers>>) -> Result<Headers, ProtocolError> {
    match field {
        Some(Field::Value(headers)) => Ok(headers),
        Some(Field::WrongType) => Err(wrong("headers", "Object with String values")),
        Some(Field::Null) | None => Ok(Headers::new()),
    }
}

fn stream_ids_field(field: Option<Field<Vec<String>>>) -> Result<Vec<String>, ProtocolError> {
    match field {
        Some(Field::Value(ids)) => Ok(ids),
        Some(Field::WrongType) => Err(wrong("streamIds", "Array of String")),
        Some(Field::Null) | None => Ok(Vec::new()),
    }
}

fn target(field: Option<Field<String>>) -> Result<String, ProtocolError> {
    match field {
        Some(Field::Value(target)) if !target.is_empty() => Ok(target),
        Some(Field::WrongType) => Err(wrong("target", "String")),
        _ => Err(ProtocolError::MissingField("target")),
    }
}

fn sequence_id_field(field: Option<Field<u64>>) -> Result<u64, ProtocolError> {
    match field {
        Some(Field::Value(id)) => Ok(id),
        Some(Field::Null | Field::WrongType) => Err(wrong("sequenceId", "non-negative Integer")),
        None => Err(ProtocolError::MissingField("sequenceId")),
    }
}

/// A payload sharing the record's memory.
fn payload(record: &Bytes, raw: &str) -> Payload {
    Payload::from_json_bytes(record.slice_ref(raw.as_bytes()))
}

impl<'a, A: ExactSizeIterator<Item = &'a str>> Fields<'a, A> {
    fn arguments(&mut self, record: &Bytes) -> Result<Vec<Payload>, ProtocolError> {
        match self.arguments.take() {
            Some(Field::Value(raw)) => {
                Ok(raw.into_iter().map(|raw| payload(record, raw)).collect())
            }
            Some(Field::Null | Field::WrongType) => Err(wrong("arguments", "Array")),
            None => Err(ProtocolError::MissingField("arguments")),
        }
    }

    fn into_message(mut self, record: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        let kind = match self.kind.take() {
            Some(Field::Value(kind)) => kind,
            Some(Field::Null | Field::WrongType) => return Err(wrong("type", "Number")),
            None => return Err(ProtocolError::MissingField("type")),
        };
        let Ok(kind) = u8::try_from(kind) else {
            return Ok(None);
        };
        let message = match kind {
            message_type::INVOCATION => {
                let invocation_id = optional_string(self.invocation_id.take(), "invocationId")?
                    .filter(|id| !id.is_empty());
                let target = target(self.target.take())?;
                let arguments = self.arguments(record)?;
                HubMessage::Invocation(Invocation {
                    headers: headers(self.headers)?,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids: stream_ids_field(self.stream_ids)?,
                })
            }
            message_type::STREAM_INVOCATION => {
                let invocation_id = required_id(self.invocation_id.take())?;
                let target = target(self.target.take())?;
                let arguments = self.arguments(record)?;
                HubMessage::StreamInvocation(StreamInvocation {
                    headers: headers(self.headers)?,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids: stream_ids_field(self.stream_ids)?,
                })
            }
            message_type::STREAM_ITEM => {
                let invocation_id = required_id(self.invocation_id)?;
                let item = self.item.ok_or(ProtocolError::MissingField("item"))?;
                HubMessage::StreamItem(StreamItem {
                    headers: headers(self.headers)?,
                    invocation_id,
                    item: payload(record, item),
                })
            }
            message_type::COMPLETION => {
                let invocation_id = required_id(self.invocation_id)?;
                let error = optional_string(self.error, "error")?;
                let result = match (error, self.result) {
                    (Some(_), Some(_)) => {
                        return Err(ProtocolError::InvalidMessage(
                            "The 'error' and 'result' properties are mutually exclusive.",
                        ));
                    }
                    (Some(error), None) if error.is_empty() => {
                        return Err(ProtocolError::InvalidMessage(
                            "The 'error' property of a Completion must be a non-empty string.",
                        ));
                    }
                    (Some(error), None) => CompletionResult::Error(error),
                    (None, Some(result)) => CompletionResult::Value(payload(record, result)),
                    (None, None) => CompletionResult::Void,
                };
                HubMessage::Completion(Completion {
                    headers: headers(self.headers)?,
                    invocation_id,
                    result,
                })
            }
            message_type::CANCEL_INVOCATION => HubMessage::CancelInvocation(CancelInvocation {
                invocation_id: required_id(self.invocation_id)?,
                headers: headers(self.headers)?,
            }),
            message_type::PING => HubMessage::Ping,
            message_type::CLOSE => HubMessage::Close(Close {
                error: optional_string(self.error, "error")?,
                allow_reconnect: match self.allow_reconnect {
                    Some(Field::Value(allow)) => allow,
                    Some(Field::WrongType) => return Err(wrong("allowReconnect", "Boolean")),
                    Some(Field::Null) | None => false,
                },
            }),
            message_type::ACK => HubMessage::Ack(Ack {
                sequence_id: sequence_id_field(self.sequence_id)?,
            }),
            message_type::SEQUENCE => HubMessage::Sequence(Sequence {
                sequence_id: sequence_id_field(self.sequence_id)?,
            }),
            // Future protocol versions may add message types; old peers
            // ignore them.
            _ => return Ok(None),
        };
        Ok(Some(message))
    }
}

/// Appends `message` as one JSON record, separator included, to `out`.
///
/// Keys are written in the .NET server's order: `type`, `headers` (only
/// when there are some), `invocationId` (left out for a fire-and-forget
/// Invocation, never `null` or `""`), `target`, `arguments`, `streamIds`
/// (only when there are some), `item`, `result` or `error`. On error
/// nothing is appended.
pub fn encode(message: &HubMessage, out: &mut BytesMut) -> Result<(), EncodeError> {
    let start = out.len();
    match write_message(message, out) {
        Ok(()) => {
            out.put_u8(RECORD_SEPARATOR);
            Ok(())
        }
        Err(error) => {
            out.truncate(start);
            Err(error)
        }
    }
}

fn write_message(message: &HubMessage, out: &mut BytesMut) -> Result<(), EncodeError> {
    out.extend_from_slice(b"{\"type\":");
    write_json(out, &message.type_id())?;
    match message {
        HubMessage::Invocation(m) => {
            write_headers(out, &m.headers)?;
            if let Some(id) = m.invocation_id.as_deref().filter(|id| !id.is_empty()) {
                write_key_string(out, "invocationId", id)?;
            }
            write_call(out, &m.target, &m.arguments, &m.stream_ids)?;
        }
        HubMessage::StreamInvocation(m) => {
            write_headers(out, &m.headers)?;
            write_required_id(out, &m.invocation_id)?;
            write_call(out, &m.target, &m.arguments, &m.stream_ids)?;
        }
        HubMessage::StreamItem(m) => {
            write_headers(out, &m.headers)?;
            write_required_id(out, &m.invocation_id)?;
            out.extend_from_slice(b",\"item\":");
            m.item.write_json(out)?;
        }
        HubMessage::Completion(m) => {
            write_headers(out, &m.headers)?;
            write_required_id(out, &m.invocation_id)?;
            match &m.result {
                CompletionResult::Void => {}
                CompletionResult::Value(result) => {
                    out.extend_from_slice(b",\"result\":");
                    result.write_json(out)?;
                }
                CompletionResult::Error(error) if error.is_empty() => {
                    return Err(EncodeError::InvalidMessage(
                        "the error of a Completion must be a non-empty string",
                    ));
                }
                CompletionResult::Error(error) => write_key_string(out, "error", error)?,
            }
        }
        HubMessage::CancelInvocation(m) => {
            write_headers(out, &m.headers)?;
            write_required_id(out, &m.invocation_id)?;
        }
        HubMessage::Ping => {}
        HubMessage::Close(m) => {
            if let Some(error) = &m.error {
                write_key_string(out, "error", error)?;
            }
            if m.allow_reconnect {
                out.extend_from_slice(b",\"allowReconnect\":true");
            }
        }
        HubMessage::Ack(Ack { sequence_id }) | HubMessage::Sequence(Sequence { sequence_id }) => {
            out.extend_from_slice(b",\"sequenceId\":");
            write_json(out, sequence_id)?;
        }
    }
    out.put_u8(b'}');
    Ok(())
}

/// Writes a scalar through serde_json, which escapes strings correctly and
/// formats numbers without allocating.
fn write_json<T: Serialize + ?Sized>(out: &mut BytesMut, value: &T) -> Result<(), EncodeError> {
    let mut serializer = serde_json::Serializer::new(out.writer());
    value
        .serialize(&mut serializer)
        .map_err(|e| EncodeError::Value(e.to_string()))
}

/// Writes `,"key":"value"`; `key` is one of this module's fixed names.
fn write_key_string(out: &mut BytesMut, key: &str, value: &str) -> Result<(), EncodeError> {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write_json(out, value)
}

fn write_required_id(out: &mut BytesMut, id: &str) -> Result<(), EncodeError> {
    if id.is_empty() {
        return Err(EncodeError::InvalidMessage(
            "the invocationId must be a non-empty string",
        ));
    }
    write_key_string(out, "invocationId", id)
}

fn write_headers(out: &mut BytesMut, headers: &Headers) -> Result<(), EncodeError> {
    if headers.is_empty() {
        return Ok(());
    }
    out.extend_from_slice(b",\"headers\":{");
    for (i, (name, value)) in headers.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        write_json(out, name.as_str())?;
        out.put_u8(b':');
        write_json(out, value.as_str())?;
    }
    out.put_u8(b'}');
    Ok(())
}

fn write_call(
    out: &mut BytesMut,
    target: &str,
    arguments: &[Payload],
    stream_ids: &[String],
) -> Result<(), EncodeError> {
    if target.is_empty() {
        // Every receiver rejects an empty target as missing.
        return Err(EncodeError::InvalidMessage(
            "the target must be a non-empty string",
        ));
    }
    write_key_string(out, "target", target)?;
    out.extend_from_slice(b",\"arguments\":[");
    for (i, argument) in arguments.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        argument.write_json(out)?;
    }
    out.put_u8(b']');
    if !stream_ids.is_empty() {
        out.extend_from_slice(b",\"streamIds\":[");
        for (i, id) in stream_ids.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            write_json(out, id.as_str())?;
        }
        out.put_u8(b']');
    }
    Ok(())
}

/// Fuzzing entry point: decodes `data` fed in two or three chunks, and
/// checks that every decoded message survives an encode/decode round trip,
/// and that the one-pass reader agrees with serde on every record it
/// accepts ([`check_fast_path_agrees`]).
///
/// Panics only when one of those checks fails, which is a bug.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let whole = Bytes::copy_from_slice(data);
    for record in whole.split(|&b| b == RECORD_SEPARATOR) {
        check_fast_path_agrees(&whole.slice_ref(record));
    }
    let mut decoder = JsonDecoder::new(Some(32 * 1024));
    let mut buffer = BytesMut::new();
    // Split points derived from the input, so the fuzzer explores them.
    let first = data.first().map_or(0, |&b| usize::from(b)) % (data.len() + 1);
    let second = first + (data.len() - first) / 2;
    for chunk in [&data[..first], &data[first..second], &data[second..]] {
        buffer.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(message)) => check_round_trip(&message),
                Ok(None) => break,
                // The connection would be closed here.
                Err(_) => return,
            }
        }
    }
}

/// The differential check of the one-pass reader: whenever
/// [`JsonRecordView::scan`] accepts `record` (one record without its
/// separator), the serde path reads the same message from it, with every
/// payload the same slice of the record. Returns whether the one-pass
/// reader accepted the record.
///
/// Panics when they disagree, which is a bug.
#[doc(hidden)]
pub fn check_fast_path_agrees(record: &Bytes) -> bool {
    let Some(view) = JsonRecordView::scan(record) else {
        return false;
    };
    let fast = view.fields().into_message(record);
    let reference = decode_record_with_serde(record);
    assert_eq!(
        fast,
        reference,
        "the one-pass reader and serde disagree on {:?}",
        String::from_utf8_lossy(record)
    );
    // Payloads compare equal by value; their bytes must be identical too.
    assert_eq!(
        format!("{fast:?}"),
        format!("{reference:?}"),
        "the one-pass reader and serde slice payloads differently in {:?}",
        String::from_utf8_lossy(record)
    );
    true
}

fn check_round_trip(message: &HubMessage) {
    let mut wire = BytesMut::new();
    if encode(message, &mut wire).is_err() {
        // Decoded messages are always representable; a failure to encode
        // one is a bug.
        panic!("a decoded message failed to encode: {message:?}");
    }
    let mut decoder = JsonDecoder::new(None);
    match decoder.decode(&mut wire) {
        Ok(Some(decoded)) => assert_eq!(&decoded, message, "round trip changed the message"),
        other => panic!("re-encoded message failed to decode: {other:?}"),
    }
}
