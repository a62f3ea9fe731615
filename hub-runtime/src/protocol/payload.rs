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
}

impl Payload {
    /// A payload holding `value`, serialized when a protocol writes it.
    pub fn from_value<T>(value: T) -> Self
    where
        T: Serialize + Send + Sync + 'static,
    {
        Payload {
            repr: Repr::Value(Arc::new(value)),
        }
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
            Repr::Value(_) => {
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
            Repr::Value(_) => match self.to_json_value() {
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
