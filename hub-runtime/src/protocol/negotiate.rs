//! The `/negotiate` exchange (`TransportProtocols.md`): the client's query
//! parameters and the server's JSON answer.
//!
//! ```text
//! C→S POST {base}/negotiate?negotiateVersion=1[&useStatefulReconnect=true]
//! S→C {"negotiateVersion":1,"connectionId":"…","connectionToken":"…","availableTransports":[…]}
//! ```
//!
//! A response has one of three shapes — a connection, a redirect (as Azure
//! SignalR Service sends), or an error — modelled by [`NegotiateResponse`].
//! Errors are answered with HTTP 200 and `{"error":"…"}`, which is what the
//! JS client shows to its user.
//!
//! ```
//! use hub_runtime::protocol::negotiate::{
//!     AvailableTransport, NegotiateConnection, NegotiateRequest, NegotiateResponse, TransportType,
//! };
//!
//! let request = NegotiateRequest::from_query("negotiateVersion=1").unwrap();
//! let response = NegotiateResponse::Connection(NegotiateConnection {
//!     negotiate_version: request.negotiate_version,
//!     connection_id: "id".into(),
//!     connection_token: Some("token".into()),
//!     available_transports: vec![AvailableTransport::new(TransportType::WebSockets)],
//!     use_stateful_reconnect: false,
//! });
//! assert_eq!(
//!     response.to_json_string(),
//!     r#"{"negotiateVersion":1,"connectionId":"id","connectionToken":"token","availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}"#
//! );
//! assert_eq!(NegotiateResponse::from_slice(response.to_json_string().as_bytes()).unwrap(), response);
//! ```

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use thiserror::Error;

use super::TransferFormat;

/// The highest negotiate version this crate speaks; higher requests are
/// clamped to it, as the .NET server does.
pub const MAX_NEGOTIATE_VERSION: u32 = 1;

/// What went wrong in a negotiation. `Display` gives the .NET server's or
/// the JS client's exact text.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiateError {
    /// `negotiateVersion` is not a 32-bit integer.
    #[error("The client requested a non-integer protocol version.")]
    NonIntegerVersion,
    /// The client asked for a version below the server's minimum (any
    /// negative version, with the default minimum of 0).
    #[error("The client requested version '{0}', but the server does not support this version.")]
    UnsupportedVersion(i64),
    /// Client side: the response has a `ProtocolVersion` property, which is
    /// how classic ASP.NET SignalR servers answer.
    #[error(
        "Detected a connection attempt to an ASP.NET SignalR Server. This client only supports connecting to an ASP.NET Core SignalR Server. See https://aka.ms/signalr-core-differences for details."
    )]
    ClassicSignalRServer,
    /// Client side: the server turned stateful reconnect on although the
    /// client did not ask for it.
    #[error("Client didn't negotiate Stateful Reconnect but the server did.")]
    UnrequestedStatefulReconnect,
    /// Client side: a required property of the response is missing.
    #[error("Missing required property '{0}'.")]
    MissingField(&'static str),
    /// Client side: the response is not the JSON object it should be.
    #[error("Invalid negotiation response received: {0}")]
    InvalidJson(String),
}

impl NegotiateError {
    /// The `{"error":"…"}` response carrying this error's text, for the
    /// server-side errors.
    pub fn response(&self) -> NegotiateResponse {
        NegotiateResponse::Error(self.to_string())
    }
}

/// The query parameters of a negotiate request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NegotiateRequest {
    /// `negotiateVersion`, 0 when absent, clamped to
    /// [`MAX_NEGOTIATE_VERSION`].
    pub negotiate_version: u32,
    /// `useStatefulReconnect=true`.
    pub use_stateful_reconnect: bool,
}

impl NegotiateRequest {
    /// Reads the query string of a negotiate request (without the `?`),
    /// following the .NET server: keys match case-insensitively, values are
    /// percent-decoded, unknown keys are ignored, a missing
    /// `negotiateVersion` is version 0, one above
    /// [`MAX_NEGOTIATE_VERSION`] is clamped, a negative one is refused and a
    /// key given twice has its values joined with `,` (so it is no longer
    /// an integer or a boolean).
    pub fn from_query(query: &str) -> Result<Self, NegotiateError> {
        let mut version: Option<String> = None;
        let mut stateful: Option<String> = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            let slot = if key.eq_ignore_ascii_case("negotiateVersion") {
                &mut version
            } else if key.eq_ignore_ascii_case("useStatefulReconnect") {
                &mut stateful
            } else {
                continue;
            };
            let value = percent_decode(value);
            match slot {
                Some(previous) => {
                    previous.push(',');
                    previous.push_str(&value);
                }
                None => *slot = Some(value),
            }
        }

        let negotiate_version = match version {
            None => 0,
            Some(text) => {
                // .NET's int.TryParse: surrounding whitespace and a sign are
                // allowed, anything outside i32 is not an integer.
                let requested: i32 = text
                    .trim()
                    .parse()
                    .map_err(|_| NegotiateError::NonIntegerVersion)?;
                if requested < 0 {
                    return Err(NegotiateError::UnsupportedVersion(requested.into()));
                }
                u32::try_from(requested)
                    .unwrap_or(MAX_NEGOTIATE_VERSION)
                    .min(MAX_NEGOTIATE_VERSION)
            }
        };
        let use_stateful_reconnect =
            stateful.is_some_and(|text| text.trim().eq_ignore_ascii_case("true"));
        Ok(NegotiateRequest {
            negotiate_version,
            use_stateful_reconnect,
        })
    }

    /// Refuses a request below the server's minimum version (the .NET
    /// option `MinimumProtocolVersion`, 0 by default).
    pub fn check_minimum_version(&self, minimum: u32) -> Result<(), NegotiateError> {
        if self.negotiate_version < minimum {
            return Err(NegotiateError::UnsupportedVersion(
                self.negotiate_version.into(),
            ));
        }
        Ok(())
    }

    /// The query string a client sends, without the `?`:
    /// `negotiateVersion=N`, plus `&useStatefulReconnect=true` when asked.
    pub fn to_query(&self) -> String {
        let mut query = format!("negotiateVersion={}", self.negotiate_version);
        if self.use_stateful_reconnect {
            query.push_str("&useStatefulReconnect=true");
        }
        query
    }
}

/// Decodes `%XX` escapes and `+` (a space in query strings). Malformed
/// escapes are kept as they are, and invalid UTF-8 becomes U+FFFD, as
/// ASP.NET Core does.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A transport, by its exact, case-sensitive wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportType {
    /// `WebSockets`: full duplex.
    WebSockets,
    /// `ServerSentEvents`: server to client, with POSTs the other way.
    ServerSentEvents,
    /// `LongPolling`: polls, with POSTs the other way.
    LongPolling,
}

impl TransportType {
    /// Every transport, in the order the .NET server lists them.
    pub const ALL: [TransportType; 3] = [
        TransportType::WebSockets,
        TransportType::ServerSentEvents,
        TransportType::LongPolling,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            TransportType::WebSockets => "WebSockets",
            TransportType::ServerSentEvents => "ServerSentEvents",
            TransportType::LongPolling => "LongPolling",
        }
    }

    /// The transport with exactly this name (case-sensitive, as in the JS
    /// client).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The transfer formats the transport can carry: Server-Sent Events
    /// are text only.
    pub fn transfer_formats(self) -> &'static [TransferFormat] {
        match self {
            TransportType::ServerSentEvents => &[TransferFormat::Text],
            TransportType::WebSockets | TransportType::LongPolling => {
                &[TransferFormat::Text, TransferFormat::Binary]
            }
        }
    }
}

fn transfer_format_from_name(name: &str) -> Option<TransferFormat> {
    [TransferFormat::Text, TransferFormat::Binary]
        .into_iter()
        .find(|f| f.name() == name)
}

/// One entry of `availableTransports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailableTransport {
    /// `transport`
    pub transport: TransportType,
    /// `transferFormats`
    pub transfer_formats: Vec<TransferFormat>,
}

impl AvailableTransport {
    /// The entry for `transport` with every format it supports, as the .NET
    /// server lists it.
    pub fn new(transport: TransportType) -> Self {
        AvailableTransport {
            transport,
            transfer_formats: transport.transfer_formats().to_vec(),
        }
    }
}

/// The normal negotiate answer: a connection was created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NegotiateConnection {
    /// `negotiateVersion`: 0 or 1.
    pub negotiate_version: u32,
    /// `connectionId`: public, how other code addresses the connection.
    pub connection_id: String,
    /// `connectionToken`: the secret `id=` of every transport request.
    /// Written only for version 1 and above; version 0 uses the id instead.
    pub connection_token: Option<String>,
    /// `availableTransports`, in the order the client should try them.
    pub available_transports: Vec<AvailableTransport>,
    /// `useStatefulReconnect`, written only when `true`.
    pub use_stateful_reconnect: bool,
}

impl NegotiateConnection {
    /// The value for the `id=` query parameter of transport requests: the
    /// token, or for version 0 (or a token-less answer) the connection id,
    /// as the JS client does.
    pub fn token(&self) -> &str {
        match &self.connection_token {
            Some(token) if self.negotiate_version >= 1 => token,
            _ => &self.connection_id,
        }
    }

    /// Client side: refuses a response that turned stateful reconnect on
    /// when the client did not ask for it.
    pub fn check_stateful_reconnect(&self, requested: bool) -> Result<(), NegotiateError> {
        if self.use_stateful_reconnect && !requested {
            return Err(NegotiateError::UnrequestedStatefulReconnect);
        }
        Ok(())
    }
}

/// A redirect: negotiate again at `url`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NegotiateRedirect {
    /// `url`: the new base URL.
    pub url: String,
    /// `accessToken`: the bearer token to use from now on.
    pub access_token: Option<String>,
}

/// A negotiate response body, in any of its three shapes.
///
/// Serialization writes the .NET server's field order; deserialization (for
/// the client) ignores unknown properties and unknown transport or format
/// names, and refuses a classic ASP.NET SignalR answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiateResponse {
    /// A connection was created.
    Connection(NegotiateConnection),
    /// Negotiate again elsewhere.
    Redirect(NegotiateRedirect),
    /// `{"error":"…"}`: the negotiation failed; the text is shown to users.
    Error(String),
}

impl NegotiateResponse {
    /// The response as JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        // A connection answer is about 250 bytes: one allocation, not the
        // doubling steps from an empty buffer. Only strings, integers and
        // booleans are written, all of which serde_json writes infallibly.
        let mut body = Vec::with_capacity(320);
        let _ = serde_json::to_writer(&mut body, self);
        body
    }

    /// The response as a JSON string.
    pub fn to_json_string(&self) -> String {
        // Only strings, integers and booleans are written, all of which
        // serde_json serializes infallibly.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a response body, as a client does.
    pub fn from_slice(body: &[u8]) -> Result<Self, NegotiateError> {
        serde_json::from_slice::<RawResponse>(body)
            .map_err(|e| NegotiateError::InvalidJson(e.to_string()))?
            .into_response()
    }
}

struct Transports<'a>(&'a [AvailableTransport]);

impl Serialize for Transports<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(TransportEntry))
    }
}

struct TransportEntry<'a>(&'a AvailableTransport);

/// The names of transfer formats as a JSON array, written without
/// collecting them first (negotiate answers are on the connect path).
struct FormatNames<'a>(&'a [TransferFormat]);

impl Serialize for FormatNames<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|format| format.name()))
    }
}

impl Serialize for TransportEntry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("transport", self.0.transport.name())?;
        map.serialize_entry("transferFormats", &FormatNames(&self.0.transfer_formats))?;
        map.end()
    }
}

impl Serialize for NegotiateResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            NegotiateResponse::Connection(c) => {
                if c.use_stateful_reconnect {
                    map.serialize_entry("useStatefulReconnect", &true)?;
                }
                map.serialize_entry("negotiateVersion", &c.negotiate_version)?;
                map.serialize_entry("connectionId", &c.connection_id)?;
                if c.negotiate_version >= 1
                    && let Some(token) = &c.connection_token
                {
                    map.serialize_entry("connectionToken", token)?;
                }
                map.serialize_entry("availableTransports", &Transports(&c.available_transports))?;
            }
            NegotiateResponse::Redirect(r) => {
                map.serialize_entry("url", &r.url)?;
                if let Some(token) = &r.access_token {
                    map.serialize_entry("accessToken", token)?;
                }
            }
            NegotiateResponse::Error(error) => map.serialize_entry("error", error)?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for NegotiateResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawResponse::deserialize(deserializer)?
            .into_response()
            .map_err(de::Error::custom)
    }
}

/// Every property a client looks at, before the shape is decided.
#[derive(Default)]
struct RawResponse {
    negotiate_version: Option<i64>,
    connection_id: Option<String>,
    connection_token: Option<String>,
    url: Option<String>,
    access_token: Option<String>,
    error: Option<String>,
    available_transports: Option<Vec<RawTransport>>,
    use_stateful_reconnect: Option<bool>,
    classic_protocol_version: bool,
}

#[derive(serde::Deserialize)]
struct RawTransport {
    transport: String,
    #[serde(rename = "transferFormats")]
    transfer_formats: Vec<String>,
}

impl RawResponse {
    /// Decides the shape in the JS client's order: `error`, then
    /// `ProtocolVersion`, then `url`, then a connection.
    fn into_response(self) -> Result<NegotiateResponse, NegotiateError> {
        if let Some(error) = self.error.filter(|e| !e.is_empty()) {
            return Ok(NegotiateResponse::Error(error));
        }
        if self.classic_protocol_version {
            return Err(NegotiateError::ClassicSignalRServer);
        }
        if let Some(url) = self.url.filter(|u| !u.is_empty()) {
            return Ok(NegotiateResponse::Redirect(NegotiateRedirect {
                url,
                access_token: self.access_token,
            }));
        }
        let negotiate_version = self
            .negotiate_version
            .map_or(0, |v| u32::try_from(v.max(0)).unwrap_or(u32::MAX));
        let connection_id = self
            .connection_id
            .ok_or(NegotiateError::MissingField("connectionId"))?;
        if negotiate_version >= 1 && self.connection_token.is_none() {
            return Err(NegotiateError::MissingField("connectionToken"));
        }
        let available_transports = self
            .available_transports
            .ok_or(NegotiateError::MissingField("availableTransports"))?
            .into_iter()
            .filter_map(|raw| {
                Some(AvailableTransport {
                    transport: TransportType::from_name(&raw.transport)?,
                    transfer_formats: raw
                        .transfer_formats
                        .iter()
                        .filter_map(|f| transfer_format_from_name(f))
                        .collect(),
                })
            })
            .collect();
        Ok(NegotiateResponse::Connection(NegotiateConnection {
            negotiate_version,
            connection_id,
            connection_token: self.connection_token,
            available_transports,
            use_stateful_reconnect: self.use_stateful_reconnect.unwrap_or(false),
        }))
    }
}

impl<'de> Deserialize<'de> for RawResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawResponseVisitor)
    }
}

struct RawResponseVisitor;

impl<'de> Visitor<'de> for RawResponseVisitor {
    type Value = RawResponse;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a negotiate response object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawResponse, A::Error> {
        let mut raw = RawResponse::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "negotiateVersion" => raw.negotiate_version = map.next_value()?,
                "connectionId" => raw.connection_id = map.next_value()?,
                "connectionToken" => raw.connection_token = map.next_value()?,
                "url" => raw.url = map.next_value()?,
                "accessToken" => raw.access_token = map.next_value()?,
                "error" => raw.error = map.next_value()?,
                "availableTransports" => raw.available_transports = map.next_value()?,
                "useStatefulReconnect" => raw.use_stateful_reconnect = map.next_value()?,
                "ProtocolVersion" => {
                    // The JS client tests the property for truthiness.
                    let value: serde_json::Value = map.next_value()?;
                    raw.classic_protocol_version = match &value {
                        serde_json::Value::Null => false,
                        serde_json::Value::Bool(b) => *b,
                        serde_json::Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                        serde_json::Value::String(s) => !s.is_empty(),
                        _ => true,
                    };
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}
