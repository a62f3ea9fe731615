//! The WebSocket transport: one WebSocket carries every frame both ways
//! (text messages for JSON, binary for MessagePack).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::{AUTHORIZATION, COOKIE, USER_AGENT};
use http::{HeaderMap, HeaderValue};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tower::Service as _;
use url::Url;

use super::frame::{CloseReason, Frame, FrameSink, FrameSource, transport_error};
use super::negotiate::USER_AGENT_VALUE;
use crate::client::net::{Net, describe_failure};
use crate::client::url::HubUrl;
use crate::protocol::TransferFormat;
use crate::{HubError, HubErrorKind};

/// An open WebSocket to the hub.
type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The smallest message limit: the handshake response must fit.
const MIN_MESSAGE_LIMIT: usize = 64 * 1024;

/// What a WebSocket is opened with.
pub(crate) struct WebSocketTarget<'a> {
    pub(crate) net: &'a Net,
    pub(crate) hub: &'a HubUrl,
    /// The connection token (`None` when negotiation is skipped).
    pub(crate) id: Option<&'a str>,
    pub(crate) token: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) max_message_size: Option<usize>,
    pub(crate) timeout: Duration,
    pub(crate) format: TransferFormat,
}

/// Opens the WebSocket (over TLS for `https` hubs, through the proxy when
/// one applies), sending the bearer token, the user's headers and the
/// cookie jar's cookies with the upgrade request, and keeping the cookies
/// its response sets.
pub(crate) async fn open(
    target: WebSocketTarget<'_>,
) -> Result<(FrameSink, FrameSource), HubError> {
    let timeout = target.timeout;
    match tokio::time::timeout(timeout, open_inner(&target)).await {
        Ok(result) => result,
        Err(_) => Err(HubError::with_kind(
            HubErrorKind::Timeout,
            format!("WebSocket failed to connect within {timeout:?}"),
        )),
    }
}

async fn open_inner(target: &WebSocketTarget<'_>) -> Result<(FrameSink, FrameSource), HubError> {
    let url = target.hub.websocket_url(target.id, target.token);
    // Cookies and proxies are chosen by the `http(s)` form of the URL.
    let http_url = target.hub.transport_url(target.id);
    let host = target.hub.host();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| transport_error(format!("Invalid WebSocket URL '{url}': {e}")))?;
    let request_headers = request.headers_mut();
    request_headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    for (name, value) in target.headers {
        request_headers.append(name, value.clone());
    }
    if let Some(cookies) = target.net.cookie_header(&http_url) {
        request_headers.insert(COOKIE, cookies);
    }
    if let Some(token) = target.token {
        let value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| transport_error("The access token is not a valid header value."))?;
        request_headers.insert(AUTHORIZATION, value);
    }
    let mut config = WebSocketConfig::default();
    config.max_message_size = target
        .max_message_size
        .map(|max| max.max(MIN_MESSAGE_LIMIT));
    config.max_frame_size = config.max_message_size;
    let tcp = connect_tcp(target.net, &http_url).await?;
    let connector = if target.hub.is_tls() {
        Connector::Rustls(target.net.tls.clone())
    } else {
        Connector::Plain
    };
    match tokio_tungstenite::client_async_tls_with_config(
        request,
        tcp,
        Some(config),
        Some(connector),
    )
    .await
    {
        Ok((stream, response)) => {
            target.net.store_cookies(response.headers(), &http_url);
            Ok(frames(stream, target.format))
        }
        Err(tungstenite::Error::Http(response)) => Err(transport_error(format!(
            "WebSocket failed to connect: the server answered {}. \
             The connection could not be found on the server, either the endpoint may not be a \
             SignalR endpoint, the connection ID is not present on the server, or there is a proxy \
             blocking WebSockets.",
            response.status()
        ))),
        Err(error) => Err(transport_error(format!(
            "WebSocket failed to connect: {}",
            describe_failure(host, &error)
        ))),
    }
}

/// A TCP connection to `url`'s host, or a tunnel to it through the proxy
/// the stack's policy picks (`CONNECT`, by hyper-util's tunnel: tungstenite
/// itself knows no proxies).
async fn connect_tcp(net: &Net, url: &Url) -> Result<TcpStream, HubError> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let failed = |e: &dyn std::fmt::Display| {
        transport_error(format!("WebSocket failed to connect to {host}:{port}: {e}"))
    };
    let Some(proxy) = net.proxy_for(url) else {
        let address = host.trim_start_matches('[').trim_end_matches(']');
        let stream = TcpStream::connect((address, port))
            .await
            .map_err(|e| failed(&e))?;
        let _ = stream.set_nodelay(true);
        return Ok(stream);
    };
    let mut tunnel = Tunnel::new(proxy.uri().clone(), HttpConnector::new());
    if let Some(auth) = proxy.basic_auth() {
        tunnel = tunnel.with_auth(auth.clone());
    }
    let destination: http::Uri = format!("{}://{host}:{port}", url.scheme())
        .parse()
        .map_err(|e| failed(&e))?;
    std::future::poll_fn(|cx| tunnel.poll_ready(cx))
        .await
        .map_err(|e| failed(&format!("proxy {}: {e}", proxy.uri())))?;
    let io = tunnel
        .call(destination)
        .await
        .map_err(|e| failed(&format!("proxy {}: {e}", proxy.uri())))?;
    let stream = io.into_inner();
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The socket as frames: data goes out as text (JSON) or binary
/// (MessagePack) messages; pings, pongs and raw frames stay inside.
fn frames(stream: WsStream, format: TransferFormat) -> (FrameSink, FrameSource) {
    let (sink, source) = stream.split();
    let sink = futures_util::sink::unfold(sink, move |mut sink, frame: Frame| async move {
        let message = match frame {
            Frame::Data(bytes) => match format {
                TransferFormat::Text => {
                    Message::Text(Utf8Bytes::try_from(bytes).map_err(|_| {
                        // The JSON encoder only writes UTF-8; refuse rather than corrupt.
                        transport_error("refusing to send invalid UTF-8 text")
                    })?)
                }
                TransferFormat::Binary => Message::Binary(bytes),
            },
            Frame::Close(_) => {
                sink.close()
                    .await
                    .map_err(|e| transport_error(format!("WebSocket failed: {e}")))?;
                return Ok(sink);
            }
        };
        sink.send(message)
            .await
            .map_err(|e| transport_error(format!("WebSocket failed: {e}")))?;
        Ok::<_, HubError>(sink)
    });
    let source = source.filter_map(|message| async move {
        match message {
            Ok(Message::Text(text)) => Some(Ok(Frame::Data(text.into()))),
            Ok(Message::Binary(bytes)) => Some(Ok(Frame::Data(bytes))),
            Ok(Message::Close(frame)) => Some(Ok(Frame::Close(frame.map(|frame| CloseReason {
                code: frame.code.into(),
                reason: frame.reason.as_str().to_owned(),
            })))),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => None,
            Err(error) => Some(Err(transport_error(format!("WebSocket failed: {error}")))),
        }
    });
    (Box::pin(sink), Box::pin(source))
}
