//! The client's HTTP transports — Server-Sent Events and Long Polling —
//! and the transport choice.
//!
//! The rest of the client sees every transport as a pair of WebSocket-like
//! halves ([`BoxSink`], [`BoxSource`] of tungstenite [`Message`]s): the
//! HTTP transports turn each outgoing Text/Binary message into a POST
//! (`POST {url}?id=<token>`), a Close message into the end of the
//! transport (Long Polling: `DELETE`), and what the server sends into Text
//! or Binary messages; the server ending the transport (SSE: the event
//! stream ends; Long Polling: a 204) arrives as a normal Close.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream, StreamExt};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::negotiate::USER_AGENT_VALUE;
use super::transport::{WsStream, transport_error};
use super::url::HubUrl;
use crate::HubError;
use crate::protocol::TransferFormat;

/// The sending half of any transport.
pub(crate) type BoxSink = Pin<Box<dyn Sink<Message, Error = tungstenite::Error> + Send>>;

/// The receiving half of any transport.
pub(crate) type BoxSource = Pin<Box<dyn Stream<Item = Result<Message, tungstenite::Error>> + Send>>;

/// The largest poll response or SSE event accepted.
const MAX_RECEIVE: usize = 64 * 1024 * 1024;

/// Which transports the client may use, tried in the server's order
/// (WebSockets, Server-Sent Events, Long Polling): when one fails to
/// start, the client negotiates again and tries the next, as the official
/// clients do. [`HubConnection::transport`](super::HubConnection::transport)
/// tells which one the connection ended up with.
///
/// ```
/// use hub_runtime::client::{HubConnection, Transports};
///
/// // Behind a proxy that blocks WebSockets.
/// let connection = HubConnection::builder("http://127.0.0.1:5000/hubs/clock")
///     .transports(Transports { web_sockets: false, ..Transports::ALL })
///     .build();
/// assert!(connection.is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// WebSockets.
    pub web_sockets: bool,
    /// Server-Sent Events plus POSTs (the JSON protocol only).
    pub server_sent_events: bool,
    /// Long Polling plus POSTs.
    pub long_polling: bool,
}

impl Transports {
    /// Every transport (the default).
    pub const ALL: Transports = Transports {
        web_sockets: true,
        server_sent_events: true,
        long_polling: true,
    };
}

impl Default for Transports {
    fn default() -> Self {
        Transports::ALL
    }
}

/// Splits an open WebSocket into the boxed halves.
pub(crate) fn boxed_websocket(stream: WsStream) -> (BoxSink, BoxSource) {
    let (sink, source) = stream.split();
    (Box::pin(sink), Box::pin(source))
}

fn io_error(message: impl Into<String>) -> tungstenite::Error {
    tungstenite::Error::Io(std::io::Error::other(message.into()))
}

/// Where and how an HTTP transport sends its requests.
#[derive(Clone)]
struct Target {
    url: HubUrl,
    /// `{path}?{query}&id=<token>`
    path_and_query: String,
    token: Option<String>,
    headers: HeaderMap,
    timeout: Duration,
    format: TransferFormat,
}

impl Target {
    fn new(
        url: &HubUrl,
        id: &str,
        token: Option<&str>,
        headers: &HeaderMap,
        timeout: Duration,
        format: TransferFormat,
    ) -> Self {
        // The WebSocket URL has the path, query and id this transport
        // needs (the token goes in a header instead).
        let ws = url.websocket_url(Some(id), None);
        let path_and_query = ws
            .strip_prefix("ws://")
            .and_then(|rest| rest.find('/').map(|slash| rest[slash..].to_owned()))
            .unwrap_or_else(|| "/".to_owned());
        Target {
            url: url.clone(),
            path_and_query,
            token: token.map(str::to_owned),
            headers: headers.clone(),
            timeout,
            format,
        }
    }

    /// Sends one request on a new HTTP/1.1 connection; returns the
    /// response with its body still streaming.
    async fn send(
        &self,
        method: Method,
        extra_query: &str,
        accept: Option<&'static str>,
        body: Bytes,
    ) -> Result<Response<Incoming>, HubError> {
        let stream = TcpStream::connect((self.url.host(), self.url.port()))
            .await
            .map_err(|e| transport_error(format!("HTTP request failed: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transport_error(format!("HTTP request failed: {e}")))?;
        // Runs until the response body has been read (or dropped).
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{extra_query}", self.path_and_query))
            .header(HOST, self.url.authority())
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header("X-Requested-With", "XMLHttpRequest");
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        if !body.is_empty() {
            let content_type = match self.format {
                TransferFormat::Text => "text/plain;charset=UTF-8",
                TransferFormat::Binary => "application/octet-stream",
            };
            request = request.header(CONTENT_TYPE, content_type);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| transport_error(format!("HTTP request failed: {e}")))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| transport_error(format!("HTTP request failed: {e}")))
    }

    /// A request whose whole body is read; `timeout` bounds it.
    async fn exchange(
        &self,
        method: Method,
        extra_query: &str,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Bytes), HubError> {
        let work = async {
            let response = self.send(method, extra_query, None, body).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RECEIVE)
                .collect()
                .await
                .map_err(|e| transport_error(format!("HTTP response failed: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        match timeout {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .map_err(|_| transport_error(format!("HTTP request timed out after {limit:?}")))?,
            None => work.await,
        }
    }
}

/// What the sending half does with each message.
async fn post_message(target: &Target, message: Message) -> Result<(), tungstenite::Error> {
    let body = match message {
        Message::Text(text) => Bytes::from(text),
        Message::Binary(bytes) => bytes,
        _ => return Ok(()),
    };
    let (status, _) = target
        .exchange(Method::POST, "", body, Some(target.timeout))
        .await
        .map_err(|e| io_error(e.message().to_owned()))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(io_error(format!("POST failed with status code {status}")))
    }
}

/// The sending half of an HTTP transport. A Close message stops the
/// receiving half and, for Long Polling, sends DELETE.
fn post_sink(target: Target, stop: mpsc::Sender<()>, delete_on_close: bool) -> BoxSink {
    Box::pin(futures_util::sink::unfold(
        (target, stop),
        move |(target, stop), message: Message| async move {
            if let Message::Close(_) = message {
                let _ = stop.try_send(());
                if delete_on_close {
                    // The server answers 202; a 404 (already gone) is fine.
                    let _ = target
                        .exchange(Method::DELETE, "", Bytes::new(), Some(target.timeout))
                        .await;
                }
                return Ok((target, stop));
            }
            post_message(&target, message).await?;
            Ok((target, stop))
        },
    ))
}

fn channel_source(mut receiver: mpsc::Receiver<Result<Message, tungstenite::Error>>) -> BoxSource {
    Box::pin(futures_util::stream::poll_fn(move |context| {
        receiver.poll_recv(context)
    }))
}

/// Opens a Server-Sent Events transport: resolves once the server
/// answered the event-stream request.
pub(crate) async fn open_server_sent_events(
    url: &HubUrl,
    id: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    timeout: Duration,
) -> Result<(BoxSink, BoxSource), HubError> {
    let target = Target::new(url, id, token, headers, timeout, TransferFormat::Text);
    // As the official clients: the token also rides in the query
    // (browsers' EventSource cannot set headers).
    let extra = match token {
        Some(token) => format!(
            "&access_token={}",
            percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => String::new(),
    };
    let response = tokio::time::timeout(
        timeout,
        target.send(Method::GET, &extra, Some("text/event-stream"), Bytes::new()),
    )
    .await
    .map_err(|_| transport_error("EventSource failed to connect: timed out"))??;
    if response.status() != StatusCode::OK {
        return Err(transport_error(format!(
            "EventSource failed to connect: the server answered {}. The connection could not be \
             found on the server, either the connection ID is not present on the server, or a \
             proxy is refusing/buffering the connection.",
            response.status()
        )));
    }
    let (messages, receiver) = mpsc::channel(16);
    let (stop, mut stopped) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let mut body = response.into_body();
        let mut pending = BytesMut::new();
        let mut data = BytesMut::new();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                _ = stopped.recv() => return,
                () = messages.closed() => return,
            };
            let chunk = match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => chunk,
                    Err(_) => continue,
                },
                Some(Err(error)) => {
                    let _ = messages.send(Err(io_error(error.to_string()))).await;
                    return;
                }
                // The server ended the stream: a normal end.
                None => {
                    let _ = messages.send(Ok(Message::Close(None))).await;
                    return;
                }
            };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
                let line = pending.split_to(end + 1);
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    if !data.is_empty() {
                        let event = data.split().freeze();
                        let Ok(text) = Utf8Bytes::try_from(event) else {
                            let _ = messages.send(Err(io_error("an event is not UTF-8"))).await;
                            return;
                        };
                        if messages.send(Ok(Message::Text(text))).await.is_err() {
                            return;
                        }
                    }
                } else if let Some(value) = line.strip_prefix(b"data:") {
                    if !data.is_empty() {
                        data.extend_from_slice(b"\n");
                    }
                    data.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
                    if data.len() > MAX_RECEIVE {
                        let _ = messages.send(Err(io_error("an event is too large"))).await;
                        return;
                    }
                }
                // Comments (`:`) and other fields are ignored.
            }
        }
    });
    Ok((post_sink(target, stop, false), channel_source(receiver)))
}

/// Opens a Long Polling transport: the first poll must answer 200 at
/// once; then polls run until the server answers 204 or the client closes.
pub(crate) async fn open_long_polling(
    url: &HubUrl,
    id: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    timeout: Duration,
    format: TransferFormat,
) -> Result<(BoxSink, BoxSource), HubError> {
    let target = Target::new(url, id, token, headers, timeout, format);
    let (status, _) = target
        .exchange(Method::GET, "&_=0", Bytes::new(), Some(timeout))
        .await?;
    if status != StatusCode::OK {
        return Err(transport_error(format!(
            "Long Polling failed to connect: the server answered {status}"
        )));
    }
    let (messages, receiver) = mpsc::channel(16);
    let (stop, mut stopped) = mpsc::channel::<()>(1);
    let poller = target.clone();
    tokio::spawn(async move {
        let mut poll = 1_u64;
        loop {
            poll += 1;
            // Polls have their own limit (100 s, as the official clients),
            // above the server's poll timeout.
            let cache_buster = format!("&_={poll}");
            let outcome = tokio::select! {
                outcome = poller.exchange(Method::GET, &cache_buster, Bytes::new(), Some(Duration::from_secs(100))) => outcome,
                _ = stopped.recv() => return,
                () = messages.closed() => return,
            };
            let message = match outcome {
                Ok((StatusCode::OK, body)) if body.is_empty() => continue,
                Ok((StatusCode::OK, body)) => match poller.format {
                    TransferFormat::Binary => Ok(Message::Binary(body)),
                    TransferFormat::Text => match Utf8Bytes::try_from(body) {
                        Ok(text) => Ok(Message::Text(text)),
                        Err(_) => Err(io_error("a poll response is not UTF-8")),
                    },
                },
                Ok((StatusCode::NO_CONTENT, _)) => Ok(Message::Close(None)),
                Ok((status, _)) => Err(io_error(format!("poll failed with status code {status}"))),
                Err(error) => Err(io_error(error.message().to_owned())),
            };
            let last = !matches!(message, Ok(Message::Text(_) | Message::Binary(_)));
            if messages.send(message).await.is_err() || last {
                return;
            }
        }
    });
    Ok((post_sink(target, stop, true), channel_source(receiver)))
}
