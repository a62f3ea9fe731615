//! Streams both ways: [`HubStream`], what `stream()` returns, and the tasks
//! that send upload streams.

use std::collections::VecDeque;
use std::future::Future as _;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::arguments::Upload;
use super::connection::{Outbound, StreamRegistration};
use crate::protocol::{Completion, CompletionResult, HubMessage, HubProtocol, Payload, StreamItem};
use crate::{HubError, HubErrorKind};

/// How many items of one upload may wait in the writer's queue; the upload
/// reads its source again only once the oldest of them was written.
const UPLOAD_WINDOW: usize = 16;

/// The error an upload ends with when its caller stopped waiting.
const UPLOAD_CANCELED: &str = "The invocation was canceled by the client.";

/// A server-to-client stream: the items of a hub method that returns a
/// stream, deserialized into `T`. Made by
/// [`HubConnection::stream`](super::HubConnection::stream).
///
/// It is a [`futures_util::Stream`] of `Result<T, HubError>`:
///
/// - each StreamItem (type 2) is an `Ok(item)`, in the order the server
///   sent them (an item that does not deserialize into `T` is an
///   `Err` of kind [`Serialization`](HubErrorKind::Serialization), and the
///   stream goes on);
/// - the server's Completion ends the stream; when it carries an error,
///   the last item is an `Err` of kind [`Remote`](HubErrorKind::Remote)
///   with the server's text;
/// - when the connection is lost the last item is an `Err` of kind
///   [`ConnectionClosed`](HubErrorKind::ConnectionClosed).
///
/// Dropping the stream before its end, or calling [`cancel`](Self::cancel),
/// sends a CancelInvocation (type 5) and ignores whatever the server still
/// sends for it, as the JavaScript client does.
///
/// # A slow consumer
///
/// Items the consumer has not taken yet wait in a per-stream buffer
/// ([`HubConnectionBuilder::stream_buffer_capacity`](super::HubConnectionBuilder::stream_buffer_capacity),
/// 1024 items by default). When it is full, the connection's reader waits
/// for room — which holds back every message of the connection and, through
/// TCP, the server — but for at most
/// [`stream_buffer_timeout`](super::HubConnectionBuilder::stream_buffer_timeout)
/// (5 s by default). If the consumer took no item in that time, the stream
/// is canceled on the server (CancelInvocation) and ends, after the
/// buffered items, with an `Err` of kind
/// [`Transport`](HubErrorKind::Transport); the rest of the connection goes
/// on. So a consumer that briefly lags gets backpressure, and one that
/// stalls loses its stream instead of stalling the connection.
///
/// ```no_run
/// use futures_util::StreamExt;
/// use hub_runtime::client::HubConnection;
///
/// # async fn run(connection: HubConnection) -> Result<(), hub_runtime::HubError> {
/// // The conformance hub's `Counter(count, delayMs)`: 0, 1, …, count - 1.
/// let mut counter = connection.stream::<i64>("Counter", (5, 10))?;
/// while let Some(item) = counter.next().await {
///     println!("{}", item?);
/// }
/// # Ok(())
/// # }
/// ```
#[must_use = "a stream does nothing unless polled; dropping it cancels the invocation"]
pub struct HubStream<T> {
    method: String,
    items: mpsc::Receiver<Payload>,
    outcome: oneshot::Receiver<Result<(), HubError>>,
    /// `Some` while the server may still send items: dropping it cancels.
    registration: Option<StreamRegistration>,
    finished: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for HubStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubStream")
            .field("method", &self.method)
            .field("invocation_id", &self.invocation_id())
            .field("finished", &self.finished)
            .finish()
    }
}

impl<T> HubStream<T> {
    pub(super) fn new(
        method: &str,
        items: mpsc::Receiver<Payload>,
        outcome: oneshot::Receiver<Result<(), HubError>>,
        registration: StreamRegistration,
    ) -> Self {
        HubStream {
            method: method.to_owned(),
            items,
            outcome,
            registration: Some(registration),
            finished: false,
            _item: PhantomData,
        }
    }

    /// The stream invocation's id (`None` once the stream has ended).
    pub fn invocation_id(&self) -> Option<&str> {
        self.registration.as_ref().map(StreamRegistration::id)
    }

    /// Stops the stream: sends a CancelInvocation when the server may still
    /// be producing, and ends the stream at once (items already buffered
    /// are discarded). Dropping the stream does the same.
    pub fn cancel(&mut self) {
        if let Some(registration) = self.registration.take() {
            registration.cancel();
        }
        self.items.close();
        self.finished = true;
    }

    fn finish<U>(&mut self, last: Option<HubError>) -> Poll<Option<Result<U, HubError>>> {
        self.finished = true;
        // The reader removed the stream before ending it: nothing to cancel.
        self.registration = None;
        Poll::Ready(last.map(Err))
    }
}

impl<T> Drop for HubStream<T> {
    fn drop(&mut self) {
        if let Some(registration) = self.registration.take() {
            registration.cancel();
        }
    }
}

impl<T> HubStream<T> {
    /// The next item, still encoded (typed proxies deserialize it
    /// themselves), or the stream's end.
    pub(super) fn poll_payload(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Payload, HubError>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.items.poll_recv(cx) {
            Poll::Ready(Some(payload)) => Poll::Ready(Some(Ok(payload))),
            // Every sender is gone: the outcome was decided before that.
            Poll::Ready(None) => match Pin::new(&mut self.outcome).poll(cx) {
                Poll::Ready(Ok(Ok(()))) => self.finish(None),
                Poll::Ready(Ok(Err(error))) => self.finish(Some(error)),
                Poll::Ready(Err(_)) => self.finish(Some(HubError::with_kind(
                    HubErrorKind::ConnectionClosed,
                    "Invocation canceled due to the underlying connection being closed.",
                ))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: DeserializeOwned> Stream for HubStream<T> {
    type Item = Result<T, HubError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.poll_payload(cx).map(|item| {
            item.map(|item| {
                item.and_then(|payload| {
                    payload.deserialize().map_err(|e| {
                        HubError::with_kind(
                            HubErrorKind::Serialization,
                            format!(
                                "Failed to deserialize an item of the stream '{}': {e}",
                                this.method
                            ),
                        )
                    })
                })
            })
        })
    }
}

/// Stops the uploads of one invocation. Dropped without
/// [`finish`](Self::finish), the uploads end with an error Completion
/// (the caller gave up); finished, they stop without one (the server has
/// answered and no longer reads them).
#[derive(Default)]
pub(super) struct UploadControl {
    stops: Vec<oneshot::Sender<()>>,
}

impl UploadControl {
    /// The server answered: stop the uploads quietly.
    pub(super) fn finish(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
    }
}

/// Starts one task per upload, sending to `outbound` (the connection the
/// invocation went out on). `detached` uploads (of a `send`) cannot be
/// stopped by the caller.
pub(super) fn start_uploads(
    outbound: &mpsc::UnboundedSender<Outbound>,
    protocol: HubProtocol,
    uploads: Vec<Upload>,
    stream_ids: &[String],
    detached: bool,
) -> UploadControl {
    let mut control = UploadControl::default();
    for (upload, stream_id) in uploads.into_iter().zip(stream_ids) {
        let stop = if detached {
            None
        } else {
            let (stop_tx, stop_rx) = oneshot::channel();
            control.stops.push(stop_tx);
            Some(stop_rx)
        };
        tokio::spawn(run_upload(
            outbound.clone(),
            protocol,
            stream_id.clone(),
            upload.into_items(protocol),
            stop,
        ));
    }
    control
}

/// Why an upload stops before its source ends.
enum UploadStop {
    /// The server answered the invocation.
    Quiet,
    /// The caller stopped waiting.
    Canceled,
}

async fn stop_signal(stop: Option<oneshot::Receiver<()>>) -> UploadStop {
    match stop {
        Some(stop) => match stop.await {
            Ok(()) => UploadStop::Quiet,
            Err(_) => UploadStop::Canceled,
        },
        None => std::future::pending().await,
    }
}

fn encode(protocol: HubProtocol, message: &HubMessage) -> Option<Bytes> {
    let mut buffer = BytesMut::new();
    match protocol.encode(message, &mut buffer) {
        Ok(()) => Some(buffer.freeze()),
        Err(error) => {
            debug!(%error, "an upload message could not be encoded");
            None
        }
    }
}

fn completion(stream_id: &str, error: Option<String>) -> HubMessage {
    HubMessage::Completion(Completion {
        headers: Vec::new(),
        invocation_id: stream_id.to_owned(),
        result: match error {
            Some(error) => CompletionResult::Error(error),
            None => CompletionResult::Void,
        },
    })
}

/// Sends the items of one upload, then its Completion.
async fn run_upload(
    outbound: mpsc::UnboundedSender<Outbound>,
    protocol: HubProtocol,
    stream_id: String,
    mut items: BoxStream<'static, Result<Payload, String>>,
    stop: Option<oneshot::Receiver<()>>,
) {
    let mut stop = std::pin::pin!(stop_signal(stop));
    let mut in_flight: VecDeque<oneshot::Receiver<Result<(), HubError>>> = VecDeque::new();
    let end = loop {
        let next = tokio::select! {
            biased;
            reason = &mut stop => break Err(reason),
            () = outbound.closed() => return,
            next = items.next() => next,
        };
        let item = match next {
            Some(Ok(item)) => item,
            Some(Err(error)) => break Ok(Some(error)),
            None => break Ok(None),
        };
        let message = HubMessage::StreamItem(StreamItem {
            headers: Vec::new(),
            invocation_id: stream_id.clone(),
            item,
        });
        let Some(bytes) = encode(protocol, &message) else {
            break Ok(Some(
                "The client could not encode a stream item.".to_owned(),
            ));
        };
        let (sent_tx, sent_rx) = oneshot::channel();
        let data = Outbound::Data {
            bytes,
            sent: Some(sent_tx),
        };
        if outbound.send(data).is_err() {
            return;
        }
        in_flight.push_back(sent_rx);
        if in_flight.len() >= UPLOAD_WINDOW {
            let Some(oldest) = in_flight.pop_front() else {
                continue;
            };
            tokio::select! {
                biased;
                reason = &mut stop => break Err(reason),
                written = oldest => match written {
                    Ok(Ok(())) => {}
                    // The socket failed or the connection is gone.
                    _ => return,
                },
            }
        }
    };
    let error = match end {
        Ok(error) => error,
        Err(UploadStop::Quiet) => return,
        Err(UploadStop::Canceled) => Some(UPLOAD_CANCELED.to_owned()),
    };
    if let Some(bytes) = encode(protocol, &completion(&stream_id, error)) {
        let _ = outbound.send(Outbound::Data { bytes, sent: None });
    }
}
