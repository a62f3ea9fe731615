//! The WebSocket transport: tungstenite over the upgraded HTTP/1.1
//! connection, which it reads through [`ReadOnReadiness`].
//!
//! - Input: Text and Binary frames alike are hub protocol bytes (browsers
//!   send the handshake as text even for MessagePack); WebSocket pings and
//!   pongs are answered by the WebSocket layer; a Close frame ends input.
//! - Output: Text frames for the JSON protocol (a browser would hand a
//!   Binary frame to the JS client as a `Blob`, which its JSON protocol
//!   rejects), Binary frames for MessagePack.
//! - Memory: no read buffer is held between bursts ([`ReadOnReadiness`];
//!   tungstenite keeps [`READ_BUFFER_SIZE`] bytes), and a message size
//!   limit a little above the hub's own ([`message_size_limit`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::{Buf as _, Bytes};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{CloseCode, FrameSink, FrameSource, TransportError};
use crate::protocol::TransferFormat;

/// The read buffer tungstenite keeps for the whole life of each WebSocket
/// (its default of 128 KiB would cost that much per idle connection). It
/// is small because tungstenite reads from [`ReadOnReadiness`], which
/// serves what a socket read brought from memory: this size bounds how
/// much tungstenite copies per call, not how much a syscall reads.
pub(crate) const READ_BUFFER_SIZE: usize = 512;

/// What one socket read may bring at most (a stack buffer, see
/// [`ReadOnReadiness`]): the read size of the 4 KiB buffer tungstenite
/// held before.
const SOCKET_READ_SIZE: usize = 4 * 1024;

/// Frames are written out once this many bytes are buffered (and on every
/// flush).
const WRITE_BUFFER_SIZE: usize = 4 * 1024;

/// The smallest WebSocket message size limit, whatever the hub's own.
const MIN_MESSAGE_SIZE_LIMIT: usize = 64 * 1024;

/// The WebSocket message size limit for a hub whose records may be at most
/// `max_receive` bytes.
///
/// A client may pack several records into one WebSocket message (the JS
/// client concatenates everything queued while a send is in flight), so the
/// limit is four times the record limit (at least 64 KiB): a single
/// oversized record still reaches the hub decoder, which answers with a
/// proper Close message; only absurdly large messages are cut off by the
/// WebSocket layer itself.
pub(crate) fn message_size_limit(max_receive: Option<usize>) -> Option<usize> {
    max_receive.map(|max| max.saturating_mul(4).max(MIN_MESSAGE_SIZE_LIMIT))
}

/// The socket of an upgraded WebSocket connection.
pub(crate) type Socket = WebSocketStream<ReadOnReadiness<TokioIo<Upgraded>>>;

/// A valid WebSocket upgrade request (RFC 6455 §4.2.1), not answered yet.
///
/// Our own rather than axum's `WebSocketUpgrade`, whose socket reads
/// through tungstenite's read buffer directly: here the socket is wrapped
/// in [`ReadOnReadiness`] first, so that an idle connection holds no read
/// buffer of a socket-read's size.
pub(crate) struct Upgrade {
    on_upgrade: OnUpgrade,
    accept: HeaderValue,
}

impl Upgrade {
    /// Checks an HTTP/1.1 upgrade request; the error is the answer (with
    /// the status and text axum gave).
    pub(crate) fn from_parts(parts: &mut Parts) -> Result<Upgrade, Box<Response>> {
        let refuse = |status: StatusCode, text: &'static str| {
            let mut response = Response::new(Body::from(text));
            *response.status_mut() = status;
            Err(Box::new(response))
        };
        if parts.method != Method::GET {
            return refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request method must be `GET`",
            );
        }
        if !header_contains(&parts.headers, header::CONNECTION, "upgrade") {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Connection header did not include 'upgrade'",
            );
        }
        if !header_is(&parts.headers, header::UPGRADE, "websocket") {
            return refuse(
                StatusCode::BAD_REQUEST,
                "`Upgrade` header did not include 'websocket'",
            );
        }
        if !header_is(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return refuse(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Version` header did not include '13'",
            );
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` header missing",
            );
        };
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("a base64 digest is a valid header value");
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return refuse(
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket request couldn't be upgraded since no upgrade state was present",
            );
        };
        Ok(Upgrade { on_upgrade, accept })
    }

    /// Answers the upgrade (101) and runs `callback` on the socket's two
    /// halves once the client has it, in a task of its own: the
    /// connection's one task. The socket is split here, not in the
    /// callback: what a callback's future captures stays in it for the
    /// connection's life, and the halves are smaller than the socket.
    pub(crate) fn on_upgrade<C, Fut>(self, max_receive: Option<usize>, callback: C) -> Response
    where
        C: FnOnce(WebSocketSource, WebSocketSink) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_SIZE)
            .write_buffer_size(WRITE_BUFFER_SIZE);
        if let Some(limit) = message_size_limit(max_receive) {
            config = config
                .max_message_size(Some(limit))
                .max_frame_size(Some(limit));
        }
        let on_upgrade = self.on_upgrade;
        let task = async move {
            let Ok(upgraded) = on_upgrade.await else {
                // The client went away before the upgrade completed.
                return;
            };
            let socket = WebSocketStream::from_raw_socket(
                ReadOnReadiness::new(TokioIo::new(upgraded)),
                Role::Server,
                Some(config),
            )
            .await;
            let (source, sink) = split(socket);
            callback(source, sink).await;
        };
        // The connection's whole state while it is idle: what issue 21
        // keeps small (a debug event, for profiling).
        tracing::debug!(
            task_bytes = std::mem::size_of_val(&task),
            "websocket connection task"
        );
        tokio::spawn(task);
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        response
    }
}

/// Whether a comma-separated header holds `token` (case-insensitively).
fn header_contains(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// Whether a header is `value` (case-insensitively).
fn header_is(headers: &HeaderMap, name: header::HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|header| header.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// A socket that reads into a buffer taken when it is readable and given
/// back at once: between bursts an idle connection holds no read buffer.
///
/// A read goes into a stack buffer of [`SOCKET_READ_SIZE`] bytes; what the
/// caller (tungstenite, asking for at most [`READ_BUFFER_SIZE`]) does not
/// take now is kept on the heap until it does, and that allocation is
/// freed when the last byte is taken. Hand-written: no crate reads this
/// way below tungstenite, and the alternatives hold a buffer for the
/// connection's life: tungstenite's own of a socket-read's size, and
/// `fastwebsockets` (considered as the lower-level WebSocket layer) a
/// fixed read buffer per socket too.
pub(crate) struct ReadOnReadiness<Io> {
    io: Io,
    /// Read from the socket, not yet taken; empty (no allocation) between
    /// bursts.
    pending: Bytes,
}

impl<Io> ReadOnReadiness<Io> {
    fn new(io: Io) -> Self {
        ReadOnReadiness {
            io,
            pending: Bytes::new(),
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for ReadOnReadiness<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            let n = out.remaining().min(this.pending.len());
            out.put_slice(&this.pending[..n]);
            this.pending.advance(n);
            if this.pending.is_empty() {
                // Give the allocation back now, not at the next burst.
                this.pending = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        if out.remaining() >= SOCKET_READ_SIZE {
            return Pin::new(&mut this.io).poll_read(cx, out);
        }
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); SOCKET_READ_SIZE];
        let mut chunk = ReadBuf::uninit(&mut chunk);
        std::task::ready!(Pin::new(&mut this.io).poll_read(cx, &mut chunk))?;
        let read = chunk.filled();
        let n = out.remaining().min(read.len());
        out.put_slice(&read[..n]);
        if read.len() > n {
            this.pending = Bytes::copy_from_slice(&read[n..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for ReadOnReadiness<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Splits an upgraded socket into the two transport halves.
fn split(socket: Socket) -> (WebSocketSource, WebSocketSink) {
    let (sink, stream) = socket.split();
    (
        WebSocketSource {
            stream,
            close_frame_seen: false,
        },
        WebSocketSink(sink),
    )
}

/// The receiving half of a WebSocket.
pub(crate) struct WebSocketSource {
    stream: SplitStream<Socket>,
    close_frame_seen: bool,
}

impl FrameSource for WebSocketSource {
    async fn next_frame(&mut self) -> Option<Result<Bytes, TransportError>> {
        loop {
            return match self.stream.next().await? {
                Ok(Message::Text(text)) => Some(Ok(Bytes::from(text))),
                Ok(Message::Binary(data)) => Some(Ok(data)),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(_)) => {
                    self.close_frame_seen = true;
                    None
                }
                Err(error) => Some(Err(TransportError(error.to_string()))),
            };
        }
    }

    fn closed_gracefully(&self) -> bool {
        self.close_frame_seen
    }

    async fn linger(&mut self) {
        // Until the client's Close frame (the end of the stream) or an error.
        while let Some(Ok(_)) = self.stream.next().await {}
    }
}

/// The sending half of a WebSocket.
pub(crate) struct WebSocketSink(SplitSink<Socket, Message>);

impl FrameSink for WebSocketSink {
    fn supported_formats(&self) -> &'static [TransferFormat] {
        &[TransferFormat::Text, TransferFormat::Binary]
    }

    async fn feed(&mut self, frame: Bytes, format: TransferFormat) -> Result<(), TransportError> {
        let message = match format {
            TransferFormat::Text => Message::Text(
                Utf8Bytes::try_from(frame)
                    .map_err(|e| TransportError(format!("text frame is not UTF-8: {e}")))?,
            ),
            TransferFormat::Binary => Message::Binary(frame),
        };
        self.0
            .feed(message)
            .await
            .map_err(|e| TransportError(e.to_string()))
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.0
            .flush()
            .await
            .map_err(|e| TransportError(e.to_string()))
    }

    async fn close(&mut self, code: CloseCode) -> Result<(), TransportError> {
        let frame = CloseFrame {
            code: code.websocket().into(),
            reason: Utf8Bytes::from_static(""),
        };
        self.0
            .send(Message::Close(Some(frame)))
            .await
            .map_err(|e| TransportError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn reads_on_readiness_deliver_every_byte_in_order_and_keep_nothing_between_bursts() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener");
        let mut client =
            tokio::net::TcpStream::connect(listener.local_addr().expect("its address"))
                .await
                .expect("a loopback connection");
        let (server, _) = listener.accept().await.expect("the accepted socket");
        let mut reader = ReadOnReadiness::new(server);
        let sent: Vec<u8> = (0..3 * SOCKET_READ_SIZE + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        client.write_all(&sent).await.expect("the burst is written");
        let mut received = Vec::new();
        let mut small = [0u8; READ_BUFFER_SIZE];
        while received.len() < sent.len() {
            let n = reader.read(&mut small).await.expect("a read");
            assert!(n > 0, "the socket ends only after the burst");
            received.extend_from_slice(&small[..n]);
        }
        assert_eq!(
            received, sent,
            "small reads see every byte of the burst, in order"
        );
        assert!(
            reader.pending.is_empty() && reader.pending.as_ptr() == Bytes::new().as_ptr(),
            "once the burst is taken, no read buffer is held"
        );
    }
}
