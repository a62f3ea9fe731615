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
//! - Buffering: the events not yet taken by the response body are bounded
//!   in bytes (`HubOptions::transport_max_buffer_size`, ASP.NET Core's
//!   `TransportMaxBufferSize`) as well as in number; beyond that a write
//!   waits (and the writer's send timeout and slow-consumer policy apply).
//! - Input: the POST bodies the server's handler pushes into a
//!   [`PostInput`].
//! - End: the client closes its `EventSource` (the TCP connection drops,
//!   the response body is dropped, the source ends); the server ends the
//!   response stream on close.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::{FrameSink, FrameSource, PostInput, TransportError};
use crate::protocol::TransferFormat;

/// How many events may wait for the response body to take them: the
/// writer's send timeout applies beyond that.
const EVENT_QUEUE: usize = 8;

/// An event and its share of the byte bound, given back when the response
/// body takes the event.
type QueuedEvent = (Bytes, Option<OwnedSemaphorePermit>);

/// Opens an SSE stream: the response to return to the GET, and the two
/// transport halves. At most `max_buffered_bytes` of events wait for the
/// response body (one larger event fits when none waits).
pub(crate) fn open(input: PostInput, max_buffered_bytes: usize) -> (SseSource, SseSink, Response) {
    let permits = budget_permits(max_buffered_bytes);
    let (events, mut queue) = mpsc::channel::<QueuedEvent>(EVENT_QUEUE);
    let (gone_guard, gone) = oneshot::channel::<()>();
    // The first bytes, flushed at once (see the module docs). The queue is
    // new and empty, so this cannot fail.
    let _ = events.try_send((Bytes::from_static(b":\r\n"), None));
    let stream = futures_util::stream::poll_fn(move |context| {
        // Dropped with the body when the client goes away, which ends the
        // source.
        let _alive = &gone_guard;
        // The permit drops here: the body has taken the event.
        queue
            .poll_recv(context)
            .map(|event| event.map(|(bytes, _permit)| Ok::<_, Infallible>(bytes)))
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
            budget: Arc::new(Semaphore::new(permits as usize)),
            max_permits: permits,
        },
        response,
    )
}

/// The byte bound as semaphore permits (at least 1, at most what one
/// acquisition can take).
fn budget_permits(max_buffered_bytes: usize) -> u32 {
    u32::try_from(max_buffered_bytes).unwrap_or(u32::MAX).max(1)
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
    events: Option<mpsc::Sender<QueuedEvent>>,
    /// One permit per byte of waiting events.
    budget: Arc<Semaphore>,
    max_permits: u32,
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
        let event = event(&frame);
        // An event larger than the whole bound takes all of it: it waits
        // until nothing else does.
        let wanted = u32::try_from(event.len())
            .unwrap_or(u32::MAX)
            .min(self.max_permits);
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| TransportError("the event stream is closed".into()))?;
        events
            .send((event, Some(permit)))
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
    use super::*;
    use futures_util::StreamExt as _;

    /// Events wait once the bytes not yet taken by the response body reach
    /// the bound, and go on as the body takes them; an event larger than
    /// the bound passes alone.
    #[tokio::test]
    async fn the_send_buffer_is_bounded_in_bytes() {
        let (_post, input) = crate::server::transport::post_channel();
        let (_source, mut sink, response) = open(input, 100);
        let mut body = response.into_body().into_data_stream();
        let frame = Bytes::from(vec![b'a'; 50]);
        let wait = std::time::Duration::from_millis(100);
        // 60 bytes per event (`data: `, 50 bytes, two line ends).
        sink.feed(frame.clone(), TransferFormat::Text)
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(wait, sink.feed(frame.clone(), TransferFormat::Text))
                .await
                .is_err(),
            "a second 60-byte event waits while 60 of 100 bytes are buffered"
        );
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b":\r\n");
        assert_eq!(body.next().await.unwrap().unwrap().len(), 60);
        sink.feed(frame, TransferFormat::Text).await.unwrap();
        assert_eq!(body.next().await.unwrap().unwrap().len(), 60);
        let large = Bytes::from(vec![b'b'; 1000]);
        tokio::time::timeout(wait, sink.feed(large, TransferFormat::Text))
            .await
            .expect("an event larger than the bound fits an empty buffer")
            .unwrap();
    }

    #[test]
    fn events_split_lines() {
        assert_eq!(&event(b"{}\x1e")[..], b"data: {}\x1e\r\n\r\n");
        assert_eq!(
            &event(b"a\r\nb\nc")[..],
            b"data: a\r\ndata: b\r\ndata: c\r\n\r\n"
        );
    }
}
