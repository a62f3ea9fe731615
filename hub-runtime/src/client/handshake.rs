//! The hub handshake over a freshly opened transport.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};

use super::transport::frame::{Frame, FrameSink, FrameSource, transport_error};
use crate::protocol::HubProtocol;
use crate::protocol::handshake::{HandshakeRequest, HandshakeResponse};
use crate::{HubError, HubErrorKind};

/// The largest handshake response accepted.
const MAX_HANDSHAKE_RESPONSE: usize = 64 * 1024;

/// Sends the handshake request and reads the response.
///
/// Returns whatever followed the response in the same read: the first hub
/// messages, which the server may send together with the response.
pub(crate) async fn handshake(
    sink: &mut FrameSink,
    source: &mut FrameSource,
    protocol: HubProtocol,
    version: i32,
    timeout: Duration,
) -> Result<BytesMut, HubError> {
    // Version 2 only with stateful reconnect (servers before .NET 8 accept
    // only 1). The request is JSON text even for MessagePack.
    let mut request = BytesMut::new();
    HandshakeRequest::new(protocol, version).encode(&mut request);
    sink.send(Frame::Data(request.freeze()))
        .await
        .map_err(|e| {
            transport_error(format!(
                "Failed to send the handshake request: {}",
                e.message()
            ))
        })?;
    match tokio::time::timeout(timeout, read_handshake_response(source)).await {
        Ok(result) => result,
        Err(_) => Err(HubError::with_kind(
            HubErrorKind::Timeout,
            "Server timeout elapsed without receiving a handshake response from the server.",
        )),
    }
}

async fn read_handshake_response(source: &mut FrameSource) -> Result<BytesMut, HubError> {
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
        match source.next().await {
            Some(Ok(Frame::Data(bytes))) => buffer.extend_from_slice(&bytes),
            Some(Ok(Frame::Close(Some(reason)))) if !reason.is_normal() => {
                return Err(transport_error(format!(
                    "The underlying connection was closed before the hub handshake could complete: {}",
                    reason.describe()
                )));
            }
            Some(Ok(Frame::Close(_))) | None => return Err(closed()),
            Some(Err(error)) => {
                return Err(transport_error(format!(
                    "The underlying connection was closed before the hub handshake could complete: {}",
                    error.message()
                )));
            }
        }
    }
}
