//! The Server-Sent Events transport: one long `text/event-stream` response
//! carries the server's frames, HTTP POSTs carry the client's.
//!
//! - Output: each frame (one or more whole records) becomes one unnamed
//!   event, `data: <payload>\r\n\r\n`, a payload line split at `\n` into
//!   several `data:` lines (the `EventSource` joins them again). Text only:
//!   MessagePack cannot run over SSE.
//! - The stream starts with the comment `:\r\n`, flushed at once: Firefox's
//!   `EventSource` opens only once it has received bytes, and the JS
//!   client's `connect()` waits for that.
//! - Input: the POST bodies the server's handler pushes into a
//!   [`PostInput`].
//! - End: the client closes its `EventSource` (the TCP connection drops,
//!   the response body is dropped, the source ends); the server ends the
//!   response stream on close.

use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};
use tokio::sync::{mpsc, oneshot};

use super::{FrameSink, FrameSource, PostInput, TransportError};
use crate::protocol::TransferFormat;

/// How many events may wait for the response body to take them: the
/// writer's send timeout applies beyond that.
const EVENT_QUEUE: usize = 8;

/// Opens an SSE stream: the response to return to the GET, and the two
/// transport halves.
pub(crate) fn open(input: PostInput) -> (SseSource, SseSink, Response) {
    let (events, mut queue) = mpsc::channel::<Bytes>(EVENT_QUEUE);
    let (gone_guard, gone) = oneshot::channel::<()>();
    // The first bytes, flushed at once (see the module docs). The queue is
    // new and empty, so this cannot fail.
    let _ = events.try_send(Bytes::from_static(b":\r\n"));
    let stream = futures_util::stream::poll_fn(move |context| {
        // Dropped with the body when the client goes away, which ends the
        // source.
        let _alive = &gone_guard;
        queue
            .poll_recv(context)
            .map(|event| event.map(Ok::<_, Infallible>))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,no-store"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    // Reverse proxies (nginx) buffer responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    (
        SseSource { input, gone },
        SseSink {
            events: Some(events),
        },
        response,
    )
}

/// Formats one frame as an SSE event.
pub(crate) fn event(frame: &[u8]) -> Bytes {
    let mut event = BytesMut::with_capacity(frame.len() + 12);
    for line in frame.split(|&byte| byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        event.put_slice(b"data: ");
        event.put_slice(line);
        event.put_slice(b"\r\n");
    }
    event.put_slice(b"\r\n");
    event.freeze()
}

/// The receiving half: POST bodies, until the client drops the stream.
pub(crate) struct SseSource {
    input: PostInput,
    gone: oneshot::Receiver<()>,
}

impl FrameSource for SseSource {
    async fn next_frame(&mut self) -> Option<Result<Bytes, TransportError>> {
        tokio::select! {
            body = self.input.recv() => body.map(Ok),
            // Only ever an error: the guard is dropped, never used to send.
            _ = &mut self.gone => None,
        }
    }
}

/// The sending half: events of the response stream.
pub(crate) struct SseSink {
    events: Option<mpsc::Sender<Bytes>>,
}

impl FrameSink for SseSink {
    fn supported_formats(&self) -> &'static [TransferFormat] {
        &[TransferFormat::Text]
    }

    async fn feed(&mut self, frame: Bytes, _format: TransferFormat) -> Result<(), TransportError> {
        let events = self
            .events
            .as_ref()
            .ok_or_else(|| TransportError("the event stream is closed".into()))?;
        events
            .send(event(&frame))
            .await
            .map_err(|_| TransportError("the client closed the event stream".into()))
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        // hyper writes each stream item as soon as it is polled.
        Ok(())
    }

    async fn close(&mut self, _code: super::CloseCode) -> Result<(), TransportError> {
        // Dropping the sender ends the response body once it is drained.
        self.events = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::event;

    #[test]
    fn events_split_lines() {
        assert_eq!(&event(b"{}\x1e")[..], b"data: {}\x1e\r\n\r\n");
        assert_eq!(
            &event(b"a\r\nb\nc")[..],
            b"data: a\r\ndata: b\r\ndata: c\r\n\r\n"
        );
    }
}
