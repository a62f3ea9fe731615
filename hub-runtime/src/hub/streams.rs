//! Streams of hub methods, both ways.
//!
//! - **Server to client**: a streaming hub method (one returning a
//!   `Stream`) sends its items through the call's [`StreamItems`]; the
//!   runtime ends the stream with a Completion. Generated code uses
//!   [`drive_stream`]; a hand-written [`Hub`](crate::Hub) calls
//!   [`StreamItems::send`] itself.
//! - **Client to server**: each upload stream of an invocation (its
//!   `streamIds`) reaches the hub method as an [`UploadStream<T>`]: a
//!   `Stream` of `Result<T, HubError>` that ends when the client completes
//!   the stream, with a last `Err` when the client completes it with an
//!   error.

use std::collections::VecDeque;
#[cfg(feature = "server")]
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use serde::de::DeserializeOwned;

use super::{InvocationError, MethodOutput};
use crate::protocol::Payload;
use crate::wire::ToWire;
use crate::{BoxFuture, HubError, HubErrorKind};

/// Where a streaming invocation's items go: implemented by the server for
/// each server-to-client stream.
pub trait ItemSink: Send + Sync {
    /// Queues one item for the client. Waits while the stream has as many
    /// items in flight as it may (so a slow client slows its own stream
    /// down, nothing else); fails once the connection is gone.
    fn send(&self, item: Payload) -> BoxFuture<'_, Result<(), HubError>>;
}

/// The items of one server-to-client stream (a `StreamInvocation`), as a
/// hub method sees them.
///
/// ```
/// # use hub_runtime::hub::StreamItems;
/// # use hub_runtime::protocol::Payload;
/// # async fn produce(items: &StreamItems) -> Result<(), hub_runtime::HubError> {
/// for n in 0..3_i64 {
///     items.send(Payload::from_value(n)).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StreamItems {
    sink: Arc<dyn ItemSink>,
}

impl std::fmt::Debug for StreamItems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamItems").finish_non_exhaustive()
    }
}

impl StreamItems {
    /// Items delivered to `sink`.
    pub fn new(sink: Arc<dyn ItemSink>) -> Self {
        StreamItems { sink }
    }

    /// Sends one item (a `StreamItem` message), waiting while the stream's
    /// window of items in flight is full.
    pub async fn send(&self, item: Payload) -> Result<(), HubError> {
        self.sink.send(item).await
    }
}

/// Sends every item of `stream` to `items`; the end of a streaming hub
/// method. An `Err` item ends the stream with that error (the client gets
/// a Completion with `An error occurred on the server while streaming
/// results.`).
pub async fn drive_stream<S>(
    items: &StreamItems,
    stream: S,
) -> Result<MethodOutput, InvocationError>
where
    S: Stream<Item = Result<Payload, HubError>> + Send,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        match item {
            Ok(payload) => items.send(payload).await.map_err(InvocationError::Stream)?,
            Err(error) => return Err(InvocationError::Stream(error)),
        }
    }
    Ok(MethodOutput::StreamCompleted)
}

/// Wraps what a streaming hub method returned, so that generated code can
/// turn both `Stream<Item = T>` and `Stream<Item = Result<T, HubError>>`
/// into payloads: with [`IntoItemsFromResults`] and [`IntoItemsFromValues`]
/// in scope, `StreamReturned::new(s).into_items()` picks the first for a
/// stream of results and the second for any other item.
///
/// As for results ([`IntoOutputFromResult`](super::IntoOutputFromResult)),
/// the item's `ToWire` bound is on the method, not on the impl: an item
/// that is not serializable gets the bound's own error ("cannot be sent…
/// derive `Serialize`") rather than "`into_items` exists but its trait
/// bounds were not satisfied".
#[doc(hidden)]
pub struct StreamReturned<S>(std::cell::Cell<Option<S>>);

impl<S> StreamReturned<S> {
    /// Wraps a method's stream.
    pub fn new(stream: S) -> Self {
        StreamReturned(std::cell::Cell::new(Some(stream)))
    }
}

/// See [`StreamReturned`].
#[doc(hidden)]
pub trait IntoItemsFromResults {
    /// What each item serializes.
    type Value;
    /// The stream of payloads.
    type Items: Stream<Item = Result<Payload, HubError>> + Send;
    /// The conversion.
    fn into_items(self) -> Self::Items
    where
        Self::Value: ToWire;
}

/// See [`StreamReturned`].
#[doc(hidden)]
pub trait IntoItemsFromValues {
    /// What each item serializes.
    type Value;
    /// The stream of payloads.
    type Items: Stream<Item = Result<Payload, HubError>> + Send;
    /// The conversion.
    fn into_items(self) -> Self::Items
    where
        Self::Value: ToWire;
}

impl<S, T> IntoItemsFromResults for StreamReturned<S>
where
    S: Stream<Item = Result<T, HubError>> + Send,
{
    type Value = T;
    type Items = PayloadStream<S>;
    fn into_items(self) -> Self::Items
    where
        T: ToWire,
    {
        PayloadStream {
            inner: self.0.into_inner().map(Box::pin),
            encode: |item| item.map(Payload::from_value),
        }
    }
}

impl<S> IntoItemsFromValues for &StreamReturned<S>
where
    S: Stream + Send,
{
    type Value = S::Item;
    type Items = PayloadStream<S>;
    fn into_items(self) -> Self::Items
    where
        S::Item: ToWire,
    {
        PayloadStream {
            inner: self.0.take().map(Box::pin),
            encode: |item| Ok(Payload::from_value(item)),
        }
    }
}

/// A hub method's stream with its items turned into payloads by `encode`,
/// chosen where the item is known to serialize (so that this impl needs no
/// bound of its own).
#[doc(hidden)]
pub struct PayloadStream<S: Stream> {
    inner: Option<Pin<Box<S>>>,
    encode: fn(S::Item) -> Result<Payload, HubError>,
}

impl<S: Stream> Stream for PayloadStream<S> {
    type Item = Result<Payload, HubError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let encode = self.encode;
        match self.inner.as_mut() {
            None => Poll::Ready(None),
            Some(inner) => inner.as_mut().poll_next(cx).map(|item| item.map(encode)),
        }
    }
}

// ---------------------------------------------------------------------------
// Upload streams

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single push, pop or assignment:
    // the state stays consistent whatever panicked while holding them.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes a connection's read loop when a consumer has taken items out of an
/// upload stream that was over its capacity.
#[derive(Default)]
pub(crate) struct RoomSignal {
    flag: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl RoomSignal {
    pub(crate) fn notify(&self) {
        self.flag.store(true, Ordering::Release);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }

    /// Resolves once [`RoomSignal::notify`] was called since the last wait.
    #[cfg(feature = "server")]
    pub(crate) fn wait(&self) -> impl Future<Output = ()> + Send + '_ {
        std::future::poll_fn(|cx| {
            if self.flag.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            *lock(&self.waker) = Some(cx.waker().clone());
            if self.flag.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

#[derive(Default)]
struct UploadState {
    items: VecDeque<Payload>,
    /// How the client ended the stream; taken by the consumer.
    end: Option<Result<(), HubError>>,
    /// The client completed the stream, or the server closed it.
    ended: bool,
    /// The consumer dropped its `UploadStream`: later items are dropped.
    consumer_gone: bool,
    consumer: Option<Waker>,
}

/// The buffer between a connection's read loop and one [`UploadStream`].
///
/// It holds `capacity` items (ASP.NET Core's `StreamBufferCapacity`); the
/// read loop may push a few more (its bounded lookahead, see the session)
/// but stops reading the connection while the total excess of a
/// connection's upload streams is at its limit.
pub(crate) struct UploadChannel {
    state: Mutex<UploadState>,
    capacity: usize,
    room: Arc<RoomSignal>,
}

impl UploadChannel {
    #[cfg(feature = "server")]
    pub(crate) fn new(capacity: usize, room: Arc<RoomSignal>) -> Arc<Self> {
        Arc::new(UploadChannel {
            state: Mutex::new(UploadState::default()),
            capacity: capacity.max(1),
            room,
        })
    }

    /// Appends an item from the client. Items of an ended stream, or of one
    /// whose consumer is gone, are dropped.
    #[cfg(feature = "server")]
    pub(crate) fn push(&self, item: Payload) {
        let mut state = lock(&self.state);
        if state.ended || state.consumer_gone {
            return;
        }
        state.items.push_back(item);
        let waker = state.consumer.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ends the stream: the client's Completion (`Ok` or its error), the
    /// end of the invocation, or the end of the connection.
    pub(crate) fn complete(&self, end: Result<(), HubError>) {
        let mut state = lock(&self.state);
        if state.ended {
            return;
        }
        state.ended = true;
        state.end = Some(end);
        let waker = state.consumer.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// How many items the stream holds beyond its capacity.
    #[cfg(feature = "server")]
    pub(crate) fn excess(&self) -> usize {
        lock(&self.state).items.len().saturating_sub(self.capacity)
    }

    fn consumer_dropped(&self) {
        let mut state = lock(&self.state);
        state.consumer_gone = true;
        let freed = state.items.len() > self.capacity;
        state.items.clear();
        drop(state);
        if freed {
            self.room.notify();
        }
    }
}

/// A client-to-server stream: one of the `streamIds` of an invocation,
/// bound in order to the hub method's `UploadStream<T>` parameters.
///
/// A `Stream` of `Result<T, HubError>`:
///
/// - each `StreamItem` the client sends is deserialized into `T`; one that
///   does not fit ends the stream with an `Err` (ASP.NET Core's
///   `Failed to bind Stream message.`);
/// - the client's Completion ends it (`None`); a Completion with an error
///   yields that error (kind [`HubErrorKind::Remote`]) and then `None`;
/// - if the connection closes first, it yields an
///   [`HubErrorKind::ConnectionClosed`] error and ends.
///
/// The runtime buffers at most [`HubOptions::stream_buffer_capacity`]
/// items per stream (default 10, as ASP.NET Core) before it stops reading
/// the client. When the hub method returns, its upload streams are closed:
/// later items from the client are ignored.
///
/// ```
/// use futures_util::StreamExt as _;
/// use hub_runtime::hub::UploadStream;
/// use hub_runtime::{HubError, hub, hub_client};
///
/// #[hub_client]
/// pub trait ICalculatorClient {
///     async fn show(&self, total: i64);
/// }
///
/// pub struct Calculator;
///
/// #[hub(client = ICalculatorClient)]
/// impl Calculator {
///     async fn sum(&self, mut numbers: UploadStream<i64>) -> Result<i64, HubError> {
///         let mut total = 0;
///         while let Some(n) = numbers.next().await {
///             total += n?;
///         }
///         Ok(total)
///     }
/// }
/// ```
///
/// [`HubOptions::stream_buffer_capacity`]: crate::server::HubOptions::stream_buffer_capacity
pub struct UploadStream<T> {
    channel: Arc<UploadChannel>,
    finished: bool,
    item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for UploadStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadStream")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<T> UploadStream<T> {
    pub(crate) fn new(channel: Arc<UploadChannel>) -> Self {
        UploadStream {
            channel,
            finished: false,
            item: PhantomData,
        }
    }
}

impl<T> Drop for UploadStream<T> {
    fn drop(&mut self) {
        self.channel.consumer_dropped();
    }
}

impl<T: DeserializeOwned> Stream for UploadStream<T> {
    type Item = Result<T, HubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let channel = self.channel.clone();
        let mut state = lock(&channel.state);
        if let Some(item) = state.items.pop_front() {
            let was_over = state.items.len() >= channel.capacity;
            drop(state);
            if was_over {
                channel.room.notify();
            }
            return Poll::Ready(Some(match item.deserialize::<T>() {
                Ok(value) => Ok(value),
                Err(error) => {
                    // As ASP.NET Core: a binding failure completes the
                    // stream with an error.
                    self.finished = true;
                    drop(lock(&channel.state).items.drain(..));
                    channel.complete(Ok(()));
                    channel.room.notify();
                    Err(HubError::with_kind(
                        HubErrorKind::Serialization,
                        format!("Failed to bind Stream message. {error}"),
                    )
                    .with_source(error))
                }
            }));
        }
        if state.ended {
            let end = state.end.take();
            drop(state);
            self.finished = true;
            return Poll::Ready(match end {
                Some(Err(error)) => Some(Err(error)),
                _ => None,
            });
        }
        state.consumer = Some(cx.waker().clone());
        Poll::Pending
    }
}
