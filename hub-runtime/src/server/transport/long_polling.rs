//! The Long Polling transport: the client's GETs (polls) take whatever the
//! server has buffered, HTTP POSTs carry the client's frames.
//!
//! - The first poll is answered at once (200, empty) by the server's
//!   handler and starts the session; later polls go through
//!   [`Polls::poll`].
//! - A poll returns as soon as frames are buffered: all of them, whole
//!   records only, concatenated (200, `application/octet-stream`); an empty
//!   200 after the poll timeout; 204 once the connection is over, or when a
//!   newer poll for the same connection replaces it.
//! - Backpressure: the sink buffers at most `max_buffered` bytes between
//!   two polls (`HubOptions::transport_max_buffer_size`, ASP.NET Core's
//!   `TransportMaxBufferSize`, as Server-Sent Events; one larger frame fits
//!   an empty buffer); beyond that a write waits for the next poll. While
//!   it waits the outbound queue fills, and a client that stopped polling
//!   is closed by the slow-consumer policy or the writer's send timeout:
//!   its Close message waits in the buffer for a poll that takes it (for
//!   at most the disconnect timeout), then polls get 204.
//! - No Pings are needed (the polls are the keep-alive: the client runs no
//!   server timeout and the server no client timeout); a connection without
//!   a poll for the disconnect timeout is abandoned and ends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::{FrameSink, FrameSource, PostInput, TransportError};
use crate::protocol::TransferFormat;

/// Why the source of a connection without a poll for the disconnect timeout
/// ends (the connection's status is then `timeout`, as a client timeout's).
pub(crate) const STOPPED_POLLING: &str = "the client stopped polling (disconnect timeout elapsed)";

/// The most bytes one POST body (SSE or Long Polling) may carry, given the
/// maximum receive message size: several records may come in one body, so
/// the body limit is the WebSocket message limit (a multiple of the record
/// limit); a longer body is refused (413) before it is buffered. What the
/// session does with an accepted body is what it does with a WebSocket
/// frame: the bytes go to the handshake parser and the incremental decoder,
/// records may span bodies.
pub(crate) fn post_body_limit(maximum_receive_message_size: Option<usize>) -> usize {
    super::websocket::message_size_limit(maximum_receive_message_size).unwrap_or(usize::MAX)
}

/// The state of one long-polling connection, shared by its polls, its
/// source and its sink.
pub(crate) struct Polls {
    state: Mutex<PollState>,
    /// Bumped on every change of `state`; pollers and writers wait on it.
    changed: watch::Sender<u64>,
    poll_timeout: Duration,
    disconnect_timeout: Duration,
    /// The most bytes buffered between two polls before writes wait (one
    /// larger frame fits an empty buffer).
    max_buffered: usize,
}

struct PollState {
    frames: VecDeque<Bytes>,
    buffered: usize,
    /// The sink closed: polls get what is left, then 204.
    closed: bool,
    /// The client sent DELETE: the source ends.
    deleted: bool,
    /// The generation of the newest poll; older polls end with 204.
    generation: u64,
    /// A poll is waiting.
    active: bool,
    /// When the last poll ended (for the abandoned-connection check).
    last_poll: Instant,
}

/// How a poll ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PollOutcome {
    /// 200 with these bytes (empty after the poll timeout).
    Data(Bytes),
    /// 204: the connection is over, or a newer poll took over.
    NoContent,
}

impl Polls {
    /// A connection whose first poll has just been answered, buffering at
    /// most `max_buffered` bytes of frames between two polls.
    pub(crate) fn new(
        poll_timeout: Duration,
        disconnect_timeout: Duration,
        max_buffered: usize,
    ) -> Arc<Self> {
        Arc::new(Polls {
            state: Mutex::new(PollState {
                frames: VecDeque::new(),
                buffered: 0,
                closed: false,
                deleted: false,
                generation: 0,
                active: false,
                last_poll: Instant::now(),
            }),
            changed: watch::Sender::new(0),
            poll_timeout,
            disconnect_timeout,
            max_buffered,
        })
    }

    fn lock(&self) -> MutexGuard<'_, PollState> {
        // The state is plain data: consistent whatever panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// The transport halves of this connection.
    pub(crate) fn halves(self: &Arc<Self>, input: PostInput) -> (PollSource, PollSink) {
        (
            PollSource {
                input,
                polls: self.clone(),
            },
            PollSink {
                polls: self.clone(),
            },
        )
    }

    /// A poll (not the first): waits for frames, the end of the connection,
    /// a newer poll or the poll timeout.
    pub(crate) async fn poll(self: &Arc<Self>) -> PollOutcome {
        let mut changes = self.changed.subscribe();
        let generation = {
            let mut state = self.lock();
            state.generation += 1;
            state.active = true;
            state.generation
        };
        self.bump();
        // Marks the poll over however it ends (also when the client drops
        // the request while it waits).
        let _guard = PollGuard {
            polls: self,
            generation,
        };
        let deadline = Instant::now() + self.poll_timeout;
        loop {
            {
                let mut state = self.lock();
                if state.generation != generation {
                    return PollOutcome::NoContent;
                }
                if !state.frames.is_empty() {
                    let mut body = BytesMut::with_capacity(state.buffered);
                    while let Some(frame) = state.frames.pop_front() {
                        body.extend_from_slice(&frame);
                    }
                    state.buffered = 0;
                    drop(state);
                    self.bump();
                    return PollOutcome::Data(body.freeze());
                }
                if state.closed {
                    return PollOutcome::NoContent;
                }
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = sleep_until(deadline) => return PollOutcome::Data(Bytes::new()),
            }
        }
    }

    /// The client sent DELETE: the connection ends.
    pub(crate) fn delete(&self) {
        self.lock().deleted = true;
        self.bump();
    }

    /// The response to a poll.
    pub(crate) fn response(outcome: PollOutcome) -> Response {
        let (status, body) = match outcome {
            PollOutcome::Data(bytes) => (StatusCode::OK, bytes),
            PollOutcome::NoContent => (StatusCode::NO_CONTENT, Bytes::new()),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if status == StatusCode::OK {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
        }
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store"),
        );
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::EXPIRES,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        response
    }
}

struct PollGuard<'a> {
    polls: &'a Polls,
    generation: u64,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.polls.lock();
        if state.generation == self.generation {
            state.active = false;
            state.last_poll = Instant::now();
        }
        drop(state);
        self.polls.bump();
    }
}

/// The receiving half: POST bodies, until DELETE or abandonment.
pub(crate) struct PollSource {
    input: PostInput,
    polls: Arc<Polls>,
}

impl FrameSource for PollSource {
    async fn next_frame(&mut self) -> Option<Result<Bytes, TransportError>> {
        let mut changes = self.polls.changed.subscribe();
        loop {
            let abandoned_at = {
                let state = self.polls.lock();
                if state.deleted {
                    return None;
                }
                (!state.active).then(|| state.last_poll + self.polls.disconnect_timeout)
            };
            tokio::select! {
                body = self.input.recv() => return body.map(Ok),
                _ = changes.changed() => {}
                () = sleep_until(abandoned_at.unwrap_or_else(Instant::now)), if abandoned_at.is_some() => {
                    return Some(Err(TransportError(STOPPED_POLLING.into())));
                }
            }
        }
    }

    fn has_inherent_keep_alive(&self) -> bool {
        true
    }
}

/// The sending half: frames buffered for the next poll.
pub(crate) struct PollSink {
    polls: Arc<Polls>,
}

impl FrameSink for PollSink {
    fn supported_formats(&self) -> &'static [TransferFormat] {
        &[TransferFormat::Text, TransferFormat::Binary]
    }

    async fn feed(&mut self, frame: Bytes, _format: TransferFormat) -> Result<(), TransportError> {
        let mut changes = self.polls.changed.subscribe();
        loop {
            {
                let mut state = self.polls.lock();
                if state.closed || state.deleted {
                    return Err(TransportError("the connection is closed".into()));
                }
                if state.buffered == 0 || state.buffered + frame.len() <= self.polls.max_buffered {
                    state.buffered += frame.len();
                    state.frames.push_back(frame);
                    break;
                }
            }
            if changes.changed().await.is_err() {
                return Err(TransportError("the connection is closed".into()));
            }
        }
        self.polls.bump();
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn close(&mut self, _code: super::CloseCode) -> Result<(), TransportError> {
        let mut changes = self.polls.changed.subscribe();
        self.polls.lock().closed = true;
        self.polls.bump();
        // What is still buffered (the Close message) goes out with the
        // next poll, which finds the connection only while its session
        // lives: wait until a poll took it (the caller bounds the wait).
        // Without the wait a session that ended at once left the client's
        // next poll a 404 instead of its Close message.
        // A client that stopped polling (no poll for the disconnect
        // timeout) is not waited for.
        loop {
            let abandoned_at = {
                let state = self.polls.lock();
                if state.frames.is_empty() || state.deleted {
                    return Ok(());
                }
                (!state.active).then(|| state.last_poll + self.polls.disconnect_timeout)
            };
            if abandoned_at.is_some_and(|at| at <= Instant::now()) {
                return Ok(());
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return Ok(()); },
                () = sleep_until(abandoned_at.unwrap_or_else(Instant::now)), if abandoned_at.is_some() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes wait once the bytes not yet taken by a poll reach the bound,
    /// and go on once a poll takes them; a frame larger than the bound
    /// passes alone.
    #[tokio::test]
    async fn the_send_buffer_is_bounded_in_bytes() {
        let polls = Polls::new(Duration::from_secs(5), Duration::from_secs(5), 100);
        let (_post, input) = crate::server::transport::post_channel();
        let (_source, mut sink) = polls.halves(input);
        let frame = Bytes::from(vec![b'a'; 60]);
        let wait = Duration::from_millis(100);
        sink.feed(frame.clone(), TransferFormat::Text)
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(wait, sink.feed(frame.clone(), TransferFormat::Text))
                .await
                .is_err(),
            "a second 60-byte frame waits while 60 of 100 bytes are buffered"
        );
        assert_eq!(polls.poll().await, PollOutcome::Data(frame.clone()));
        sink.feed(frame.clone(), TransferFormat::Text)
            .await
            .unwrap();
        assert_eq!(polls.poll().await, PollOutcome::Data(frame));
        let large = Bytes::from(vec![b'b'; 1000]);
        tokio::time::timeout(wait, sink.feed(large, TransferFormat::Text))
            .await
            .expect("a frame larger than the bound fits an empty buffer")
            .unwrap();
    }
}
