//! The handshake (`HubProtocol.md`, "Overview"): the first message in each
//! direction, always a JSON record ended by `0x1E`, whatever hub protocol
//! follows.
//!
//! ```text
//! C→S {"protocol":"json","version":1}␞
//! S→C {}␞                              (or {"error":"…"}␞, then the server closes)
//! ```
//!
//! The server side reads a [`HandshakeRequest`], picks the protocol with
//! [`HandshakeRequest::select_protocol`] and answers with a
//! [`HandshakeResponse`]; the texts of its error answers are those of the
//! .NET server ([`HandshakeRejection`]), since clients show them to users.
//!
//! ```
//! use bytes::BytesMut;
//! use hub_runtime::protocol::handshake::{HandshakeRequest, HandshakeResponse};
//! use hub_runtime::protocol::{HubProtocol, TransferFormat};
//!
//! let mut input = BytesMut::from(&b"{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e"[..]);
//! let request = HandshakeRequest::decode(&mut input, Some(32 * 1024)).unwrap().unwrap();
//! assert_eq!(request.select_protocol(&[TransferFormat::Text]), Ok(HubProtocol::Json));
//! assert_eq!(&input[..], b"{\"type\":6}\x1e"); // left for the hub protocol
//!
//! let mut output = BytesMut::new();
//! HandshakeResponse::success().encode(&mut output);
//! assert_eq!(&output[..], b"{}\x1e");
//! ```

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use thiserror::Error;

use super::{HubProtocol, RECORD_SEPARATOR, TransferFormat};

/// The client's handshake request: which hub protocol it will speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// `protocol`: the hub protocol's name, `json` or `messagepack`
    /// (matched case-insensitively).
    pub protocol: String,
    /// `version`: 1, or 2 to turn stateful reconnect on.
    pub version: i32,
}

/// The server's handshake response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeResponse {
    /// `error`: why the handshake failed; `None` on success.
    pub error: Option<String>,
}

/// Why a handshake message could not be read.
///
/// The texts are the .NET ones where .NET has one. A server does not send
/// these texts to the client: it answers with
/// [`HandshakeError::rejection`], as the .NET server does.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request has no `protocol` (or it is `null`).
    #[error("Missing required property 'protocol'. Message content: {content}")]
    MissingProtocol {
        /// The record as text, for diagnostics.
        content: String,
    },
    /// The request has no `version` (or it is `null`).
    #[error("Missing required property 'version'. Message content: {content}")]
    MissingVersion {
        /// The record as text, for diagnostics.
        content: String,
    },
    /// A property has the wrong JSON type (`protocol` or `error` not a
    /// string, `version` not a 32-bit integer).
    #[error("Expected '{field}' to be of type {expected}.")]
    WrongFieldType {
        /// The property name.
        field: &'static str,
        /// The JSON type it must have.
        expected: &'static str,
    },
    /// No separator within the size limit.
    #[error("The maximum message size of {limit}B was exceeded.")]
    TooLarge {
        /// The configured maximum, in bytes.
        limit: usize,
    },
    /// The record is not valid UTF-8.
    #[error("Invalid UTF-8 in handshake message.")]
    InvalidUtf8,
    /// The record is not a JSON object.
    #[error("Error reading JSON: {0}")]
    InvalidJson(String),
    /// A client received something with a `type` property — a hub message,
    /// not a handshake response.
    #[error("Expected a handshake response from the server.")]
    UnexpectedMessage,
}

impl HandshakeError {
    /// The answer a server sends for a request that failed to parse:
    /// [`HandshakeRejection::Canceled`] for an oversized request (as .NET
    /// does), [`HandshakeRejection::Unexpected`] otherwise, with this
    /// error's text appended when `detailed` (.NET's `EnableDetailedErrors`).
    pub fn rejection(&self, detailed: bool) -> HandshakeRejection {
        match self {
            HandshakeError::TooLarge { .. } => HandshakeRejection::Canceled,
            _ => HandshakeRejection::Unexpected {
                detail: detailed.then(|| format!("InvalidDataException: {self}")),
            },
        }
    }
}

/// Why a server refuses a handshake. `Display` gives the exact text of the
/// .NET server, which clients show to users.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeRejection {
    /// No protocol has this name.
    #[error("The protocol '{protocol}' is not supported.")]
    UnsupportedProtocol {
        /// The name the client asked for, as sent.
        protocol: String,
    },
    /// The protocol exists, but not in this version.
    #[error("The server does not support version {version} of the '{protocol}' protocol.")]
    UnsupportedVersion {
        /// The name the client asked for, as sent.
        protocol: String,
        /// The version the client asked for.
        version: i32,
    },
    /// The transport cannot carry the protocol (MessagePack over
    /// Server-Sent Events).
    #[error(
        "Cannot use the '{}' protocol on the current transport. The transport does not support '{}' transfer format.",
        .protocol.name(),
        .protocol.transfer_format().name()
    )]
    UnsupportedTransferFormat {
        /// The protocol the client asked for.
        protocol: HubProtocol,
    },
    /// The handshake timed out, was too large, or the connection went away.
    #[error("Handshake was canceled.")]
    Canceled,
    /// The request could not be read.
    #[error(
        "An unexpected error occurred during connection handshake.{}",
        detail_suffix(.detail)
    )]
    Unexpected {
        /// Appended after a space when detailed errors are on, as
        /// `{ExceptionType}: {message}`.
        detail: Option<String>,
    },
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|d| format!(" {d}"))
        .unwrap_or_default()
}

impl HandshakeRejection {
    /// The response carrying this rejection's text.
    pub fn response(&self) -> HandshakeResponse {
        HandshakeResponse::failure(self.to_string())
    }
}

impl HandshakeRequest {
    /// A request for `protocol` in `version`.
    pub fn new(protocol: HubProtocol, version: i32) -> Self {
        HandshakeRequest {
            protocol: protocol.name().to_owned(),
            version,
        }
    }

    /// Takes exactly one record off the front of `buffer` and reads it as a
    /// handshake request; whatever follows stays in the buffer for the hub
    /// protocol. `Ok(None)` when no whole record is there yet.
    ///
    /// The record, separator included, may be at most `max_size` bytes; a
    /// buffer holding more than that without a separator is an error.
    pub fn decode(
        buffer: &mut BytesMut,
        max_size: Option<usize>,
    ) -> Result<Option<HandshakeRequest>, HandshakeError> {
        let Some(record) = take_record(buffer, max_size)? else {
            return Ok(None);
        };
        let text = object_text(&record)?;
        let raw: RawRequest<'_> =
            serde_json::from_str(text).map_err(|e| HandshakeError::InvalidJson(e.to_string()))?;
        let protocol = match raw.protocol {
            None => {
                return Err(HandshakeError::MissingProtocol {
                    content: text.to_owned(),
                });
            }
            Some(raw) => serde_json::from_str::<String>(raw.get()).map_err(|_| {
                HandshakeError::WrongFieldType {
                    field: "protocol",
                    expected: "String",
                }
            })?,
        };
        let version = match raw.version {
            None => {
                return Err(HandshakeError::MissingVersion {
                    content: text.to_owned(),
                });
            }
            // An integer token parses as i32 directly; a string, a fraction
            // or an out-of-range number does not, as with .NET's ReadAsInt32.
            Some(raw) => raw
                .get()
                .parse::<i32>()
                .map_err(|_| HandshakeError::WrongFieldType {
                    field: "version",
                    expected: "Number",
                })?,
        };
        Ok(Some(HandshakeRequest { protocol, version }))
    }

    /// Appends `{"protocol":"…","version":N}` and the separator to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.extend_from_slice(b"{\"protocol\":");
        write_string(out, &self.protocol);
        out.extend_from_slice(b",\"version\":");
        write_json(out, &self.version);
        out.extend_from_slice(b"}\x1e");
    }

    /// The server's decision: the protocol to speak, or why not.
    ///
    /// `supported_formats` are the transfer formats the transport can carry:
    /// `[Text, Binary]` for WebSockets and Long Polling, `[Text]` for
    /// Server-Sent Events. The rules are the .NET server's: the name is
    /// matched case-insensitively, any `version` up to
    /// [`HubProtocol::version`] is accepted (.NET's `IsVersionSupported` is
    /// `version <= 2`, so 0 and negative versions pass too), and the
    /// protocol's transfer format must be one the transport supports.
    pub fn select_protocol(
        &self,
        supported_formats: &[TransferFormat],
    ) -> Result<HubProtocol, HandshakeRejection> {
        let Some(protocol) = HubProtocol::from_name(&self.protocol) else {
            return Err(HandshakeRejection::UnsupportedProtocol {
                protocol: self.protocol.clone(),
            });
        };
        if self.version > protocol.version() {
            return Err(HandshakeRejection::UnsupportedVersion {
                protocol: self.protocol.clone(),
                version: self.version,
            });
        }
        if !supported_formats.contains(&protocol.transfer_format()) {
            return Err(HandshakeRejection::UnsupportedTransferFormat { protocol });
        }
        Ok(protocol)
    }

    /// Whether this request turns stateful reconnect on (when negotiate also
    /// agreed to it): only version 2 and above do.
    pub fn wants_stateful_reconnect(&self) -> bool {
        self.version >= 2
    }
}

impl HandshakeResponse {
    /// The success response, `{}`.
    pub fn success() -> Self {
        HandshakeResponse { error: None }
    }

    /// A failure response carrying `error`.
    pub fn failure(error: impl Into<String>) -> Self {
        HandshakeResponse {
            error: Some(error.into()),
        }
    }

    /// Appends the response and the separator to `out`: exactly `{}` on
    /// success, `{"error":"…"}` on failure (an empty error counts as
    /// success, as in .NET).
    pub fn encode(&self, out: &mut BytesMut) {
        match self.error.as_deref().filter(|e| !e.is_empty()) {
            None => out.extend_from_slice(b"{}"),
            Some(error) => {
                out.extend_from_slice(b"{\"error\":");
                write_string(out, error);
                out.put_u8(b'}');
            }
        }
        out.put_u8(RECORD_SEPARATOR);
    }

    /// Client side: takes exactly one record off the front of `buffer` and
    /// reads it as the handshake response; `Ok(None)` when no whole record
    /// is there yet. Unknown properties are ignored; a `type` property
    /// means the server sent a hub message instead
    /// ([`HandshakeError::UnexpectedMessage`]).
    pub fn decode(buffer: &mut BytesMut) -> Result<Option<HandshakeResponse>, HandshakeError> {
        let Some(record) = take_record(buffer, None)? else {
            return Ok(None);
        };
        let text = object_text(&record)?;
        let raw: RawResponse<'_> =
            serde_json::from_str(text).map_err(|e| HandshakeError::InvalidJson(e.to_string()))?;
        if raw.kind.is_some() {
            return Err(HandshakeError::UnexpectedMessage);
        }
        let error = match raw.error {
            None => None,
            Some(raw) if raw.get() == "null" => None,
            Some(raw) => Some(serde_json::from_str::<String>(raw.get()).map_err(|_| {
                HandshakeError::WrongFieldType {
                    field: "error",
                    expected: "String",
                }
            })?),
        };
        Ok(Some(HandshakeResponse { error }))
    }
}

/// `null` counts as missing, as .NET's `ReadAsString`/`ReadAsInt32` do.
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow, default)]
    protocol: Option<&'a RawValue>,
    #[serde(borrow, default)]
    version: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawResponse<'a> {
    /// Any `type` key, even `null`, marks a hub message.
    #[serde(rename = "type", borrow, default, deserialize_with = "present")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(deserializer).map(Some)
}

/// Splits the first record, without its separator, off `buffer`.
fn take_record(
    buffer: &mut BytesMut,
    max_size: Option<usize>,
) -> Result<Option<BytesMut>, HandshakeError> {
    let window = max_size.map_or(buffer.len(), |limit| buffer.len().min(limit));
    match buffer[..window].iter().position(|&b| b == RECORD_SEPARATOR) {
        Some(end) => {
            let mut record = buffer.split_to(end + 1);
            record.truncate(end);
            Ok(Some(record))
        }
        None => match max_size {
            Some(limit) if buffer.len() > limit => Err(HandshakeError::TooLarge { limit }),
            _ => Ok(None),
        },
    }
}

/// The record as text, checked to be a JSON object (serde's derived struct
/// visitor would also take an array).
fn object_text(record: &[u8]) -> Result<&str, HandshakeError> {
    let text = std::str::from_utf8(record).map_err(|_| HandshakeError::InvalidUtf8)?;
    match text.bytes().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(text),
        _ => Err(HandshakeError::InvalidJson(
            "a handshake message must be a JSON object".into(),
        )),
    }
}

fn write_string(out: &mut BytesMut, value: &str) {
    write_json(out, value);
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut BytesMut, value: &T) {
    let mut serializer = serde_json::Serializer::new(out.writer());
    // Serializing a string or an integer into memory cannot fail: BytesMut's
    // writer never errors and both are always representable in JSON.
    let _ = value.serialize(&mut serializer);
}

/// Fuzzing entry point: reads `data` as a handshake request (with a 32 KB
/// limit) and as a handshake response, and re-encodes what decodes. Never
/// panics unless a re-encoded message fails to decode identically.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let mut buffer = BytesMut::from(data);
    if let Ok(Some(request)) = HandshakeRequest::decode(&mut buffer, Some(32 * 1024)) {
        let mut wire = BytesMut::new();
        request.encode(&mut wire);
        let again = HandshakeRequest::decode(&mut wire, None);
        assert_eq!(again, Ok(Some(request)), "handshake request round trip");
    }
    let mut buffer = BytesMut::from(data);
    if let Ok(Some(response)) = HandshakeResponse::decode(&mut buffer) {
        let mut wire = BytesMut::new();
        response.encode(&mut wire);
        let again = HandshakeResponse::decode(&mut wire);
        // An empty error is written as success.
        let expected = HandshakeResponse {
            error: response.error.filter(|e| !e.is_empty()),
        };
        assert_eq!(again, Ok(Some(expected)), "handshake response round trip");
    }
}
