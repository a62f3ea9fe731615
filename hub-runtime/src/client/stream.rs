//! [`HubStream`]: what `stream()` returns, the items of a server stream.

use std::future::Future as _;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::shared::StreamRegistration;
use crate::protocol::Payload;
use crate::{HubError, HubErrorKind};

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
