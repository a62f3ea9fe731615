//! [`Payload`]: one argument, stream item or result, kept encoded.

use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{EncodeError, PayloadError};

/// One value of a hub message — an argument, a stream item or a result.
///
/// A payload that was *received* keeps the exact bytes of the value as they
/// arrived (a slice of the record's buffer, no copy): it is deserialized
/// once, by [`Payload::deserialize`], straight into the type the receiver
/// wants. A payload that is *sent* holds the Rust value itself and is
/// serialized by whichever hub protocol writes it, so that one broadcast is
/// encoded once per protocol in use, not once per connection.
///
/// ```
/// use hub_runtime::protocol::Payload;
///
/// let sent = Payload::from_value(42_i64);
/// assert_eq!(sent.deserialize::<i64>().unwrap(), 42);
/// ```
#[derive(Clone)]
pub struct Payload {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// The UTF-8 text of one JSON value, already validated by the decoder.
    Json(Bytes),
    /// One complete MessagePack value, already delimited by the decoder.
    MessagePack(Bytes),
    /// A Rust value waiting to be serialized by the protocol that sends it.
    Value(Arc<dyn erased_serde::Serialize + Send + Sync>),
    /// A string or scalar waiting to be serialized, held without the
    /// `Arc` of [`Repr::Value`]: most results are one (`()` too), and that
    /// allocation was one of the few an echo call takes.
    Inline(Inline),
}

/// The values [`Payload::from_value`] holds inline, each serialized exactly
/// as its Rust type is (the same serde call).
#[derive(Clone)]
enum Inline {
    Unit,
    Bool(bool),
    I32(i32),
    I64(i64),
    U32(u32),
    U64(u64),
    F64(f64),
    /// A `String`'s bytes: taken over without a copy, and shared by clones
    /// (a broadcast's payload is cloned per protocol writer).
    Text(Bytes),
}

impl Inline {
    /// `value` itself when it is one of the inline types, or back.
    fn try_from_value<T: 'static>(value: T) -> Result<Inline, T> {
        let mut slot = Some(value);
        let inline = take::<T, String>(&mut slot)
            .map(|text| Inline::Text(Bytes::from(text)))
            .or_else(|| take::<T, ()>(&mut slot).map(|()| Inline::Unit))
            .or_else(|| take::<T, bool>(&mut slot).map(Inline::Bool))
            .or_else(|| take::<T, i32>(&mut slot).map(Inline::I32))
            .or_else(|| take::<T, i64>(&mut slot).map(Inline::I64))
            .or_else(|| take::<T, u32>(&mut slot).map(Inline::U32))
            .or_else(|| take::<T, u64>(&mut slot).map(Inline::U64))
            .or_else(|| take::<T, f64>(&mut slot).map(Inline::F64));
        match (inline, slot) {
            (Some(inline), _) => Ok(inline),
            (None, Some(value)) => Err(value),
            // Nothing took the value, so it is still there.
            (None, None) => Ok(Inline::Unit),
        }
    }
}

/// The value in `slot` when `T` is `U` (a type-id comparison that the
/// compiler folds away per `T`).
fn take<T: 'static, U: 'static>(slot: &mut Option<T>) -> Option<U> {
    (slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
}

impl Serialize for Inline {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Inline::Unit => serializer.serialize_unit(),
            Inline::Bool(value) => serializer.serialize_bool(*value),
            Inline::I32(value) => serializer.serialize_i32(*value),
            Inline::I64(value) => serializer.serialize_i64(*value),
            Inline::U32(value) => serializer.serialize_u32(*value),
            Inline::U64(value) => serializer.serialize_u64(*value),
            Inline::F64(value) => serializer.serialize_f64(*value),
            // Valid UTF-8 (it was a `String`): the check is one fast pass.
            Inline::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => serializer.serialize_str(text),
                Err(error) => Err(serde::ser::Error::custom(error)),
            },
        }
    }
}

impl Payload {
    /// A payload holding `value`, serialized when a protocol writes it.
    pub fn from_value<T>(value: T) -> Self
    where
        T: Serialize + Send + Sync + 'static,
    {
        let repr = match Inline::try_from_value(value) {
            Ok(inline) => Repr::Inline(inline),
            Err(value) => Repr::Value(Arc::new(value)),
        };
        Payload { repr }
    }

    /// The JSON `null` / MessagePack `nil` value.
    pub fn null() -> Self {
        Payload::from_value(())
    }

    /// A payload from the text of one JSON value.
    ///
    /// The JSON decoder calls this with slices of the record it has already
    /// parsed. Bytes that are not one valid JSON value make the message that
    /// carries them invalid JSON when it is written.
    pub fn from_json_bytes(bytes: Bytes) -> Self {
        Payload {
            repr: Repr::Json(bytes),
        }
    }

    /// A payload from the bytes of one MessagePack value.
    ///
    /// The MessagePack decoder calls this with slices of the message it has
    /// already delimited.
    pub fn from_msgpack_bytes(bytes: Bytes) -> Self {
        Payload {
            repr: Repr::MessagePack(bytes),
        }
    }

    /// The raw JSON text, when this payload arrived over the JSON protocol.
    pub fn as_json_bytes(&self) -> Option<&Bytes> {
        match &self.repr {
            Repr::Json(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The raw MessagePack bytes, when this payload arrived over MessagePack.
    pub fn as_msgpack_bytes(&self) -> Option<&Bytes> {
        match &self.repr {
            Repr::MessagePack(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Deserializes the value into `T`.
    ///
    /// A received payload is read straight from its bytes. A payload built by
    /// [`Payload::from_value`] is round-tripped through JSON, which only
    /// in-process delivery (tests, loopback) ever needs.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        match &self.repr {
            Repr::Json(bytes) => {
                serde_json::from_slice(bytes).map_err(|e| PayloadError::new(e.to_string()))
            }
            Repr::MessagePack(bytes) => T::deserialize(&mut msgpack_deserializer(bytes))
                .map_err(|e| PayloadError::new(e.to_string())),
            Repr::Value(_) | Repr::Inline(_) => {
                let mut buf = BytesMut::new();
                self.write_json(&mut buf)
                    .map_err(|e| PayloadError::new(e.to_string()))?;
                serde_json::from_slice(&buf).map_err(|e| PayloadError::new(e.to_string()))
            }
        }
    }

    /// Appends the value as JSON text.
    ///
    /// A received MessagePack payload is transcoded value by value. The
    /// MessagePack extension types have no JSON form: a timestamp arrives as
    /// `[-1, [bytes…]]`. Typed code never sees that, since it deserializes
    /// into [`crate::Timestamp`] first and serializes that for each protocol.
    pub fn write_json(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match &self.repr {
            Repr::Json(bytes) => {
                out.extend_from_slice(bytes);
                Ok(())
            }
            Repr::MessagePack(bytes) => {
                let mut de = msgpack_deserializer(bytes);
                let mut ser = serde_json::Serializer::new(out.writer());
                serde_transcode::transcode(&mut de, &mut ser)
                    .map_err(|e| EncodeError::Value(e.to_string()))
            }
            Repr::Value(value) => {
                let mut ser = serde_json::Serializer::new(out.writer());
                erased_serde::serialize(value.as_ref(), &mut ser)
                    .map_err(|e| EncodeError::Value(e.to_string()))
            }
            Repr::Inline(value) => {
                let mut ser = serde_json::Serializer::new(out.writer());
                value
                    .serialize(&mut ser)
                    .map_err(|e| EncodeError::Value(e.to_string()))
            }
        }
    }

    /// Appends the value as one MessagePack value.
    pub fn write_msgpack(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match &self.repr {
            Repr::MessagePack(bytes) => {
                out.extend_from_slice(bytes);
                Ok(())
            }
            Repr::Json(bytes) => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                let mut ser = rmp_serde::Serializer::new(out.writer()).with_struct_map();
                serde_transcode::transcode(&mut de, &mut ser)
                    .map_err(|e| EncodeError::Value(e.to_string()))
            }
            Repr::Value(value) => {
                // Structs as maps keyed by field name, as MessagePack-CSharp's
                // contractless resolver and the JS client expect.
                let mut ser = rmp_serde::Serializer::new(out.writer()).with_struct_map();
                erased_serde::serialize(value.as_ref(), &mut ser)
                    .map_err(|e| EncodeError::Value(e.to_string()))
            }
            Repr::Inline(value) => {
                let mut ser = rmp_serde::Serializer::new(out.writer());
                value
                    .serialize(&mut ser)
                    .map_err(|e| EncodeError::Value(e.to_string()))
            }
        }
    }

    /// The value as a `serde_json::Value`, for comparisons and diagnostics.
    pub fn to_json_value(&self) -> Result<serde_json::Value, PayloadError> {
        let mut buf = BytesMut::new();
        self.write_json(&mut buf)
            .map_err(|e| PayloadError::new(e.to_string()))?;
        serde_json::from_slice(&buf).map_err(|e| PayloadError::new(e.to_string()))
    }
}

/// How deep a MessagePack value may nest when it is read: the decoder
/// already refuses deeper values, and serde_json's recursion limit is the
/// same, so both protocols accept the same depth. rmp-serde's own default
/// (1024) overflows a 2 MB stack before it is reached. rmp-serde counts
/// the innermost scalar as a level too, hence the margin over 128.
const MAX_MSGPACK_DEPTH: usize = 130;

fn msgpack_deserializer(
    bytes: &[u8],
) -> rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'_, [u8]>> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_MSGPACK_DEPTH);
    de
}

impl Default for Payload {
    fn default() -> Self {
        Payload::null()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Json(bytes) => write!(f, "Json({})", String::from_utf8_lossy(bytes)),
            Repr::MessagePack(bytes) => write!(f, "MessagePack({bytes:02x?})"),
            Repr::Value(_) | Repr::Inline(_) => match self.to_json_value() {
                Ok(value) => write!(f, "Value({value})"),
                Err(_) => f.write_str("Value(<not representable as JSON>)"),
            },
        }
    }
}

/// Two payloads are equal when they hold the same value, whatever their
/// encoding: identical bytes in the same encoding, or the same value once
/// both are read as JSON.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Json(a), Repr::Json(b)) if a == b => true,
            (Repr::MessagePack(a), Repr::MessagePack(b)) if a == b => true,
            _ => match (self.to_json_value(), other.to_json_value()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `value` is as JSON and as MessagePack through its payload.
    fn written<T: Serialize + Send + Sync + 'static>(value: T) -> (Vec<u8>, Vec<u8>) {
        let payload = Payload::from_value(value);
        let mut json = BytesMut::new();
        let mut msgpack = BytesMut::new();
        payload
            .write_json(&mut json)
            .unwrap_or_else(|e| panic!("JSON: {e}"));
        payload
            .write_msgpack(&mut msgpack)
            .unwrap_or_else(|e| panic!("MessagePack: {e}"));
        (json.to_vec(), msgpack.to_vec())
    }

    fn serde_forms<T: Serialize>(value: &T) -> (Vec<u8>, Vec<u8>) {
        let json = serde_json::to_vec(value).unwrap_or_else(|e| panic!("serde_json: {e}"));
        let msgpack = rmp_serde::to_vec(value).unwrap_or_else(|e| panic!("rmp_serde: {e}"));
        (json, msgpack)
    }

    #[test]
    fn inline_values_are_written_as_serde_writes_their_type() {
        macro_rules! check {
            ($($value:expr),* $(,)?) => {$(
                assert_eq!(
                    written($value),
                    serde_forms(&$value),
                    "a payload of {:?} is written as serde writes its type",
                    $value
                );
            )*};
        }
        check!(
            (),
            true,
            -7_i32,
            i64::MIN,
            u32::MAX,
            u64::MAX,
            1.5_f64,
            String::from("héllo \"quoted\""),
            String::new(),
            // Not inline: held behind the Arc as before.
            1.1_f32,
            vec![1_u8, 2],
            Some(String::from("x")),
        );
    }

    #[test]
    fn inline_values_read_back_and_compare() {
        let text = Payload::from_value(String::from("echo"));
        assert_eq!(
            text.deserialize::<String>().ok().as_deref(),
            Some("echo"),
            "an inline string reads back"
        );
        assert_eq!(
            text,
            Payload::from_json_bytes(Bytes::from_static(b"\"echo\"")),
            "an inline string equals the received JSON of the same string"
        );
        assert_eq!(
            Payload::null().to_json_value().ok(),
            Some(serde_json::Value::Null),
            "null is JSON null"
        );
        assert_eq!(
            format!("{:?}", Payload::from_value(42_i64)),
            "Value(42)",
            "an inline value's Debug shows the value"
        );
    }
}
