//! The WebSocket transport: opening the socket and the hub handshake.
//!
//! The rest of the client sees a transport as a sink of encoded byte units
//! and a stream of received byte units; the HTTP transports
//! ([`super::http_transports`]) slot in behind the same split.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use http::header::{AUTHORIZATION, USER_AGENT};
use http::{HeaderMap, HeaderValue};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::negotiate::USER_AGENT_VALUE;
use crate::protocol::HubProtocol;
use crate::protocol::handshake::{HandshakeRequest, HandshakeResponse};
use crate::{HubError, HubErrorKind};

/// An open WebSocket to the hub.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest handshake response accepted.
const MAX_HANDSHAKE_RESPONSE: usize = 64 * 1024;

pub(crate) fn transport_error(message: impl Into<String>) -> HubError {
    HubError::with_kind(HubErrorKind::Transport, message.into())
}

/// Opens the WebSocket at `url`, sending the bearer token and the user's
/// headers with the upgrade request.
pub(crate) async fn connect(
    url: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    max_message_size: Option<usize>,
    timeout: Duration,
) -> Result<WsStream, HubError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| transport_error(format!("Invalid WebSocket URL '{url}': {e}")))?;
    let request_headers = request.headers_mut();
    request_headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    for (name, value) in headers {
        request_headers.append(name, value.clone());
    }
    if let Some(token) = token {
        let value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| transport_error("The access token is not a valid header value."))?;
        request_headers.insert(AUTHORIZATION, value);
    }
    let mut config = WebSocketConfig::default();
    config.max_message_size = max_message_size.map(|max| max.max(MAX_HANDSHAKE_RESPONSE));
    config.max_frame_size = config.max_message_size;
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok((stream, _response))) => Ok(stream),
        Ok(Err(tungstenite::Error::Http(response))) => Err(transport_error(format!(
            "WebSocket failed to connect: the server answered {}. \
             The connection could not be found on the server, either the endpoint may not be a \
             SignalR endpoint, the connection ID is not present on the server, or there is a proxy \
             blocking WebSockets.",
            response.status()
        ))),
        Ok(Err(error)) => Err(transport_error(format!(
            "WebSocket failed to connect: {error}"
        ))),
        Err(_) => Err(HubError::with_kind(
            HubErrorKind::Timeout,
            format!("WebSocket failed to connect within {timeout:?}"),
        )),
    }
}

/// Sends the handshake request and reads the response.
///
/// Returns whatever followed the response in the same read: the first hub
/// messages, which the server may send together with the response.
pub(crate) async fn handshake(
    sink: &mut super::http_transports::BoxSink,
    source: &mut super::http_transports::BoxSource,
    protocol: HubProtocol,
    version: i32,
    timeout: Duration,
) -> Result<BytesMut, HubError> {
    // Version 2 only with stateful reconnect (servers before .NET 8 accept
    // only 1).
    let mut request = BytesMut::new();
    HandshakeRequest::new(protocol, version).encode(&mut request);
    let request = Utf8Bytes::try_from(request.freeze())
        .map_err(|_| transport_error("The handshake request is not valid UTF-8."))?;
    sink.send(Message::Text(request))
        .await
        .map_err(|e| transport_error(format!("Failed to send the handshake request: {e}")))?;
    match tokio::time::timeout(timeout, read_handshake_response(source)).await {
        Ok(result) => result,
        Err(_) => Err(HubError::with_kind(
            HubErrorKind::Timeout,
            "Server timeout elapsed without receiving a handshake response from the server.",
        )),
    }
}

async fn read_handshake_response(
    stream: &mut super::http_transports::BoxSource,
) -> Result<BytesMut, HubError> {
    let closed = || {
        transport_error(
            "The underlying connection was closed before the hub handshake could complete.",
        )
    };
    let mut buffer = BytesMut::new();
    loop {
        match HandshakeResponse::decode(&mut buffer) {
            Ok(Some(HandshakeResponse { error: None })) => return Ok(buffer),
            Ok(Some(HandshakeResponse { error: Some(error) })) => {
                return Err(HubError::with_kind(
                    HubErrorKind::Remote,
                    format!("Server returned handshake error: {error}"),
                ));
            }
            Ok(None) => {}
            Err(error) => {
                return Err(HubError::with_kind(
                    HubErrorKind::Protocol,
                    error.to_string(),
                ));
            }
        }
        if buffer.len() > MAX_HANDSHAKE_RESPONSE {
            return Err(HubError::with_kind(
                HubErrorKind::Protocol,
                "The handshake response is too large.",
            ));
        }
        match stream.next().await {
            Some(Ok(Message::Text(text))) => buffer.extend_from_slice(text.as_bytes()),
            Some(Ok(Message::Binary(bytes))) => buffer.extend_from_slice(&bytes),
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(frame) if frame.code != CloseCode::Normal => transport_error(format!(
                        "The underlying connection was closed before the hub handshake could complete: \
                         WebSocket closed with status code: {} ({}).",
                        u16::from(frame.code),
                        if frame.reason.is_empty() {
                            "no reason given"
                        } else {
                            frame.reason.as_str()
                        }
                    )),
                    _ => closed(),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                return Err(transport_error(format!(
                    "The underlying connection was closed before the hub handshake could complete: {error}"
                )));
            }
            None => return Err(closed()),
        }
    }
}
